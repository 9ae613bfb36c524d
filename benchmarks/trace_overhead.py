"""What durable traces cost: the same run with no trace, a plain JSONL trace, and a gzip trace.

The worst case for the trace is the instant simulated model: nothing else takes
time, so every microsecond of encoding, writing and committing shows. A
latency-bound run (a real model, or the simulator with a latency) hides it.
Runs alternate between the variants and the median of `--repeat` is reported,
side by side, as a ratio to the run without a trace.

    python benchmarks/trace_overhead.py                 # 14 disks (16,383 steps), instant model
    python benchmarks/trace_overhead.py --latency 0.002 --disks 9
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import maker
from maker.tasks import build_task

VARIANTS = ("no trace", ".jsonl", ".jsonl.gz")


def one_run(disks: int, model: str, variant: str, where: Path, n: int) -> tuple[float, int]:
    trace: Path | bool = False if variant == "no trace" else where / f"run{n}{variant}"
    start = time.perf_counter()
    result = maker.run(build_task("hanoi", disks=disks), model=model, trace=trace)
    wall = time.perf_counter() - start
    assert result.solved
    return wall, (trace.stat().st_size if isinstance(trace, Path) else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=14)
    parser.add_argument("--latency", type=float, default=0.0, help="simulated seconds per call (default 0: instant)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    model = "sim/gpt-4.1-mini" + (f"?latency={args.latency}&latency_sigma=0" if args.latency else "")
    steps = 2**args.disks - 1
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        one_run(min(args.disks, 8), model, ".jsonl", Path(tmp), -1)  # warm-up: imports, caches
        for n in range(args.repeat):
            for variant in VARIANTS if n % 2 == 0 else VARIANTS[::-1]:
                wall, size = one_run(args.disks, model, variant, Path(tmp), n)
                walls[variant].append(wall)
                sizes[variant] = size
    base = statistics.median(walls["no trace"])
    print(f"hanoi {args.disks} disks ({steps:,} steps) on {model}, median of {args.repeat}:")
    for variant in VARIANTS:
        wall = statistics.median(walls[variant])
        extra_us = (wall - base) / steps * 1e6
        size = f"{sizes[variant] / 1e6:7.2f} MB" if sizes[variant] else "        —"
        print(
            f"  {variant:10s} {wall:7.3f} s  {steps / wall:9,.0f} steps/s  {size}"
            f"  RATIO vs no trace = {wall / base:.3f}  ({extra_us:+.1f} µs per step)"
        )


if __name__ == "__main__":
    main()
