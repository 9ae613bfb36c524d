"""A 16-disk Hanoi run (65,535 steps) end to end through the real CLI, with a gzip trace.

The 20-disk run is a benchmark (benchmarks/hanoi_scale.py); this is the part of
it that fits in the test budget. No timing assertions: speed is benchmarked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from maker.traces import read_events


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sixteen_disks_zero_errors_flat_memory_complete_trace(tmp_path):
    trace = tmp_path / "hanoi16.jsonl.gz"
    # The child reports its own peak RSS after the CLI returns.
    code = (
        "import resource, sys; from maker.cli._app import main; rc = main(sys.argv[1:]);"
        " print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "hanoi", "--disks", "16", "--trace", str(trace), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_mb = int(out.stderr.strip().splitlines()[-1]) / 1024
    summary = json.loads(out.stdout)
    assert summary["solved"] is True
    assert summary["steps"] == 2**16 - 1
    assert summary["errors"] == 0
    assert peak_mb < 500, f"peak RSS {peak_mb:.0f} MB"  # the 20-disk target, at a quarter of its steps

    counts = {"sample": 0, "decision": 0}
    end = None
    for event in read_events(trace):
        if event["type"] in counts:
            counts[event["type"]] += 1
        elif event["type"] == "end":
            end = event
    assert counts["decision"] == 2**16 - 1
    assert counts["sample"] == summary["samples"]
    assert end is not None and end["outcome"] == "solved"
