"""Concurrent resumes of one trace: exactly one proceeds, the others are refused untouched.

Two, three and five `maker resume` runs of the same interrupted trace (plain and
gzip) start at random offsets, 50 times (seeded). Each runs the real command
(`maker.cli main`, the entry point `maker` calls) in its own process, so the
lock is a real `flock` between processes. Worker processes are started once
and reused: a fresh interpreter per resume would cost more than the resumes.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _http import clean_env

import maker
from maker import RunSettings
from maker.tasks import build_task
from maker.traces import TraceWriter, read_events

# A latency so the proceeding resume is still running when the others start.
MODEL = "sim/gpt-4.1-mini?latency=0.004&error_rate=0.05"
DISKS = 5
SEED = 11
TRIALS = 50
WORKERS = 5
REFUSED = ("another process is writing this trace", "already finished")

WORKER = r"""
import contextlib, io, json, sys, time
from maker.cli._app import main
for line in sys.stdin:
    job = json.loads(line)
    time.sleep(max(0.0, job["at"] - time.time()))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(job["argv"])
        except BaseException as exc:  # the test fails on it; report rather than die
            rc = repr(exc)
    print(json.dumps({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
"""


@pytest.fixture(scope="module")
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for _ in range(WORKERS)
    ]
    yield procs
    for p in procs:
        p.stdin.close()  # type: ignore[union-attr]
        p.wait(timeout=30)
        p.stdout.close()  # type: ignore[union-attr]


def decisions(events: list[dict[str, Any]]) -> list[str]:
    """Decisions as comparable strings; votes as sorted counts (arrival order of candidates may differ)."""
    return [
        json.dumps({**e, "votes": sorted(e["votes"].items())}, sort_keys=True)
        for e in events
        if e["type"] == "decision"
    ]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An interrupted trace of each kind (killed while writing its last line), and the uninterrupted decisions."""
    where = tmp_path_factory.mktemp("concurrent")
    ref = where / "ref.jsonl"
    maker.run(build_task("hanoi", disks=DISKS), model=MODEL, settings=RunSettings(seed=SEED), trace=ref)
    raw = ref.read_bytes()
    lines = raw.splitlines(keepends=True)
    half = next(n for n, line in enumerate(lines) if b'"type":"decision"' in line and n > len(lines) // 2)
    plain = b"".join(lines[: half + 1]) + lines[half + 1][:25]  # torn mid-line
    gz_path = where / "base.jsonl.gz"
    writer = TraceWriter(gz_path, commit_interval=0)
    for line in lines[: half + 1]:
        writer.write(json.loads(line))
        if b'"type":"decision"' in line or b'"type":"header"' in line:
            writer.commit(force=True)  # a sync flush, as a run commits
    writer.commit(force=True)
    gz = gz_path.read_bytes()  # never closed: a member without its end, as a killed run leaves it
    writer.close()
    return {
        "plain": plain,
        "gz": gz[:-3],  # and cut inside its last flush
        "kept": b"".join(lines[: half + 1]),
        "reference": decisions(list(read_events(ref))),
    }


def text_of(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    with gzip.open(path, "rb") as f:
        return f.read()


def trials() -> list[tuple[int, int, bool]]:
    rng = random.Random(1717)
    return [(t, (2, 3, 5)[t % 3], rng.random() < 0.5) for t in range(TRIALS)]


@pytest.mark.timeout(240)
def test_concurrent_resumes_one_proceeds_the_others_are_refused_untouched(
    tmp_path: Path, workers: list[subprocess.Popen[str]], interrupted: dict[str, Any]
) -> None:
    rng = random.Random(20261202)
    outcomes = {"proceeded": 0, "refused": 0}
    for trial, n, gz in trials():
        path = tmp_path / f"t{trial}.jsonl{'.gz' if gz else ''}"
        path.write_bytes(interrupted["gz" if gz else "plain"])
        os.chmod(path, 0o600)
        before = os.stat(path)
        committed = [line for line in interrupted["kept"].splitlines() if b'"type":"decision"' in line]
        start = time.time() + 0.05
        for proc in workers[:n]:
            job = {"at": start + rng.uniform(0, 0.06), "argv": ["resume", str(path), "--json", "--quiet"]}
            proc.stdin.write(json.dumps(job) + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        results = [json.loads(proc.stdout.readline()) for proc in workers[:n]]  # type: ignore[union-attr]
        where = f"trial {trial} ({n} resumes, {'gzip' if gz else 'plain'})"
        proceeded = [r for r in results if r["rc"] == 0]
        refused = [r for r in results if r["rc"] != 0]
        assert len(proceeded) == 1, f"{where}: {results}"
        assert json.loads(proceeded[0]["stdout"])["outcome"] == "solved", where
        for r in refused:
            assert r["rc"] == 2 and r["stderr"].count("\n") == 1, f"{where}: {r}"
            assert any(reason in r["stderr"] for reason in REFUSED), f"{where}: {r}"
        after = os.stat(path)
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode), f"{where}: inode or mode changed"
        text = text_of(path)
        assert text.startswith(interrupted["kept"]), f"{where}: the committed events are no longer a prefix"
        assert all(line in text for line in committed), f"{where}: a committed decision was lost"
        events = list(read_events(path))
        assert [e["type"] for e in events].count("resume") == 1, f"{where}: more than one session appended"
        assert decisions(events) == interrupted["reference"], f"{where}: the run differs from the uninterrupted one"
        outcomes["proceeded"] += 1
        outcomes["refused"] += len(refused)
    assert outcomes == {"proceeded": TRIALS, "refused": sum(n - 1 for _, n, _ in trials())}


def test_resume_keeps_a_gzip_traces_inode_and_mode_and_new_traces_are_private(
    tmp_path: Path, interrupted: dict[str, Any]
) -> None:
    fresh = tmp_path / "new.jsonl.gz"
    maker.run(build_task("hanoi", disks=2), trace=fresh)
    assert fresh.stat().st_mode & 0o777 == 0o600 & ~_umask()
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(interrupted["gz"])
    os.chmod(path, 0o640)
    before = os.stat(path)
    assert maker.resume(path).solved
    after = os.stat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name not in ("new.jsonl.gz", "t.jsonl.gz")], "no temp file left"
    assert decisions(list(read_events(path))) == interrupted["reference"]
    shutil.copy(path, tmp_path / "copy.jsonl.gz")  # reads as one valid gzip stream end to end
    assert text_of(tmp_path / "copy.jsonl.gz").startswith(interrupted["kept"])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
