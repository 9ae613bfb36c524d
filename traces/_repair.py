"""Making an interrupted trace safe to append to, in place.

A crash can leave a torn last line, or a gzip stream cut mid-block. The reader
drops that tail, but appending after it would glue new events onto garbage (a
corrupt line in the middle of the file, or a gzip member that never ends), so
resume first cuts the file back to exactly what the reader accepts.

Always in place: the file keeps its inode, its mode and its owner, so the lock
a resume holds on it (see `TraceLock`) guards the very file it appends to, and
a 0600 trace stays 0600. Every intermediate state of a repair reads as the same
events, or a prefix of them made only of events never committed, so a crash
during the repair loses nothing that was committed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from maker.errors import TraceError
from maker.traces._reader import GZIP_MAGIC, _events, _Lines, check_trace_file

# zlib's sync flush (what the writer does at every commit) ends with an empty
# stored block: these four bytes, after which the deflate stream sits on a byte
# boundary and can be closed by a final empty block.
SYNC = b"\x00\x00\xff\xff"
FINAL_EMPTY_BLOCK = b"\x03\x00"  # BFINAL=1, fixed Huffman, end-of-block
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Repair:
    """What `repair_tail` did: bytes of torn tail dropped, and whether a gzip tail was rewritten."""

    dropped_bytes: int
    rewritten: bool
    events: int = 0  # the events the trace holds (every one of them kept)


def repair_tail(path: str | os.PathLike[str]) -> Repair:
    """Cut `path` back to its last committed event, in place, so that appending is safe.

    Plain JSONL: truncate after the last complete line (adding the final
    newline if the last event was whole but unterminated). Gzip: close the last
    gzip member at its last flush point and append the events read after it
    as one more member (see `_repair_gzip`). The file keeps its inode and mode.
    Raises `TraceError` if the trace is corrupt anywhere else. The caller must
    hold the trace's lock (`TraceLock`) if another process could write it.
    """
    path = check_trace_file(path)
    lines = _Lines(path)
    events = kept = 0
    for _ in _events(path, lines):  # validates everything but a torn tail
        events += 1
        kept = lines.consumed  # the text up to the end of the last event the reader accepts
    with open(path, "rb") as f:
        gz = f.read(2) == GZIP_MAGIC
    return _repair_gzip(path, kept, events) if gz else _repair_plain(path, kept, events)


def _repair_plain(path: Path, kept: int, events: int) -> Repair:
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(kept - 1)
        whole = f.read(1) == b"\n"
        if kept == size and whole:
            return Repair(0, False, events)
        f.truncate(kept)  # only the torn, never-committed tail goes
        if not whole:
            f.seek(kept)
            f.write(b"\n")  # a whole last event whose newline never made it to disk
        f.flush()
        os.fsync(f.fileno())
    return Repair(size - kept, False, events)


@dataclass(slots=True)
class _Cut:
    """A place the compressed file can be cut: `offset` in the file, `text` bytes of text before it.

    `close`: the cut is a flush point inside a member, which must then be closed
    (a final empty block and the member's trailer: `crc`, `size`).
    """

    offset: int
    text: int
    close: bool = False
    crc: int = 0
    size: int = 0


def _repair_gzip(path: Path, kept: int, events: int) -> Repair:
    """Cut a gzip trace back to its first `kept` bytes of text, in place.

    A gzip trace is a series of members (one per session), each a deflate
    stream the writer sync-flushes at every commit. A crash cuts the last
    member somewhere after its last flush. The repair truncates the file at
    the last flush point (or member boundary) before `kept`, closes that member
    there with a final empty block and its trailer, and appends the text read
    after the flush point (events that reached the disk between flushes) as one
    more member. Each step leaves a file that reads as a prefix of the same
    events: a crash midway loses at most what was never committed.
    """
    size = path.stat().st_size
    scan = _Scan(kept)
    scan.run(path)
    cut = scan.best
    extra = bytes(scan.between) + (b"" if scan.last == b"\n" else b"\n")
    if cut.offset == size and not cut.close and not extra:
        return Repair(0, False, events)
    with open(path, "r+b") as f:
        f.truncate(cut.offset)
        f.seek(cut.offset)
        if cut.close:
            f.write(FINAL_EMPTY_BLOCK + struct.pack("<II", cut.crc, cut.size & 0xFFFFFFFF))
            f.flush()
        if extra:
            f.write(gzip.compress(extra, compresslevel=1, mtime=0))
        f.flush()
        os.fsync(f.fileno())
    return Repair(size - cut.offset, True, events)


class _Member:
    """One gzip member being decoded: its text length and crc so far."""

    def __init__(self) -> None:
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.text = 0
        self.crc = 0

    def feed(self, data: bytes) -> bytes:
        try:
            out = self.d.decompress(data)
        except zlib.error as exc:
            raise TraceError(f"corrupt gzip data ({exc})") from None
        self.text += len(out)
        self.crc = zlib.crc32(out, self.crc)
        return out

    def closes_here(self) -> bool:
        """Would closing the deflate stream here end the member cleanly (a real flush point)?"""
        if self.d.eof:
            return False
        probe = self.d.copy()
        try:
            rest = probe.decompress(FINAL_EMPTY_BLOCK + struct.pack("<II", self.crc, self.text & 0xFFFFFFFF))
        except zlib.error:
            return False
        return probe.eof and not rest and not probe.unused_data


class _Scan:
    """One streaming pass over a gzip trace: the last cut at or before text offset `kept`.

    Members are followed with a gzip-mode decompressor; each possible flush
    point (the four bytes before it are `SYNC`) is tried on a copy of it.
    `between` is the text from the best cut up to `kept`; `last` its final byte.
    """

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.text = 0  # text decoded before the current member
        self.member = _Member()
        self.best = _Cut(0, 0)
        self.between = bytearray()
        self.last = b""
        self.done = False  # past `kept`: no later cut can qualify
        self.padding = False

    def run(self, path: Path) -> None:
        with open(path, "rb") as f:
            offset, tail = 0, b""
            while not self.done and (chunk := f.read(CHUNK)):
                data, base = tail + chunk, offset - len(tail)
                pos = len(tail)
                at = data.find(SYNC)
                while at != -1 and not self.done:
                    end = at + len(SYNC)
                    if end > pos:
                        self.feed(data[pos:end], base + pos)
                        self.flush_point(base + end)
                        pos = end
                    at = data.find(SYNC, at + 1)
                self.feed(data[pos:], base + pos)
                offset += len(chunk)
                tail = data[-(len(SYNC) - 1) :]

    def feed(self, data: bytes, at: int) -> None:
        while data and not self.done and not self.padding:
            m = self.member
            out = m.feed(data)
            self._take(out, self.text + m.text - len(out))
            if not m.d.eof:
                return
            used = len(data) - len(m.d.unused_data)
            data, at = m.d.unused_data, at + used
            self.text += m.text
            if self.text <= self.kept:
                self.best, self.between = _Cut(at, self.text), bytearray()
            self.member = _Member()
            self.padding = not data.strip(b"\0") and bool(data)  # zero padding: gzip readers skip it

    def _take(self, out: bytes, start: int) -> None:
        take = max(0, min(len(out), self.kept - start))
        if take:
            self.between += out[:take]
            self.last = out[take - 1 : take]
        if start + len(out) > self.kept:
            self.done = True

    def flush_point(self, offset: int) -> None:
        if self.done or self.padding or not self.member.closes_here():
            return
        here = self.text + self.member.text
        if here <= self.kept:
            self.best = _Cut(offset, here, True, self.member.crc, self.member.text)
            self.between = bytearray()
