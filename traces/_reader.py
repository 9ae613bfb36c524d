"""Reading traces back: strict about corruption, forgiving about a torn last line.

A process killed mid-write can leave its last line unfinished; that line is
dropped silently (it was never committed). Anything else that is not a valid
event is a `TraceError` naming the file and line.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from maker.errors import TraceError
from traces._schema import SCHEMA_VERSION

# Named upgraders: version N → N+1, applied to each event of an older trace.
UPGRADERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    if not gz:
        with open(path, "rb") as f:
            yield from f
        return
    with gzip.open(path, "rb") as f:
        try:
            yield from f
        except (EOFError, zlib.error, gzip.BadGzipFile):
            # A gzip stream cut off by a crash: everything before the cut is good.
            return


def read_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield every event of a trace, header first, upgraded to the current schema."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, not a trace")
    version = None
    pending_error: TraceError | None = None
    try:
        for number, raw in enumerate(_lines(path), start=1):
            if pending_error is not None:
                raise pending_error  # a bad line that was not the last one
            try:
                event = json.loads(raw)
                if not isinstance(event, dict) or "type" not in event:
                    raise ValueError("not an event object")
            except (ValueError, UnicodeDecodeError) as exc:
                if not raw.endswith(b"\n"):
                    return  # torn last line: never committed
                if number == 1:
                    raise TraceError(f"{path}: not a maker trace (line 1 is not a JSON header)") from None
                pending_error = TraceError(f"{path}:{number}: corrupt trace line ({exc})")
                continue
            if number == 1:
                version = _check_header(path, event)
            yield _upgrade(event, version)
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    if pending_error is not None:
        raise pending_error
    if version is None:
        raise TraceError(f"{path}: empty trace (no header line)")


def _check_header(path: Path, event: dict[str, Any]) -> int:
    if event.get("type") != "header":
        raise TraceError(f"{path}: not a maker trace (first line is a {event.get('type')!r} event, not a header)")
    version = event.get("schema_version")
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
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
    buckets = {"sample": trace.samples, "decision": trace.decisions, "step_error": trace.errors,
               "resume": trace.resumes}
    for event in events:
        kind = event["type"]
        if kind == "end":
            trace.end = event
        elif kind in buckets:
            buckets[kind].append(event)
    return trace
