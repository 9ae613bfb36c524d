"""Reading traces back: strict about corruption, forgiving about a torn last line.

A process killed mid-write can leave its last line unfinished (or a gzip
stream cut short); that tail is dropped silently: it was never committed. Any
other damage is a one-line `TraceError` that names the file (and the line):
a missing file, a directory, an empty file, a file cut inside its header, a
file that is not a maker trace, a schema version this maker cannot read, a
corrupt line before the end, or corrupt gzip data.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from maker.errors import TraceError
from maker.traces._reader_shapes import decision_ok, sample_ok
from maker.traces._schema import EVENT_FIELDS, SCHEMA_VERSION, shape_problem

# Named upgraders: version N → N+1, applied to each event of an older trace.
UPGRADERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16  # decompressed bytes asked of gzip at a time


class _Lines:
    """The raw lines of a plain or gzip trace; `torn` says the stream ended early."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn = False
        self.number = 0
        self.consumed = 0  # bytes of (decompressed) text up to the end of the line last yielded

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            gz = f.read(2) == GZIP_MAGIC
            f.seek(0)
            if not gz:
                for self.number, raw in enumerate(f, start=1):
                    self.consumed += len(raw)
                    yield raw
                return
            stream = gzip.GzipFile(fileobj=f, mode="rb")
            try:
                yield from self._split(stream)
            except EOFError:
                # A prefix of a valid gzip stream (a crash mid-write): all before the cut is good.
                self.torn = True
            except (zlib.error, gzip.BadGzipFile) as exc:
                raise TraceError(f"{self.path}: corrupt gzip data after line {self.number} ({exc})") from None

    def _split(self, stream: gzip.GzipFile) -> Iterator[bytes]:
        """The lines of `stream`, as iterating it gives them, from large reads.

        Iterating a GzipFile costs a Python-level call per line; `read1` hands
        over whatever one decompression step produced, so every byte before a
        cut or a corrupt block still arrives as before, and is split here in C.
        """
        rest = b""
        while chunk := stream.read1(CHUNK):
            for raw in io.BytesIO(rest + chunk if rest else chunk):
                if not raw.endswith(b"\n"):
                    rest = raw  # the start of a line the next chunk ends
                    break
                self.number += 1
                self.consumed += len(raw)
                yield raw
            else:
                rest = b""
        if rest:  # a last line without its newline: the reader decides what it is
            self.number += 1
            self.consumed += len(rest)
            yield rest


def check_trace_file(path: str | os.PathLike[str]) -> Path:
    """Fail early, in one line, on paths that cannot be a trace at all."""
    path = Path(path)
    try:
        if not path.exists():
            raise TraceError(f"{path}: no such file")
        if path.is_dir():
            raise TraceError(f"{path}: is a directory, not a trace")
        if not path.is_file():
            raise TraceError(f"{path}: not a regular file, so not a trace")
        if path.stat().st_size == 0:
            raise TraceError(f"{path}: empty trace (0 bytes, no header line)")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    return path


def read_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield every event of a trace, header first, upgraded to the current schema.

    File-level problems (missing, directory, empty) raise at once; problems
    inside the file raise when the reader reaches them.
    """
    path = check_trace_file(path)
    return _events(path, _Lines(path))


def _events(path: Path, lines: _Lines, lean: Callable[[bytes], Any] | None = None) -> Iterator[dict[str, Any]]:
    """The checked events of `lines`; with `lean`, it decodes what it can of the lines after the header
    (see `_reader_lean.py`), and every line it refuses goes through the checks below as usual."""
    version: int | None = None
    try:
        for raw in lines:
            if lean is not None and version == SCHEMA_VERSION:
                try:
                    yield lean(raw)
                    continue
                except (msgspec.DecodeError, RecursionError, _Refused):
                    pass
            number = lines.number
            event = _parse(raw)
            if event is None:
                if not raw.endswith(b"\n"):
                    if number == 1:
                        raise _first_line_error(path, raw, torn=True)
                    return  # torn last line: never committed
                if number == 1:
                    raise _first_line_error(path, raw, torn=False)
                raise TraceError(f"{path}:{number}: corrupt trace line (not a JSON event: {_excerpt(raw)})")
            if number == 1:
                version = _check_header(path, event)
            event = _upgrade(event, version)
            fast = _FAST.get(event["type"])
            if fast is None or not fast(event):
                missing = _missing(event)
                if missing:
                    raise TraceError(
                        f"{path}:{number}: corrupt trace line (a {event['type']} event without {missing!r})"
                    )
                problem = shape_problem(event)
                if problem:
                    raise TraceError(f"{path}:{number}: corrupt trace line (a {event['type']} event whose {problem})")
            if (b"\\ud" in raw or b"\\uD" in raw) and not _encodable(event):
                raise TraceError(f"{path}:{number}: corrupt trace line (a lone UTF-16 surrogate in a string)")
            yield event
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    if version is None:
        if lines.torn:
            raise TraceError(f"{path}: truncated trace (the gzip stream ends before the header line does)")
        raise TraceError(f"{path}: empty trace (no header line)")


class _Refused(Exception):
    """A lean decoder's: this line is for the general checks."""


# msgspec decodes a line about four times faster than json. Whatever it refuses
# (NaN, numbers out of its range, lone surrogates, absurd nesting) goes to json,
# which decides as it always did: what a trace means does not depend on the parser.
_decode = msgspec.json.Decoder().decode
_FAST = {"sample": sample_ok, "decision": decision_ok}


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        event = _decode(raw)
    except (msgspec.DecodeError, RecursionError):
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    return event


# What readers rely on in each event; checked on every line, so a hand-edited or
# half-written event is a clear error, not a KeyError deep in replay. The header
# is held to what rebuilding the run needs (older traces may lack newer fields).
_NEEDED = {
    **{kind: tuple(f for f in fields if f != "type") for kind, fields in EVENT_FIELDS.items()},
    "header": ("task", "model", "voting"),
}


def _encodable(event: dict[str, Any]) -> bool:
    """False if a string holds a lone surrogate (valid JSON, but not text: it cannot be printed or written)."""
    try:
        json.dumps(event, ensure_ascii=False).encode()
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _missing(event: dict[str, Any]) -> str | None:
    for name in _NEEDED.get(event["type"], ()):
        if name not in event:
            return name
    return None


def _excerpt(raw: bytes) -> str:
    text = raw[:40].decode("utf-8", "replace").strip()
    return repr(text + ("…" if len(raw) > 40 else ""))


def _first_line_error(path: Path, raw: bytes, *, torn: bool) -> TraceError:
    if torn and raw.lstrip().startswith(b"{"):
        return TraceError(f"{path}: truncated trace (the file ends inside its header line)")
    return TraceError(f"{path}: not a maker trace (line 1 is not a JSON header)")


def _check_header(path: Path, event: dict[str, Any]) -> int:
    if event.get("type") != "header":
        raise TraceError(f"{path}: not a maker trace (first line is a {event.get('type')!r} event, not a header)")
    version = event.get("schema_version")
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        raise TraceError(
            f"{path}: trace schema version {version!r} is not supported (this maker reads 1..{SCHEMA_VERSION});"
            " upgrade maker to read it"
        )
    return version


def _upgrade(event: dict[str, Any], version: int | None) -> dict[str, Any]:
    v = version or SCHEMA_VERSION
    while v < SCHEMA_VERSION:
        event = UPGRADERS[v](event)
        v += 1
    return event


@dataclass(slots=True)
class Trace:
    """A whole trace in memory, grouped for the readers that need random access."""

    path: Path
    header: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    def samples_by_step(self) -> dict[Any, list[dict[str, Any]]]:
        grouped: dict[Any, list[dict[str, Any]]] = {}
        for s in self.samples:
            grouped.setdefault(s["step"], []).append(s)
        return grouped


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace fully. For million-step traces prefer streaming with `read_events`."""
    events = read_events(path)
    header = next(events)
    trace = Trace(Path(path), header)
    buckets = {
        "sample": trace.samples,
        "decision": trace.decisions,
        "step_error": trace.errors,
        "resume": trace.resumes,
    }
    for event in events:
        kind = event["type"]
        if kind == "end":
            trace.end = event
        elif kind in buckets:
            buckets[kind].append(event)
    return trace
