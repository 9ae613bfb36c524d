"""Judged votes: deciding between open-ended candidates that rarely agree word for word.

Exact vote keys work when answers canonicalise (a number, a move). A free-form
proposal (how to split a problem, a paragraph) almost never repeats exactly, so
an ahead-by-k race over its keys never ends. A judged vote decides in two
moves instead:

1. collect: draw samples of the step until `n` of them survive the red flags;
   candidates with equal vote keys are one candidate (canonical keys still do
   their work where a task can canonicalise), in the order first seen;
2. judge: judge samples each name one candidate by its number, read by a
   strict parser (a number out of range is a red flag, never a vote); the
   same decision rules as everywhere (ahead-by-k, majority) decide among the
   judges' votes.

A lone candidate needs no judges. Everything here is pure: the runtime draws
the samples, this module says what they mean, so replay and re-voting of the
judges' votes work exactly as for any other step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from maker.errors import ConfigError
from maker.voting._redflags import ParseError
from maker.voting._rules import AheadByK, DecisionRule, Majority
from maker.voting._tally import Tally

NO_CANDIDATE = "none"  # the truth key of a judge vote when no candidate is right

_CHOICE_RE = re.compile(r"(?<![A-Za-z_])choice\s*=\s*([0-9]+)(?![0-9A-Za-z_]|[.,][0-9])")


@dataclass(frozen=True, slots=True)
class Collect:
    """The candidate-collecting "rule": decided once `n` valid samples are in.

    Its winner (the first candidate) means nothing by itself; it only stops the
    collection. The judges decide.
    """

    n: int = 3
    name: str = "collect"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"a judged vote needs at least 1 candidate, got {self.n}")

    def winner(self, tally: Tally) -> str | None:
        if tally.votes < self.n:
            return None
        return next(iter(tally.counts))

    def needed(self, tally: Tally) -> int:
        return max(0, self.n - tally.votes)

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "n": self.n}


@dataclass(frozen=True, slots=True)
class Judged:
    """How a judged vote runs.

    candidates: valid samples to collect (default 2k − 1 for ahead-by-k, as the
        paper's Appendix F does; n for majority; 3 otherwise).
    rule: how the judges' votes decide (default: the run's rule).
    """

    candidates: int | None = None
    rule: DecisionRule | None = None

    def __post_init__(self) -> None:
        if self.candidates is not None and self.candidates < 1:
            raise ConfigError(f"a judged vote needs at least 1 candidate, got {self.candidates}")

    def count_for(self, run_rule: DecisionRule) -> int:
        """How many candidates to collect under `run_rule`."""
        if self.candidates is not None:
            return self.candidates
        rule = self.rule or run_rule
        if isinstance(rule, AheadByK):
            return 2 * rule.k - 1
        if isinstance(rule, Majority):
            return rule.n
        return 1 if rule.name == "single" else 3

    def judge_rule(self, run_rule: DecisionRule) -> DecisionRule:
        return self.rule or run_rule

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"candidates": self.candidates}
        if self.rule is not None:
            out["judge_rule"] = self.rule.describe()
        return out


@dataclass(frozen=True, slots=True)
class Candidates:
    """The distinct candidates of a collection, in the order first seen (numbered from 1)."""

    keys: tuple[str, ...]
    answers: tuple[Any, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, votes: Mapping[str, int], answers: Mapping[str, Any]) -> Candidates:
        """From a collection's votes (key → count, first-seen order) and each key's answer."""
        keys = tuple(votes)
        return cls(keys, tuple(answers[k] for k in keys), tuple(votes[k] for k in keys))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def lone(self) -> bool:
        """One distinct candidate: it wins without judges."""
        return len(self.keys) == 1

    def answer(self, choice: int) -> Any:
        """The answer of candidate number `choice` (1-based, as judges name it)."""
        return self.answers[choice - 1]

    def choice_of(self, key: str | None) -> str:
        """The judge vote key naming the candidate with vote key `key` (NO_CANDIDATE if none has it)."""
        if key is None or key not in self.keys:
            return NO_CANDIDATE
        return str(self.keys.index(key) + 1)

    def truth(self, is_right: Callable[[Any], bool | None]) -> str | None:
        """The judge vote key of the first right candidate, NO_CANDIDATE if none is, None if unknown."""
        known = False
        for i, answer in enumerate(self.answers):
            verdict = is_right(answer)
            if verdict:
                return str(i + 1)
            known = known or verdict is not None
        return NO_CANDIDATE if known else None


def parse_choice(text: str, count: int) -> int:
    """Strict: the last `choice = N` line, N a candidate number in 1..count.

    A judge that names a candidate that does not exist is not a vote: it is a
    format red flag, like any reply the parser rejects.
    """
    found = _CHOICE_RE.findall(text)
    if not found:
        raise ParseError("no 'choice = N' line")
    raw = found[-1]
    if len(raw) > 1 and raw.startswith("0"):
        raise ParseError(f"choice {raw!r} has a leading zero")
    if len(raw) > 6 or not 1 <= int(raw) <= count:
        raise ParseError(f"choice must be a candidate number 1..{count}, got {raw[:12]}")
    return int(raw)


def choice_parser(count: int) -> Callable[[str], int]:
    """`parse_choice` bound to a number of candidates."""

    def parse(text: str) -> int:
        return parse_choice(text, count)

    return parse


def judge_prompt(question: str, shown: Sequence[str]) -> str:
    """The default judge prompt: the question, the numbered candidates, one line to answer with."""
    listing = "\n\n".join(f"Candidate {i}:\n{text}" for i, text in enumerate(shown, start=1))
    return (
        f"{question}\n\nSeveral answers were proposed. Check each one carefully against the question.\n\n"
        f"{listing}\n\nWhich candidate is correct? If several are, pick the first correct one. "
        f"Answer with exactly one line in this format:\nchoice = <candidate number, 1 to {len(shown)}>"
    )


def decide_judged(rule: DecisionRule, choices: Sequence[str | None]) -> str | None:
    """Vote judge choices (None: a red-flagged judge) one by one with `rule`; the winning choice, if any.

    The same function of the same votes that the runtime computes while it
    samples: what tests and re-voting use to check a judged decision.
    """
    tally = Tally()
    for key in choices:
        if key is None:
            tally.flagged += 1
            continue
        tally.add(key)
        winner = rule.winner(tally)
        if winner is not None:
            return winner
    return None
