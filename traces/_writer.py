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
import sys
import time
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import IO, Any

from maker.errors import TraceError

# A platform check, not try/except ImportError: mypy understands it on every OS.
if sys.platform != "win32":
    import fcntl


def _event_encoder() -> Callable[[Any], str]:
    """Compact JSON for one event, exactly what `json.dumps(separators=(",", ":"))` writes.

    `JSONEncoder.encode` builds a fresh C encoder on every call, which is half
    the cost of encoding an event; a million-step trace encodes four million
    of them, so build it once. Events are plain trees, so no circular check.
    Where the C encoder is missing (other Pythons), the plain encoder is used.
    """
    plain = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        return plain.encode
    fast = c_make_encoder(None, plain.default, encode_basestring, None, ":", ",", False, False, True)
    return lambda event: "".join(fast(event, 0))


encode_event = _event_encoder()


def _open(path: Path, append: bool) -> tuple[IO[bytes], IO[bytes]]:
    """(the stream events are written to, the file under it), the file locked first."""
    raw = open(path, "ab" if append else "xb", buffering=1 << 20)  # noqa: SIM115 - owned by the writer
    _lock(path, raw)
    if path.suffix == ".gz":
        # Level 1: most of gzip's size win on JSON for a fraction of its time. Appending
        # (resume) starts a new gzip member, which every gzip reader reads on as one stream.
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1), raw  # type: ignore[return-value]
    return raw, raw


def _lock(path: Path, raw: IO[bytes]) -> None:
    # One writer per trace: a resume must not append while the run it continues
    # is still alive. The kernel drops the lock when the process dies, however it
    # dies, so a crashed run never leaves a stale lock behind. Taken before gzip
    # writes its member header, so a refused writer leaves not one byte behind.
    if sys.platform == "win32":  # pragma: no cover - no advisory locks: resume trusts the user
        return
    try:
        fcntl.flock(raw.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raw.close()
        raise TraceError(
            f"{path}: another process is writing this trace; wait for it to stop (or stop it) first"
        ) from None


def check_unlocked(path: str | os.PathLike[str]) -> None:
    """Raise `TraceError` if a live process holds `path` open as its trace writer."""
    with open(path, "rb") as f:
        _lock(Path(path), f)  # released when f closes


class TraceWriter:
    """Append-only JSONL (or .jsonl.gz) writer with explicit commit points.

    `commit_interval` (seconds) batches commits: 0 commits at every decision;
    gzip traces default to 1 s because each gzip flush costs compression.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        append: bool = False,
        commit_interval: float | None = None,
        fsync: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file, self._raw = _open(self.path, append)
        self._gz = self.path.suffix == ".gz"
        self._pending: list[str] = []  # encoded events, turned into bytes once per batch
        self._interval = commit_interval if commit_interval is not None else (1.0 if self._gz else 0.0)
        self._last_commit = time.monotonic()
        self._fsync = fsync
        self.closed = False

    def write(self, event: dict[str, Any]) -> None:
        self._pending.append(encode_event(event))
        if len(self._pending) >= 1024:
            self._drain()  # bounded memory between commits; not yet a commit

    def _drain(self) -> None:
        self._pending.append("")  # so the batch ends with a newline
        self._file.write("\n".join(self._pending).encode())
        self._pending.clear()

    def commit(self, *, force: bool = False) -> None:
        """Make everything written so far durable against a process crash."""
        if not force and self._interval and time.monotonic() - self._last_commit < self._interval:
            return
        if self._pending:
            self._drain()
        self._file.flush()
        if self._fsync:
            os.fsync(self._raw.fileno())
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.commit(force=True)
            self._file.close()  # gzip: writes the member's trailer to the file under it
        finally:
            self._raw.close()
            self.closed = True
