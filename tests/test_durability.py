"""The trace as a write-ahead log: a decided step is on disk before the run moves on,
one writer per trace, and a torn tail is cut back before anything is appended."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import maker
from maker._recorder import Totals
from maker.errors import TraceError
from maker.tasks import build_task
from maker.traces import TraceWriter, read_events, repair_tail


class DiskWatch:
    """A progress hook (called right after each decision) that counts the decisions on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checked = 0

    def start(self, total_steps: int) -> None:
        return None

    def update(self, totals: Totals) -> None:
        on_disk = self.path.read_bytes().count(b'"type":"decision"')
        assert on_disk == totals.steps, f"step {totals.steps} decided but {on_disk} decisions on disk"
        self.checked += 1

    def stop(self) -> None:
        return None


def test_every_decision_is_on_disk_before_the_next_step_starts(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    watch = DiskWatch(path)
    maker.run(build_task("hanoi", disks=6), model="sim/hostile?latency=0.0001", trace=path, progress=watch)
    assert watch.checked == 63


def test_one_writer_per_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    first = TraceWriter(path)
    first.write({"type": "header", "schema_version": 1, "task": {}, "model": "m", "voting": {}})
    first.commit(force=True)
    size = path.stat().st_size
    with pytest.raises(TraceError, match="another process is writing this trace"):
        TraceWriter(path, append=True)
    assert path.stat().st_size == size, "the refused writer wrote nothing, not even a gzip member header"
    first.close()
    second = TraceWriter(path, append=True)
    second.write({"type": "end", "outcome": "solved", "message": None, "totals": {}, "wall_s": 0.0})
    second.close()
    assert [e["type"] for e in read_events(path)] == ["header", "end"]


@pytest.fixture
def trace_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "src.jsonl"
    maker.run(build_task("hanoi", disks=3), trace=path)
    return path.read_bytes()


def test_repair_cuts_a_torn_line_and_keeps_a_whole_one(tmp_path: Path, trace_bytes: bytes) -> None:
    lines = trace_bytes.splitlines(keepends=True)
    path = tmp_path / "t.jsonl"

    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:30])  # died mid-line
    assert repair_tail(path).dropped_bytes == 30
    assert path.read_bytes() == b"".join(lines[:-1])

    path.write_bytes(trace_bytes[:-1])  # died between the last event and its newline
    assert repair_tail(path).dropped_bytes == 0
    assert path.read_bytes() == trace_bytes

    assert repair_tail(path).dropped_bytes == 0 and path.read_bytes() == trace_bytes  # a clean file is left alone


def test_repair_rewrites_a_cut_gzip_trace_as_one_stream_that_can_be_appended_to(
    tmp_path: Path, trace_bytes: bytes
) -> None:
    path = tmp_path / "t.jsonl.gz"
    packed = gzip.compress(trace_bytes)
    path.write_bytes(packed[: len(packed) * 3 // 4])
    kept = list(read_events(path))
    assert repair_tail(path).rewritten
    writer = TraceWriter(path, append=True)
    writer.write({"type": "end", "outcome": "interrupted", "message": None, "totals": {}, "wall_s": 0.0})
    writer.close()
    events = list(read_events(path))
    assert events[:-1] == kept and events[-1]["type"] == "end"
    assert json.loads(gzip.decompress(path.read_bytes()).splitlines()[0])["type"] == "header"


def test_repair_refuses_a_trace_corrupt_before_its_end(tmp_path: Path, trace_bytes: bytes) -> None:
    path = tmp_path / "t.jsonl"
    lines = trace_bytes.splitlines(keepends=True)
    path.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    with pytest.raises(TraceError, match=":2: corrupt trace line"):
        repair_tail(path)
    assert path.read_bytes() == lines[0] + b"garbage\n" + b"".join(lines[1:])
