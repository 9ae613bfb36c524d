"""`maker watch`: a run followed from its trace by another process, as a user on another terminal would.

The watcher is a separate `maker watch` process reading the trace that a
separate `maker hanoi` process writes. Nothing here asserts timing: the run
is slow enough (a simulated latency) that it is still going when the
watcher starts, and every wait is on what the trace or the watcher says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _http import clean_env, maker_command, run_maker

from maker.traces import read_events

pytestmark = pytest.mark.timeout(120)


def _start_run(tmp_path: Path, trace: Path, latency: float = 0.02) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *maker_command(),
            "hanoi",
            "--disks",
            "9",
            "--model",
            f"sim/gpt-4.1-mini?latency={latency}",
            "--trace",
            str(trace),
            "--quiet",
            "--json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def _decisions(trace: Path) -> int:
    try:
        return sum(1 for e in read_events(trace) if e["type"] == "decision")
    except Exception:
        return 0


def _wait_until(condition: Any, what: str, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _watcher(tmp_path: Path, trace: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*maker_command(), "watch", str(trace), "--json", "--interval", "0.2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def test_watch_follows_a_run_in_another_process_to_its_end(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    run = _start_run(tmp_path, trace)
    _wait_until(lambda: _decisions(trace) >= 3, "the run's first decisions")
    watcher = _watcher(tmp_path, trace)
    out, err = watcher.communicate(timeout=100)  # it must exit by itself when the run ends
    run.communicate(timeout=30)
    assert watcher.returncode == 0, err
    snapshots = [json.loads(line) for line in out.splitlines()]
    steps = [s["steps"] for s in snapshots]
    assert steps == sorted(steps) and steps[-1] == 511
    assert any(s["writer"] == "running" and s["steps"] < 511 for s in snapshots)
    assert len(set(steps)) >= 2  # the snapshots advanced
    last = snapshots[-1]
    assert last["writer"] == "ended" and last["outcome"] == "solved" and last["total_steps"] == 511
    assert last["samples"] == sum(1 for e in read_events(trace) if e["type"] == "sample")
    assert last["errors"] == 0 and last["cost_usd"] is not None


def test_watch_survives_the_writer_being_killed_and_says_writer_gone(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    run = _start_run(tmp_path, trace, latency=0.05)
    _wait_until(lambda: _decisions(trace) >= 3, "the run's first decisions")
    watcher = _watcher(tmp_path, trace)
    try:
        first = json.loads(watcher.stdout.readline())  # type: ignore[union-attr]
        assert first["writer"] == "running"
        os.kill(run.pid, signal.SIGKILL)
        run.communicate(timeout=30)
        while True:
            line = watcher.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the watcher stopped: {watcher.stderr.read()}"  # type: ignore[union-attr]
            snapshot = json.loads(line)
            if snapshot["writer"] == "gone":
                break
        assert snapshot["outcome"] is None and snapshot["steps"] >= first["steps"]
        assert watcher.poll() is None  # still watching: a resume may come
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.communicate(timeout=30)
    assert watcher.returncode == 0


def test_watch_once_on_a_finished_trace_and_on_a_sharded_manifest(tmp_path: Path) -> None:
    done = run_maker("hanoi", "--disks", "6", "--trace", str(tmp_path / "t.jsonl.gz"), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    once = run_maker("watch", str(tmp_path / "t.jsonl.gz"), "--once", "--json", cwd=tmp_path)
    assert once.returncode == 0, once.stderr
    snap = json.loads(once.stdout)
    assert snap["steps"] == snap["total_steps"] == 63 and snap["writer"] == "ended"
    table = run_maker("watch", str(tmp_path / "t.jsonl.gz"), "--once", cwd=tmp_path)
    assert table.returncode == 0 and "63 / 63" in table.stdout
    sharded = run_maker(
        "hanoi",
        "--disks",
        "8",
        "--independent",
        "40",
        "--shards",
        "2",
        "--trace",
        str(tmp_path / "s"),
        "--quiet",
        cwd=tmp_path,
    )
    assert sharded.returncode == 0, sharded.stderr
    shards = run_maker("watch", str(tmp_path / "s" / "manifest.json"), "--once", "--json", cwd=tmp_path)
    snap = json.loads(shards.stdout)
    assert snap["shards"] == 2 and snap["steps"] == snap["total_steps"] == 40 and snap["outcome"] == "measured"


@pytest.mark.parametrize("content", ["", "not a trace\n", '{"type": "sample"}\n'])
def test_watch_on_something_that_is_not_a_trace_is_one_line(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    done = run_maker("watch", str(bad), "--once", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
