"""The trace format: one JSON object per line, a header first.

Every event has a `type`. The full field list lives in docs/traces.md; a test
checks that the two agree. Bump SCHEMA_VERSION on any incompatible change and
add an upgrader in `_reader.py` so old traces keep reading.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

SCHEMA_VERSION = 1

# type → fields every event of that type carries (more may follow).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "header": (
        "type",
        "schema_version",
        "run_id",
        "maker_version",
        "created",
        "task",
        "model",
        "voting",
        "seed",
        "settings",
        "mode",
    ),
    "sample": (
        "type",
        "step",
        "i",
        "temperature",
        "text",
        "finish",
        "tokens_in",
        "tokens_out",
        "latency",
        "retries",
        "flag",
        "key",
        "late",
    ),
    "decision": (
        "type",
        "step",
        "kind",
        "winner",
        "answer",
        "votes",
        "samples",
        "flagged",
        "rounds",
        "truth",
        "correct",
    ),
    "step_error": ("type", "step", "error", "message", "votes", "samples", "flagged"),
    "discard": ("type", "step", "basis", "samples", "in_flight"),
    "resume": ("type", "created", "committed_steps", "settings"),
    "end": ("type", "outcome", "message", "totals", "wall_s"),
}


def prompt_digest(messages: Iterable[Mapping[str, str]]) -> str:
    """A short fingerprint of a step's prompt (crc32 of its messages, 8 hex digits).

    Recorded with each LLM decision so that replay can tell when the code now
    builds a different prompt than the one the recorded samples answered.
    A change detector, not a security hash.
    """
    crc = 0
    for m in messages:
        crc = zlib.crc32(f"{m['role']}\x1f{m['content']}\x1e".encode(), crc)
    return f"{crc:08x}"


OUTCOMES = ("solved", "failed", "measured", "undecided", "budget", "error", "interrupted")
