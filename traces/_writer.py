"""The trace writer: the run's write-ahead log.

Events are encoded once and buffered; `commit()` pushes them to the OS. A step
counts as committed only when its decision has been committed, so a crash loses
at most the events after the last commit, never a step the trace calls done.
Writes go to a buffered file from the event loop: one small `write` per commit
costs microseconds, far less than handing each one to a worker thread.
"""

from __future__ import annotations

import gzip

import json
import os
import time
from pathlib import Path
from typing import IO, Any


# One encoder for the whole process: events are plain trees, so the circular
# check json.dumps runs on every call is pure cost here.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _open(path: Path, append: bool) -> IO[bytes]:
    mode = "ab" if append else "xb"
    if path.suffix == ".gz":
        # Level 1: most of gzip's size win on JSON for a fraction of its time.
        return gzip.open(path, mode, compresslevel=1)  # type: ignore[return-value]
    return open(path, mode, buffering=1 << 20)


class TraceWriter:
    """Append-only JSONL (or .jsonl.gz) writer with explicit commit points.

    `commit_interval` (seconds) batches commits: 0 commits at every decision;
    gzip traces default to 1 s because each gzip flush costs compression.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False, commit_interval: float | None = None,
                 fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _open(self.path, append)
        self._gz = self.path.suffix == ".gz"
        self._pending: list[bytes] = []
        self._interval = commit_interval if commit_interval is not None else (1.0 if self._gz else 0.0)
        self._last_commit = time.monotonic()
        self._fsync = fsync
        self.closed = False

    def write(self, event: dict[str, Any]) -> None:
        self._pending.append(_ENCODER.encode(event).encode() + b"\n")
        if len(self._pending) >= 1024:
            self._drain()  # bounded memory between commits; not yet a commit

    def _drain(self) -> None:
        self._file.write(b"".join(self._pending))
        self._pending.clear()

    def commit(self, *, force: bool = False) -> None:
        """Make everything written so far durable against a process crash."""
        if not force and self._interval and time.monotonic() - self._last_commit < self._interval:
            return
        if self._pending:
            self._drain()
        self._file.flush()
        if self._fsync:
            raw = self._file.fileobj if self._gz else self._file  # type: ignore[attr-defined]
            os.fsync(raw.fileno())  # type: ignore[union-attr]
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        self.commit(force=True)
        self._file.close()
        self.closed = True


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


