"""One trace from a sharded run's shards: what `maker trace merge MANIFEST` writes.

The merged trace is derived, never the record: each shard's own trace stays
the source of truth, and merging again rebuilds the same events. The header
is the first shard's, naming the parent run and the shards merged instead of
one shard; then each shard's samples, decisions and step errors, shard by
shard; then one end event whose totals are the shards' summed. Resume events
are left out (a merged trace is not resumed: its shards are).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maker.errors import TraceError
from maker.traces._manifest import read_manifest, shard_traces
from maker.traces._reader import read_events
from maker.traces._writer import TraceWriter

_KEPT = ("sample", "decision", "step_error")
_FINISHED = ("solved", "failed", "measured")


def merge_shards(manifest: str | Path, out: str | Path) -> Path:
    """Write the shards of `manifest` as one trace at `out` (which must not exist); returns `out`."""
    data = read_manifest(manifest)
    traces = shard_traces(manifest)
    if not traces:
        raise TraceError(f"{manifest}: none of its shards has a trace yet")
    headers = [next(read_events(path)) for path in traces]
    writer = TraceWriter(out)
    try:
        writer.write(_merged_header(headers, data))
        ends: list[dict[str, Any]] = []
        for path in traces:
            events = read_events(path)
            next(events)
            ends.append(_copy(events, writer))
        writer.write(_merged_end(ends, len(data["shards"]) - len(traces)))
    finally:
        writer.close()
    return Path(out)


def _merged_header(headers: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    header = {k: v for k, v in headers[0].items() if k != "shard"}
    header["run_id"] = manifest.get("run_id", header.get("run_id"))
    header["merged"] = {"shards": len(manifest["shards"]), "with_traces": len(headers)}
    if header.get("mode") == "independent":
        header["steps_evaluated"] = sum(int(h.get("steps_evaluated") or 0) for h in headers)
    return header


def _copy(events: Iterator[dict[str, Any]], writer: TraceWriter) -> dict[str, Any]:
    """Copy one shard's kept events; return its last session's end ({} if it never ended)."""
    end: dict[str, Any] = {}
    for event in events:
        kind = event.get("type")
        if kind in _KEPT:
            writer.write(event)
        elif kind == "end":
            end = event
        elif kind == "resume":
            end = {}
    return end


_NOT_COUNTS = frozenset({"max_rounds", "hardest_step", "first_error"})


def _merged_end(ends: list[dict[str, Any]], missing: int) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for end in ends:
        for key, value in (end.get("totals") or {}).items():
            # Counts add up; step ids (hardest_step, first_error) do not.
            if isinstance(value, int) and not isinstance(value, bool) and key not in _NOT_COUNTS:
                totals[key] = totals.get(key, 0) + value
    totals["max_rounds"] = max((int((e.get("totals") or {}).get("max_rounds") or 0) for e in ends), default=0)
    outcomes = {e.get("outcome") for e in ends} | ({"interrupted"} if missing else set())
    if len(outcomes) == 1:
        outcome = outcomes.pop() or "interrupted"
    else:
        unfinished = sorted(str(o or "interrupted") for o in outcomes if o not in _FINISHED)
        outcome = unfinished[0] if unfinished else "failed"
    return {
        "type": "end",
        "outcome": outcome,
        "message": None if outcome in _FINISHED else "merged from shards that did not all finish",
        "totals": totals,
        "wall_s": max((float(e.get("wall_s") or 0.0) for e in ends), default=0.0),
    }
