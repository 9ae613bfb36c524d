"""What shards buy on this machine: samples/s of one process vs N shards (local processes, Ray).

The same wide job three ways, side by side in one command: one ordinary
process, `--shards N --executor local`, and `--shards N --executor ray` (if Ray
is installed). Each is a real `maker hanoi --independent` run on the instant
simulator, where the runtime itself is the bottleneck, so the ratio shows how
much of N cores the shards use. The decisions of every variant are checked to
be identical to the one-process run. On a machine with other load the ratio
falls: the load average at start is printed beside the figures.

    python benchmarks/shards.py                             # 20 disks, 200,000 steps, 2 shards
    python benchmarks/shards.py --steps 50000 --shards 2 --no-ray
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from maker.traces import read_events


def run(args: list[str], cwd: Path) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "maker", *args, "--json", "--quiet"], cwd=cwd, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if not done.stdout.strip():
        sys.exit(f"run failed: {done.stderr.strip()}")
    return json.loads(done.stdout), wall


def winners(paths: list[Path]) -> dict[Any, str]:
    return {e["step"]: e["winner"] for p in paths for e in read_events(p) if e["type"] == "decision"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()
    job = ["hanoi", "--disks", str(args.disks), "--independent", str(args.steps), "--concurrency", "64"]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        one, wall_one = run([*job, "--trace", str(where / "one.jsonl.gz")], where)
        reference = winners([where / "one.jsonl.gz"])
        rows = [("1 process", one, wall_one, True)]
        executors = ["local"] + ([] if args.no_ray or importlib.util.find_spec("ray") is None else ["ray"])
        for executor in executors:
            out = where / executor
            result, wall = run([*job, "--shards", str(args.shards), "--executor", executor, "--trace", str(out)], where)
            same = winners(sorted(out.glob("shard-*"))) == reference
            rows.append((f"{args.shards} shards, {executor}", result, wall, same))
    base = one["samples"] / wall_one
    print(
        f"hanoi {args.disks} disks, {args.steps:,} independent steps, instant simulator; "
        f"{os.cpu_count()} CPUs, load average {load:.2f} at start"
    )
    for name, result, wall, same in rows:
        rate = result["samples"] / wall
        print(
            f"  {name:18s} {wall:7.1f} s  {rate:9,.0f} samples/s  ×{rate / base:4.2f}  "
            f"decisions {'identical' if same else 'DIFFER'}"
        )


if __name__ == "__main__":
    main()
