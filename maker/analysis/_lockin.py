"""Locked-in suspicion: steps whose winning answer most of the step's own samples disagreed with.

Ahead-by-k decides when one answer leads the runner-up by k, not when most
samples agree. When a model's mistakes at a step are spread over several
wrong answers, or when the step is one the model gets wrong more often
than right, the winner can be an answer that most samples did not give. A
trace alone cannot say the winner is wrong, but it can name the steps where
the vote went against most of the samples: those are where a systematic
error (p ≤ 0.5 at that input, see `maker calibrate --repeats`) hides.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from maker.analysis._stats import Proportion
from maker.traces._reader import read_events


@dataclass(frozen=True, slots=True)
class LockedIn:
    """One suspicious step: the winner's share of the step's valid samples (late ones included)."""

    step: Hashable
    winner: str
    share: Proportion
    answers: dict[str, int]
    correct: bool | None  # against ground truth, when the trace has it

    def describe(self) -> str:
        top = ", ".join(f"{n}× {k!r}" for k, n in sorted(self.answers.items(), key=lambda kv: -kv[1])[:4])
        truth = "" if self.correct is None else (", and it is right" if self.correct else ", and it is wrong")
        return f"step {self.step}: {self.winner!r} won with {self.share.hits} of {self.share.n} samples ({top}){truth}"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "winner": self.winner,
            "share": self.share.to_json(),
            "answers": self.answers,
            "correct": self.correct,
        }


def locked_in(path: str | os.PathLike[str]) -> tuple[LockedIn, ...]:
    """Every decided step whose winner got at most half of its step's valid samples (streaming: any size)."""
    pending: dict[Any, dict[str, int]] = {}
    out: list[LockedIn] = []
    for e in read_events(path):
        kind = e.get("type")
        if kind == "sample" and e.get("key") is not None:
            counts = pending.setdefault(_key(e["step"]), {})
            counts[e["key"]] = counts.get(e["key"], 0) + 1
        elif kind == "decision" and e.get("kind") == "llm":
            answers = pending.pop(_key(e["step"]), {})
            valid = sum(answers.values())
            won = answers.get(e["winner"], 0)
            if valid >= 2 and 2 * won <= valid:
                out.append(LockedIn(e["step"], e["winner"], Proportion(won, valid), answers, e.get("correct")))
    return tuple(out)


def _key(step: Any) -> Hashable:
    return tuple(step) if isinstance(step, list) else step


def locked_in_line(found: tuple[LockedIn, ...]) -> str | None:
    """The finding, in one sentence, or None."""
    if not found:
        return None
    wrong = [f for f in found if f.correct is False]
    scored = [f for f in found if f.correct is not None]
    truth = f"; {len(wrong)} of {len(scored)} are wrong against ground truth" if scored else ""
    steps = ", ".join(str(f.step) for f in found[:8]) + (", …" if len(found) > 8 else "")
    return (
        f"locked-in suspicion: {len(found)} step(s) decided against most of their samples (steps {steps}){truth}; "
        "calibrate those inputs with --repeats: at p ≤ 0.5 voting makes the wrong answer win"
    )
