"""The million-step benchmark: N-disk Hanoi on sim/gpt-4.1-mini, k = 3, full trace.

Runs, side by side in this one command (the machines are noisy, so only
ratios measured together mean anything):
  1. the bare loop (benchmarks/bare_loop.py): same work, no runtime;
  2. `maker.run` with a gzip trace.
Each run happens in its own child process so its peak RSS is its own.

    python benchmarks/hanoi_scale.py --disks 20          # the headline figure (~5 minutes)
    python benchmarks/hanoi_scale.py --disks 14          # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child_bare(disks: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from bare_loop import bare_hanoi

    return bare_hanoi(disks)


def child_maker(disks: int, trace: str) -> dict[str, float]:
    import maker
    from maker.tasks import build_task

    result = maker.run(build_task("hanoi", disks=disks), model="sim/gpt-4.1-mini", trace=trace or False)
    return {
        "wall_s": result.wall_s,
        "samples": result.totals.samples,
        "errors": result.totals.errors,
        "solved": result.solved,
        "steps": result.totals.steps,
    }


def run_child(kind: str, disks: int, trace: str = "") -> dict[str, float]:
    code = (
        f"import json, resource, sys; sys.path.insert(0, {str(HERE)!r}); from hanoi_scale import child_{kind};"
        f" r = child_{kind}({disks}{', ' + repr(trace) if kind == 'maker' else ''});"
        " r['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print(json.dumps(r))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--trace-dir", default=None, help="where the trace goes (default: a temp dir, deleted)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = str(Path(args.trace_dir or tmp) / f"hanoi{args.disks}.jsonl.gz")
        bare = run_child("bare", args.disks)
        made = run_child("maker", args.disks, trace)
        size = os.path.getsize(trace)
    steps = 2**args.disks - 1
    print(f"{args.disks} disks, {steps:,} steps, sim/gpt-4.1-mini, k=3, gzip trace")
    print(
        f"  bare loop : {bare['wall_s']:8.1f} s  {bare['samples'] / bare['wall_s']:9,.0f} samples/s"
        f"  errors {bare['errors']}  peak RSS {bare['peak_rss_mb']:.0f} MB"
    )
    print(
        f"  maker     : {made['wall_s']:8.1f} s  {made['samples'] / made['wall_s']:9,.0f} samples/s"
        f"  errors {made['errors']}  solved {made['solved']}  peak RSS {made['peak_rss_mb']:.0f} MB"
    )
    print(
        f"  samples {made['samples']:,} ({made['samples'] / steps:.4f} per step); trace {size / 1e6:.1f} MB gzip"
        f" ({size / made['samples']:.0f} bytes/sample)"
    )
    print(f"  RATIO maker / bare loop = {made['wall_s'] / bare['wall_s']:.3f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
