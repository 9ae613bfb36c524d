"""The trace format: one JSON object per line, a header first.

Every event has a `type`. The full field list lives in docs/traces.md; a test
checks that the two agree. Bump SCHEMA_VERSION on any incompatible change and
add an upgrader in `_reader.py` so old traces keep reading.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# type → fields every event of that type carries (more may follow).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "header": (
        "type", "schema_version", "run_id", "maker_version", "created", "task", "model", "voting", "seed", "settings",
        "mode",
    ),
    "sample": (
        "type", "step", "i", "temperature", "text", "finish", "tokens_in", "tokens_out", "latency", "retries",
        "flag", "key", "late",
    ),
    "decision": (
        "type", "step", "kind", "winner", "answer", "votes", "samples", "flagged", "rounds", "truth", "correct",
    ),
    "step_error": ("type", "step", "error", "message", "votes", "samples", "flagged"),
    "resume": ("type", "created", "committed_steps", "settings"),
    "end": ("type", "outcome", "message", "totals", "wall_s"),
}

OUTCOMES = ("solved", "failed", "measured", "undecided", "budget", "error", "interrupted")
