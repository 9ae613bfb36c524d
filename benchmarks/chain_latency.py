"""Latency-bound speed: a chain of s steps with model latency L should take about s·L.

The simulated model sleeps a fixed L per call (latency_sigma=0); the first k
samples of a step go out together, so a step that needs one round costs one L.
Measured against s·L and against a bare `anyio.sleep(L)` loop of s steps run in
the same command (the event loop's own timer overshoot).

    python benchmarks/chain_latency.py                  # L = 5, 20, 50 ms over 511 steps
"""

from __future__ import annotations

import argparse
import time

import anyio

import maker
from maker.tasks import build_task


async def sleep_loop(steps: int, latency: float) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        await anyio.sleep(latency)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=9, help="9 disks = 511 steps")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[5, 20, 50])
    args = parser.parse_args()
    steps = 2**args.disks - 1
    for ms in args.latency_ms:
        latency = ms / 1000
        floor = anyio.run(sleep_loop, steps, latency)
        model = f"sim/gpt-4.1-mini?latency={latency}&latency_sigma=0"
        result = maker.run(build_task("hanoi", disks=args.disks), model=model, trace=False)
        extra = result.totals.samples - 3 * steps
        print(
            f"L={ms:5.1f} ms  s={steps}  s·L={steps * latency:6.2f} s  sleep loop {floor:6.2f} s"
            f"  maker {result.wall_s:6.2f} s  multi-round steps ≤{extra}"
            f"  RATIO maker/(s·L) = {result.wall_s / (steps * latency):.3f} (target <= 1.1)"
            f"  maker/sleep-loop = {result.wall_s / floor:.3f}"
        )


if __name__ == "__main__":
    main()
