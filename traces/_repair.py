"""Making an interrupted trace safe to append to.

A crash can leave a torn last line, or a gzip stream cut mid-block. The reader
drops that tail, but appending after it would glue new events onto garbage (a
corrupt line in the middle of the file, or a gzip member that never ends), so
resume first cuts the file back to exactly what the reader accepts.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from maker.traces._reader import GZIP_MAGIC, _Lines, read_events


@dataclass(frozen=True, slots=True)
class Repair:
    """What `repair_tail` did: bytes of torn tail dropped, and whether the file was rewritten."""

    dropped_bytes: int
    rewritten: bool


def repair_tail(path: str | os.PathLike[str]) -> Repair:
    """Cut `path` back to its last committed event, so that appending is safe.

    Plain JSONL: truncate after the last complete line (adding the final
    newline if the last event was whole but unterminated). Gzip: rewrite the
    readable events as one fresh, complete gzip member (atomically, through a
    temporary file), since a cut deflate stream cannot be continued.
    Raises `TraceError` if the trace is corrupt anywhere else.
    """
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == GZIP_MAGIC
    return _repair_gzip(path) if gz else _repair_plain(path)


def _repair_plain(path: Path) -> Repair:
    events = sum(1 for _ in read_events(path))  # validates everything but a torn tail
    with open(path, "r+b") as f:
        good = _end_of_line(f, events)
        size = f.seek(0, os.SEEK_END)
        f.seek(good)
        tail = f.read()
        if tail and not tail.endswith(b"\n") and tail.count(b"\n") == 0 and _is_event(tail):
            f.write(b"\n")  # a whole last event whose newline never made it to disk
            f.flush()
            os.fsync(f.fileno())
            return Repair(0, False)
        if good == size:
            return Repair(0, False)
        f.truncate(good)
        f.flush()
        os.fsync(f.fileno())
    return Repair(size - good, False)


def _end_of_line(f, lines: int) -> int:  # type: ignore[no-untyped-def]
    """Byte offset just past the first `lines` newline-terminated lines (or of the last whole one)."""
    f.seek(0)
    offset = 0
    for number, raw in enumerate(f, start=1):
        if not raw.endswith(b"\n"):
            break
        offset += len(raw)
        if number == lines:
            break
    return offset


def _is_event(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def _repair_gzip(path: Path) -> Repair:
    events = sum(1 for _ in read_events(path))
    size = path.stat().st_size
    tmp = path.with_name(path.name + ".repair")
    with gzip.open(tmp, "wb", compresslevel=1) as out:
        for number, raw in enumerate(_Lines(path), start=1):
            if number > events:
                break
            out.write(raw if raw.endswith(b"\n") else raw + b"\n")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return Repair(max(0, size - path.stat().st_size), True)
