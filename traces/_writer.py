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


GZIP_LEVEL = 5

# Traces hold every prompt's reply and the run's settings: readable by their owner only.
# (The umask may take more away; it cannot add.) Resume keeps whatever mode the file has.
MODE = 0o600


def _open(path: Path, append: bool, locked: IO[bytes] | None) -> tuple[IO[bytes], IO[bytes]]:
    """(the stream events are written to, the file under it), the file locked first."""
    if locked is not None:
        raw = locked  # a resume's TraceLock: locked before the trace was read, and never let go
    elif append:
        raw = _locked(path)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), MODE)
        raw = os.fdopen(fd, "ab", buffering=1 << 20)
        _lock(path, raw)
    if path.suffix == ".gz":
        # Level 5: on a Hanoi trace 27 bytes per sample against level 1's 39 (issue 16: at most 30),
        # for about 2% more run time on the instant simulator (level 6 costs half again as much
        # for 1% less). Appending (resume) starts a new gzip member, which every gzip reader
        # reads on as one stream.
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL), raw  # type: ignore[return-value]
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


def _locked(path: Path) -> IO[bytes]:
    """`path` opened for appending (never created) and locked, or a one-line `TraceError`.

    The lock lives on the file's inode, and every writer appends to (or repairs)
    that same inode in place, so holding it excludes every other writer for as
    long as it is held. Checked after locking: the path still names the locked
    file (a file swapped in under the same name would otherwise go unguarded).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TraceError(f"{path}: cannot open the trace for writing ({exc.strerror or exc})") from None
    raw = os.fdopen(fd, "ab", buffering=1 << 20)
    _lock(path, raw)
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        same = False
    if not same:
        raw.close()
        raise TraceError(f"{path}: the trace was replaced while it was being opened; try again")
    return raw


class TraceLock:
    """The one-writer lock of an existing trace, taken before anything reads or repairs it.

    Resume takes it first, holds it while it reads the trace, cuts a torn tail
    and appends, and hands it to its `TraceWriter` (`TraceWriter(path,
    append=True, lock=lock)`), which releases it on close. A second resume of
    the same trace is refused here, before it has read or changed one byte.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.file: IO[bytes] | None = _locked(self.path)

    def inode(self) -> int:
        assert self.file is not None
        return os.fstat(self.file.fileno()).st_ino

    def take(self) -> IO[bytes]:
        """The locked file, handed over to a writer (which closes it, releasing the lock)."""
        assert self.file is not None, "the lock was already handed over"
        file, self.file = self.file, None
        return file

    def release(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def __enter__(self) -> TraceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class TraceWriter:
    """Append-only JSONL (or .jsonl.gz) writer with explicit commit points.

    `commit_interval` (seconds) batches commits: 0 commits at every decision;
    gzip traces default to 1 s because each gzip flush costs compression.
    A new trace is created with mode 0600 (owner only); `append=True` opens an
    existing one (never creating it) and locks it; `lock` hands over a
    `TraceLock` already held (resume), so the lock is never let go in between.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        append: bool = False,
        commit_interval: float | None = None,
        fsync: bool = False,
        lock: TraceLock | None = None,
    ) -> None:
        self.path = Path(path)
        if lock is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file, self._raw = _open(self.path, append or lock is not None, lock.take() if lock else None)
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
