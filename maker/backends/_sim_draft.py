"""The simulated model as a drafter: the next M steps' answers in one reply.

A draft prompt is one a task's oracle recognises with `solve_draft` (Hanoi:
"find the next M moves"). The reply lists the M answers in the task's own
format, each right with probability `draft_accuracy`, independently per step
(a wrong one is a plausible wrong answer, from the oracle's `wrong`). A draft
writes only answers, no reasoning: `draft_tokens` output tokens per step. Its
latency is that of a call whose output is M × draft_tokens tokens long instead
of `tokens_out`: a fixed time to the first token plus a time per token, in the
proportions of gpt-4.1-mini's (0.9 s to the first token of a 7.9 s call).
Like every reply of the simulator it is a pure function of (seed, prompt, draw).
"""

from __future__ import annotations

import zlib
from random import Random
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from maker.tasks import Messages

if TYPE_CHECKING:
    from maker.backends._sim import SimModel

FIRST_TOKEN = 0.11  # share of a call's latency spent before its first output token


@runtime_checkable
class DraftOracle(Protocol):
    """What the simulator needs of a task to play a drafter."""

    def solve_draft(self, messages: Messages) -> list[Any] | None: ...

    def render_draft(self, answers: list[Any]) -> str: ...

    def wrong(self, answer: Any, rng: Random) -> Any: ...


def _right_answers(model: SimModel, messages: Messages) -> tuple[DraftOracle, list[Any]] | None:
    for oracle in model._oracles:
        # getattr, not isinstance: a protocol check on every sample of a long run costs more than the reply
        solve = getattr(oracle, "solve_draft", None)
        if solve is not None:
            answers = solve(messages)
            if answers is not None:
                return cast(DraftOracle, oracle), answers
    return None


def draft_reply(model: SimModel, messages: Messages, max_tokens: int, draw: int) -> tuple[str, str, int] | None:
    """(text, finish reason, output tokens) of a draft, or None if `messages` ask for no draft."""
    found = _right_answers(model, messages)
    if found is None:
        return None
    oracle, answers = found
    p = model.profile
    user = messages[-1]["content"]
    rng = Random(model.seed * 1_000_033 + zlib.crc32(user.encode()) * 31 + draw)
    drafted = [a if rng.random() < p.draft_accuracy else oracle.wrong(a, rng) for a in answers]
    text = oracle.render_draft(drafted)
    tokens = max(1, len(drafted) * p.draft_tokens)
    if tokens > max_tokens:
        return text[: len(text) // 2], "length", max_tokens
    return text, "stop", tokens


def latency_scale(model: SimModel, messages: Messages | None) -> float:
    """How much longer (or shorter) than an ordinary reply this prompt's reply takes: 1 unless a draft."""
    if messages is None:
        return 1.0
    found = _right_answers(model, messages)
    if found is None:
        return 1.0
    p = model.profile
    steps = len(found[1])
    return FIRST_TOKEN + (1 - FIRST_TOKEN) * steps * p.draft_tokens / max(1, p.tokens_out)
