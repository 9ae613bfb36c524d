"""Peak memory of a full Hanoi run against the number of steps (it should not grow).

Each size runs in its own child process (peak RSS is per process), with the
gzip trace on, side by side in one command.

    python benchmarks/memory_scaling.py                  # 10, 14, 17, 20 disks (~5 minutes)
    python benchmarks/memory_scaling.py --disks 10 14    # quicker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hanoi_scale import run_child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, nargs="+", default=[10, 14, 17, 20])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.disks:
            r = run_child("maker", n, str(Path(tmp) / f"h{n}.jsonl.gz"))
            rows.append((n, r))
            print(
                f"  {n:2d} disks {2**n - 1:>10,} steps  peak RSS {r['peak_rss_mb']:6.1f} MB  {r['wall_s']:7.1f} s"
                f"  solved {r['solved']}",
                flush=True,
            )
    base = rows[0][1]["peak_rss_mb"]
    for n, r in rows[1:]:
        print(f"  RATIO peak RSS {n} disks / {rows[0][0]} disks = {r['peak_rss_mb'] / base:.3f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
