"""Following a trace while another process writes it: count what was added since the last look.

Used for one progress bar over many shards. It reads only new bytes (and
inflates only new gzip data, member by member, as a resumed `.jsonl.gz` gains
members), never takes the writer's lock, and counts only complete lines, so a
line half-written at the moment of reading is counted once it is whole.
"""

from __future__ import annotations

import zlib
from pathlib import Path

_DECISION = b'{"type":"decision"'
_SAMPLE = b'{"type":"sample"'
_FLAGGED = b'"flag":"'


class TraceTail:
    """Decisions and samples of a growing trace, counted incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decisions = 0
        self.samples = 0
        self.red_flags = 0
        self._offset = 0
        self._partial = b""
        self._gzip = path.suffix == ".gz"
        self._inflater: zlib._Decompress | None = None

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:  # not created yet, or gone: nothing new
            return
        self._offset += len(data)
        self._count(self._inflate(data) if self._gzip else data)

    def _inflate(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._inflater is None:
                self._inflater = zlib.decompressobj(wbits=31)
            try:
                out.append(self._inflater.decompress(data))
            except zlib.error:  # not gzip after all, or corrupt: stop counting rather than guess
                self._gzip, self._inflater = False, None
                return b""
            if not self._inflater.eof:
                break
            data = self._inflater.unused_data  # the next gzip member (a resumed session)
            self._inflater = None
        return b"".join(out)

    def _count(self, data: bytes) -> None:
        text = self._partial + data
        end = text.rfind(b"\n") + 1
        whole, self._partial = text[:end], text[end:]
        self.decisions += whole.count(_DECISION)
        self.samples += whole.count(_SAMPLE)
        self.red_flags += whole.count(_FLAGGED)
