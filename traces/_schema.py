"""The trace format: one JSON object per line, a header first.

Every event has a `type`. The full field list lives in docs/traces.md; a test
checks that the two agree. Bump SCHEMA_VERSION on any incompatible change and
add an upgrader in `_reader.py` so old traces keep reading.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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
    "draft": ("type", "step", "basis", "m", "text", "tokens_in", "tokens_out", "flag", "steps", "keys"),
    "resume": ("type", "created", "committed_steps", "settings"),
    "end": ("type", "outcome", "message", "totals", "wall_s"),
    "governor": ("type", "event", "endpoint", "t"),
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


# -- shape checks ----------------------------------------------------------------------------------------------
# What every reader relies on, checked once per event by the reader: a hand-edited
# or damaged trace is one clear line there, never a TypeError deep inside replay,
# resume or a table. Plain isinstance checks, cheap enough for million-step traces.


# Integers a trace holds are exact in every JSON reader (below 2**53): counts, indexes,
# step ids. Anything larger is damage, and would overflow the analysis' arrays.
LIMIT = 1 << 53


def _is_int(v: object) -> bool:
    return type(v) is int and -LIMIT < v < LIMIT


def _is_count(v: object) -> bool:
    return type(v) is int and 0 <= v < LIMIT


def _is_number(v: object) -> bool:
    return (type(v) is int and -LIMIT < v < LIMIT) or (type(v) is float and math.isfinite(v))


def _is_step(v: object) -> bool:
    return type(v) is str or (type(v) is int and -LIMIT < v < LIMIT)


def _is_opt_str(v: object) -> bool:
    return v is None or type(v) is str


def _is_opt_bool(v: object) -> bool:
    return v is None or type(v) is bool


# Per-step counts (samples, votes, rounds) are far below 2**31: analysis keeps them in 32-bit arrays.
PER_STEP = 1 << 31


def _is_small(v: object) -> bool:
    return type(v) is int and 0 <= v < PER_STEP


def _is_votes(v: object) -> bool:
    if type(v) is not dict:
        return False
    values = v.values()
    return all(type(n) is int and n >= 0 for n in values) and sum(values) < PER_STEP


def _is_dict(v: object) -> bool:
    return type(v) is dict


def _is_str(v: object) -> bool:
    return type(v) is str


def _is_bool(v: object) -> bool:
    return type(v) is bool


def _is_positive(v: object) -> bool:
    return type(v) is int and 1 <= v < LIMIT


def _is_outcome(v: object) -> bool:
    return v in OUTCOMES


def _is_kind(v: object) -> bool:
    return v == "llm" or v == "python" or v == "candidates"


def _is_mode(v: object) -> bool:
    return v == "sequential" or v == "independent"


def _anything(v: object) -> bool:
    return True


# type → (field, check, what it must be); a field not present is checked by the
# reader's required-fields list, an optional one only when it is there.
SHAPES: dict[str, tuple[tuple[str, Callable[[object], bool], str], ...]] = {
    "sample": (
        ("step", _is_step, "an integer (below 2**53) or a string"),
        ("i", _is_small, "a non-negative integer (below 2**31)"),
        ("temperature", _is_number, "a finite number"),
        ("text", _is_str, "a string"),
        ("finish", _is_opt_str, "a string or null"),
        ("tokens_in", _is_count, "a non-negative integer (below 2**53)"),
        ("tokens_out", _is_count, "a non-negative integer (below 2**53)"),
        ("latency", _is_number, "a finite number"),
        ("retries", _is_count, "a non-negative integer (below 2**53)"),
        ("flag", _is_opt_str, "a string or null"),
        ("key", _is_opt_str, "a string or null"),
        ("late", _is_bool, "true or false"),
    ),
    "decision": (
        ("step", _is_step, "an integer (below 2**53) or a string"),
        ("kind", _is_kind, '"llm", "python" or "candidates"'),
        ("winner", _is_opt_str, "a string or null"),
        ("answer", _anything, ""),
        ("votes", _is_votes, "an object of non-negative integer counts (their sum below 2**31)"),
        ("samples", _is_small, "a non-negative integer (below 2**31)"),
        ("flagged", _is_small, "a non-negative integer (below 2**31)"),
        ("rounds", _is_small, "a non-negative integer (below 2**31)"),
        ("truth", _is_opt_str, "a string or null"),
        ("correct", _is_opt_bool, "true, false or null"),
        ("prompt", _is_opt_str, "a string or null"),
    ),
    "step_error": (
        ("step", _is_step, "an integer (below 2**53) or a string"),
        ("error", _is_str, "a string"),
        ("message", _is_opt_str, "a string or null"),
        ("votes", _is_votes, "an object of non-negative integer counts (their sum below 2**31)"),
        ("samples", _is_small, "a non-negative integer (below 2**31)"),
        ("flagged", _is_small, "a non-negative integer (below 2**31)"),
    ),
    "draft": (
        ("step", _is_step, "an integer (below 2**53) or a string"),
        ("basis", _is_str, "a string"),
        ("m", _is_positive, "a positive integer (below 2**53)"),
        ("text", _is_str, "a string"),
        ("tokens_in", _is_count, "a non-negative integer (below 2**53)"),
        ("tokens_out", _is_count, "a non-negative integer (below 2**53)"),
        ("retries", _is_count, "a non-negative integer (below 2**53)"),
        ("flag", _is_opt_str, "a string or null"),
        ("latency", _is_number, "a finite number"),
    ),
    "resume": (
        ("created", _is_str, "a string"),
        ("committed_steps", _is_count, "a non-negative integer (below 2**53)"),
        ("settings", _is_dict, "an object"),
        ("max_samples", _is_positive, "a positive integer (below 2**53)"),
        ("model", _is_str, "a string"),
        ("session", _is_positive, "a positive integer (below 2**53)"),
        ("recorded_samples_unfinished", _is_count, "a non-negative integer (below 2**53)"),
        ("torn_bytes_dropped", _is_count, "a non-negative integer (below 2**53)"),
    ),
    "end": (
        ("outcome", _is_outcome, "one of " + ", ".join(OUTCOMES)),
        ("message", _is_opt_str, "a string or null"),
        ("totals", _is_dict, "an object"),
        ("wall_s", _is_number, "a finite number"),
    ),
    "header": (
        ("run_id", _is_str, "a string"),
        ("maker_version", _is_str, "a string"),
        ("created", _is_str, "a string"),
        ("task", _is_dict, "an object"),
        ("model", _is_str, "a string"),
        ("model_spec", _is_opt_str, "a string or null"),
        ("voting", _is_dict, "an object"),
        ("seed", _is_int, "an integer"),
        ("settings", _is_dict, "an object"),
        ("mode", _is_mode, '"sequential" or "independent"'),
        ("steps_evaluated", _anything, ""),
    ),
}

# Totals are counts (hardest_step is a step id or null); replay compares them, tables print them.
_TOTAL_STEPS = frozenset({"hardest_step", "first_error"})  # totals that name a step, not a count


def shape_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with the shape of `event` (its fields' types), or None.

    Fields are checked only where present; which ones must be present is the
    reader's required-fields rule. Unknown event types pass (newer writers).
    """
    kind = event["type"]
    for name, check, what in SHAPES.get(kind, ()):
        if name in event and not check(event[name]):
            return f"{name} must be {what}, not {_show(event[name])}"
    if kind == "header":
        return _header_problem(event)
    if kind == "end":
        for name, value in event["totals"].items():
            step = name in _TOTAL_STEPS
            ok = (value is None or _is_step(value)) if step else _is_count(value)
            if not ok:
                return f"totals.{name} must be {'a step or null' if step else 'a count'}, not {_show(value)}"
    return None


def _header_problem(event: dict[str, Any]) -> str | None:
    task = event.get("task")
    if task is not None:
        if "name" in task and type(task["name"]) is not str:
            return f"task.name must be a string, not {_show(task.get('name'))}"
        if type(task.get("params", {})) is not dict:
            return f"task.params must be an object, not {_show(task.get('params'))}"
    voting = event.get("voting")
    if voting is not None:
        if "rule" in voting and type(voting["rule"]) is not str:
            return f"voting.rule must be a string, not {_show(voting.get('rule'))}"
        for name in ("k", "n", "max_samples", "max_output_tokens"):
            if name in voting and not _is_positive(voting[name]):
                return f"voting.{name} must be a positive integer, not {_show(voting[name])}"
        for name in ("temperature", "first_temperature"):
            if name in voting and not _is_number(voting[name]):
                return f"voting.{name} must be a number, not {_show(voting[name])}"
        flags = voting.get("red_flags", [])
        if type(flags) is not list or not all(type(f) is str for f in flags):
            return f"voting.red_flags must be a list of names, not {_show(flags)}"
    settings = event.get("settings")
    if settings is not None:
        for name, least in (("concurrency", 1), ("window", 2)):
            if name in settings and not (_is_int(settings[name]) and settings[name] >= least):
                return f"settings.{name} must be an integer >= {least}, not {_show(settings[name])}"
        if settings.get("max_steps") is not None and not _is_positive(settings["max_steps"]):
            return f"settings.max_steps must be a positive integer or null, not {_show(settings['max_steps'])}"
    steps = event.get("steps_evaluated")
    if steps is not None and not _is_count(steps):
        return f"steps_evaluated must be a non-negative integer, not {_show(steps)}"
    return None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
