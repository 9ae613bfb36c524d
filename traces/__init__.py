"""Traces: the append-only JSONL record of every sample and decision of a run.

The writer is the run's write-ahead log; the reader feeds replay, resume and
analysis. The schema is documented in docs/traces.md.
"""

from __future__ import annotations

from maker.traces._inspect import TraceSummary, summarize
from maker.traces._manifest import is_manifest, read_manifest, shard_traces
from maker.traces._merge import merge_shards
from maker.traces._reader import Trace, load_trace, read_events
from maker.traces._repair import repair_tail
from maker.traces._replay import Revote, StepRevote, revote
from maker.traces._schema import EVENT_FIELDS, OUTCOMES, SCHEMA_VERSION
from maker.traces._writer import TraceWriter

__all__ = [
    "EVENT_FIELDS",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "Revote",
    "StepRevote",
    "Trace",
    "TraceSummary",
    "TraceWriter",
    "is_manifest",
    "load_trace",
    "merge_shards",
    "read_events",
    "read_manifest",
    "repair_tail",
    "revote",
    "shard_traces",
    "summarize",
]
