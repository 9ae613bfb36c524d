"""The reader's fast path for the two events a big trace is made of: samples and decisions.

A million-step trace holds four million of them, and the general checks
(`_reader._missing`, then `_schema.shape_problem`, a loop over a table of
checks per field) cost more than decoding the line. These predicates are the
same rules written out as one expression per event type. They only ever say
"fine": when one says no, the reader runs the general checks, which name the
problem. A test holds the two to the same answers (tests/test_trace_reading.py).
"""

from __future__ import annotations

import math
from typing import Any

from maker.traces._schema import LIMIT, PER_STEP

_isfinite = math.isfinite


def _number(v: object) -> bool:
    t = type(v)
    return (t is int and -LIMIT < v < LIMIT) or (t is float and _isfinite(v))  # type: ignore[operator,arg-type]


def sample_ok(e: dict[str, Any]) -> bool:
    """Every field a sample needs is there and has its type (SHAPES["sample"])."""
    try:
        step, i, text, finish = e["step"], e["i"], e["text"], e["finish"]
        tin, tout, retries, flag, key = e["tokens_in"], e["tokens_out"], e["retries"], e["flag"], e["key"]
        temperature, latency, late = e["temperature"], e["latency"], e["late"]
    except KeyError:
        return False
    return (
        (type(step) is str or (type(step) is int and -LIMIT < step < LIMIT))
        and type(i) is int
        and 0 <= i < PER_STEP
        and type(text) is str
        and (finish is None or type(finish) is str)
        and type(tin) is int
        and 0 <= tin < LIMIT
        and type(tout) is int
        and 0 <= tout < LIMIT
        and type(retries) is int
        and 0 <= retries < LIMIT
        and (flag is None or type(flag) is str)
        and (key is None or type(key) is str)
        and type(late) is bool
        and _number(temperature)
        and _number(latency)
    )


def decision_ok(e: dict[str, Any]) -> bool:
    """Every field a decision needs is there and has its type (SHAPES["decision"])."""
    try:
        step, kind, winner, votes = e["step"], e["kind"], e["winner"], e["votes"]
        samples, flagged, rounds, truth, correct = e["samples"], e["flagged"], e["rounds"], e["truth"], e["correct"]
        e["answer"]
    except KeyError:
        return False
    prompt = e.get("prompt")
    if not (
        (type(step) is str or (type(step) is int and -LIMIT < step < LIMIT))
        and (kind == "llm" or kind == "python")
        and (winner is None or type(winner) is str)
        and type(samples) is int
        and 0 <= samples < PER_STEP
        and type(flagged) is int
        and 0 <= flagged < PER_STEP
        and type(rounds) is int
        and 0 <= rounds < PER_STEP
        and (truth is None or type(truth) is str)
        and (correct is None or type(correct) is bool)
        and (prompt is None or type(prompt) is str)
        and type(votes) is dict
    ):
        return False
    total = 0
    for n in votes.values():
        if type(n) is not int or n < 0:
            return False
        total += n
    return total < PER_STEP
