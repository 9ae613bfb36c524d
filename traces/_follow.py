"""Following a trace while another process writes it: read only what was added since the last look.

Used by `maker watch` and by the one progress bar over many shards. It reads
only new bytes (and inflates only new gzip data, member by member, as a
resumed `.jsonl.gz` gains members), never takes the writer's lock, and hands
on only complete lines, so a line half-written at the moment of reading is
seen once it is whole.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_DECISION = b'{"type":"decision"'
_SAMPLE = b'{"type":"sample"'
_FLAGGED = b'"flag":"'


class NewLines:
    """The complete lines a growing trace gained since the last `read()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._gzip = path.suffix == ".gz"
        self._inflater: Any = None  # zlib's decompress object for the gzip member being read

    def read(self) -> bytes:
        """New complete lines (ending in a newline), possibly empty; nothing if the file is missing."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:  # not created yet, or gone: nothing new
            return b""
        self._offset += len(data)
        text = self._partial + (self._inflate(data) if self._gzip else data)
        end = text.rfind(b"\n") + 1
        whole, self._partial = text[:end], text[end:]
        return whole

    def _inflate(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._inflater is None:
                self._inflater = zlib.decompressobj(wbits=31)
            try:
                out.append(self._inflater.decompress(data))
            except zlib.error:  # corrupt: stop reading rather than guess
                self._gzip, self._inflater, self._offset = False, None, os.path.getsize(self.path)
                return b""
            if not self._inflater.eof:
                break
            data = self._inflater.unused_data  # the next gzip member (a resumed session)
            self._inflater = None
        return b"".join(out)


class TraceTail:
    """Decisions and samples of a growing trace, counted incrementally (no JSON parsing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decisions = 0
        self.samples = 0
        self.red_flags = 0
        self._lines = NewLines(path)

    def poll(self) -> None:
        whole = self._lines.read()
        self.decisions += whole.count(_DECISION)
        self.samples += whole.count(_SAMPLE)
        self.red_flags += whole.count(_FLAGGED)


def new_events(lines: NewLines) -> Iterator[dict[str, Any]]:
    """The events a growing trace gained since the last call; a line that is not JSON is skipped."""
    for line in lines.read().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def writer_alive(path: Path) -> bool | None:
    """Whether a live process holds the trace's writer lock, without taking it; None if unknowable.

    On Linux the kernel lists every flock in /proc/locks by device and inode,
    so the check only reads. Elsewhere there is no way to ask without
    taking the lock, which a watcher must never do, so the answer is None.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(f" {wanted} " in f" {line} " and "FLOCK" in line for line in table.splitlines())
