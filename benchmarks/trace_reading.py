"""Reading a trace against making it: replay, analyze and trace show, side by side with the run.

Runs `maker hanoi` on the instant simulator with a gzip trace, then reads that
trace back with each command, every one a fresh process as a user runs it,
and prints each command's wall time as a ratio to the run's own, and its peak
memory (RSS) next to the run's. CPU time (user + system) is printed beside
wall time: on a shared machine wall time moves with the other load, CPU time
much less, so the CPU ratio is the one to read there. Also the trace's bytes per sample. Issue 16's targets, at 1M steps (20 disks):
replay <= 0.25x the run, analyze <= 10 s, trace show <= 5 s, memory no more
than the run's, <= 30 bytes per sample.

    python benchmarks/trace_reading.py                # 17 disks (131,071 steps)
    python benchmarks/trace_reading.py --disks 14     # quicker, for development
    python benchmarks/trace_reading.py --keep runs/   # keep the trace there
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKER = [sys.executable, "-m", "maker"]


def measure(args: list[str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, stdout) of one command, run as its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*MAKER, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"}
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"maker {' '.join(args)} failed (exit {proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=17)
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="write the trace here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        trace = where / f"hanoi{args.disks}-{os.getpid()}.jsonl.gz"
        run_wall, run_cpu, run_rss, out = measure(
            ["hanoi", "--disks", str(args.disks), "--trace", str(trace), "--json"]
        )
        result = json.loads(out)
        rows = [
            ("maker replay", ["replay", str(trace), "--quiet", "--json"]),
            ("maker replay --k 2,4", ["replay", str(trace), "--k", "2,4", "--quiet", "--json"]),
            ("maker analyze", ["analyze", str(trace), "--json"]),
            ("maker trace show", ["trace", "show", str(trace), "--json"]),
        ]
        size = trace.stat().st_size
        samples = int(result["samples"])
        steps = int(result["steps"])
        print(f"hanoi {args.disks} disks: {steps:,} steps, {samples:,} samples, instant simulator, gzip trace")
        print(
            f"  {'command':24s} {'CPU':>9s} {'vs run':>7s} {'wall':>9s} {'vs run':>7s} {'peak RSS':>9s} {'vs run':>7s}"
        )
        print(
            f"  {'maker hanoi (the run)':24s} {run_cpu:8.2f}s {1:6.2f}x {run_wall:8.2f}s {1:6.2f}x "
            f"{run_rss:7.0f}MB {1:6.2f}x"
        )
        for name, command in rows:
            wall, cpu, rss, _ = measure(command)
            print(
                f"  {name:24s} {cpu:8.2f}s {cpu / run_cpu:6.2f}x {wall:8.2f}s {wall / run_wall:6.2f}x "
                f"{rss:7.0f}MB {rss / run_rss:6.2f}x"
            )
        print(f"  trace: {size / 1e6:.1f} MB, {size / samples:.1f} bytes per sample")


if __name__ == "__main__":
    main()
