"""How `maker` ends a run that does not finish, and what each exit status means.

Every stop message names the trace it left (or says there is none) on stderr,
so it reaches the user with `--json` too. SIGTERM stops a run the way Ctrl-C
does: the end event is written and the run resumes. Exit status: 0 for a run
that did what it set out to (solved, or measured), 1 for one that did not,
2 for a usage error, 130 for an interrupted one.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _cli import run_json, run_maker, start_maker

from maker.traces import load_trace

pytestmark = pytest.mark.timeout(120)

SLOW = "sim/gpt-4.1-mini?latency=0.02"  # 255 steps of at least 20 ms: still running when stopped


def _decisions(trace: Path) -> int:
    return trace.read_bytes().count(b'"type":"decision"') if trace.exists() else 0


def _until(condition: object, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _ctrl_c_works() -> None:
    """In the child: Ctrl-C as in a terminal (a background job, as under CI, inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("stop", "as_json"),
    [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["sigterm-table", "sigterm-json", "ctrl-c"],
)
def test_sigterm_stops_a_run_like_ctrl_c_and_the_message_names_the_trace(
    tmp_path: Path, stop: signal.Signals, as_json: bool
) -> None:
    trace = tmp_path / "t.jsonl"
    args = ["hanoi", "--disks", "8", "--model", SLOW, "--trace", str(trace), "--quiet", *(["--json"] * as_json)]
    proc = start_maker(
        *args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_works
    )
    try:
        _until(lambda: _decisions(trace) >= 3, "the run's first decisions")
        alive, _ = run_json("trace", "show", str(trace), cwd=tmp_path)
        assert alive["outcome"] == "running"  # still being written, not "crashed"
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert out == ""  # with --json too: stdout is for results, and there is none
    assert err.splitlines() == [
        f"maker: error: interrupted; everything committed is in {trace}; resume it with `maker resume {trace}`"
    ]
    end = load_trace(trace).end
    assert end is not None and end["outcome"] == "interrupted"
    assert run_json("trace", "show", str(trace), cwd=tmp_path)[0]["outcome"] == "interrupted"
    summary, done = run_json("resume", str(trace), "--quiet", cwd=tmp_path)
    assert done.returncode == 0 and summary["solved"] is True


def test_a_full_disk_names_the_trace_to_resume(tmp_path: Path) -> None:
    def small_files() -> None:  # in the child: files over 30 kB fail to grow (EFBIG), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    trace = tmp_path / "t.jsonl"
    proc = start_maker(
        "hanoi", "--disks", "6", "--trace", str(trace), "--quiet",
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=small_files,
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("maker: error: File too large")
    assert line.endswith(f"everything committed is in {trace}; resume it with `maker resume {trace}`")
    summary, done = run_json("resume", str(trace), "--quiet", cwd=tmp_path)
    assert done.returncode == 0 and summary["solved"] is True


def test_a_stopped_run_says_how_to_resume_it_even_with_json(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    summary, done = run_json("hanoi", "--disks", "5", "--max-samples", "20", "--trace", str(trace), cwd=tmp_path)
    assert done.returncode == 1 and summary["outcome"] == "budget"
    assert f"resume it with `maker resume {trace}`" in done.stderr


def test_without_a_trace_no_message_speaks_of_one(tmp_path: Path) -> None:
    done = run_maker("hanoi", "--disks", "5", "--max-samples", "20", "--no-trace", "--quiet", cwd=tmp_path)
    assert done.returncode == 1
    assert "no trace was written (--no-trace), so it cannot be resumed" in done.stderr
    assert "maker resume" not in done.stderr and "resume it" not in done.stderr and "can be resumed" not in done.stderr


def test_a_successful_measurement_exits_0_like_calibrate(tmp_path: Path) -> None:
    summary, done = run_json("hanoi", "--disks", "8", "--independent", "30", "--no-trace", cwd=tmp_path)
    assert summary["outcome"] == "measured" and summary["solved"] is False
    assert done.returncode == 0


def test_a_wrong_answer_exits_1(tmp_path: Path) -> None:
    summary, done = run_json("hanoi", "--disks", "8", "--model", "sim/hostile", "--k", "1", "--no-trace", cwd=tmp_path)
    assert summary["outcome"] == "failed" and done.returncode == 1
    assert "resume" not in done.stderr  # a finished run has nothing to resume


def test_the_json_summary_is_valid_even_when_stopped_by_a_budget(tmp_path: Path) -> None:
    done = run_maker("hanoi", "--disks", "5", "--max-samples", "20", "--no-trace", "--json", cwd=tmp_path)
    assert json.loads(done.stdout)["outcome"] == "budget"
