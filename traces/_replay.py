"""Counterfactual re-voting: would another rule have decided the same, from the same samples?

Each decided step is voted again with another decision rule (ahead-by-k with
another k, fixed-N majority, single), over the samples the trace recorded for
it, in the order they were recorded (their recorded votes and red flags,
late samples included: they were drawn all the same). Per step the outcome is
one of:

- ``same``: the rule decides the recorded winner;
- ``different``: it decides another candidate (scored against the recorded
  ground truth where the trace has it: an error, or a fix);
- ``needs more``: the recorded samples run out before the rule decides: the
  run would have had to draw more (and what they would have said is unknown).

Each step is re-voted on its recorded input. A different winner would have
changed every later step's input in a real run; this answers "is this rule
enough, step by step?", which is what choosing k needs. The samples a rule
uses are the first ones in recorded order, which is what a sequential run
with that rule would have drawn first.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from maker.traces._reader_lean import read_lean
from maker.voting import DecisionRule, Tally

SAME, DIFFERENT, NEEDS_MORE = "same", "different", "needs more"

# Decided steps held back for late samples, recorded after their decision
# (and after later steps' events), before they are re-voted.
LOOKAHEAD = 256


@dataclass(frozen=True, slots=True)
class StepRevote:
    """One step re-voted: the outcome, the rule's winner, and how many samples it used."""

    step: Hashable
    outcome: str
    winner: str | None
    recorded: str
    truth: str | None
    used: int  # samples the rule looked at (all of them when it needs more)
    available: int  # samples the trace recorded for the step

    @property
    def correct(self) -> bool | None:
        """Is the rule's winner right? None when the trace has no ground truth or the rule did not decide."""
        if self.truth is None or self.winner is None:
            return None
        return self.winner == self.truth


@dataclass(slots=True)
class Revote:
    """One rule over a whole trace: per-outcome counts, errors against ground truth, samples."""

    rule: dict[str, Any]
    steps: int = 0
    same: int = 0
    different: int = 0
    needs_more: int = 0
    errors: int = 0  # decided by the rule and wrong against the recorded ground truth
    scored: int = 0  # decided by the rule and with ground truth to score it
    recorded_errors: int = 0  # recorded winners that were wrong (the trace's own errors)
    samples_used: int = 0
    samples_recorded: int = 0
    changed: list[StepRevote] = field(default_factory=list)  # every step that was not "same" (if kept)
    keep_steps: bool = field(default=True, repr=False)  # False: counts only, memory flat on any trace

    def add(self, r: StepRevote) -> None:
        self.steps += 1
        self.samples_used += r.used
        self.samples_recorded += r.available
        if r.outcome == SAME:
            self.same += 1
        else:
            if self.keep_steps:
                self.changed.append(r)
            if r.outcome == DIFFERENT:
                self.different += 1
            else:
                self.needs_more += 1
        if r.correct is not None:
            self.scored += 1
            self.errors += not r.correct
        if r.truth is not None:
            self.recorded_errors += r.recorded != r.truth

    def to_json(self, *, with_steps: bool = True) -> dict[str, Any]:
        data = {
            k: getattr(self, k)
            for k in (
                "rule",
                "steps",
                "same",
                "different",
                "needs_more",
                "errors",
                "scored",
                "recorded_errors",
                "samples_used",
                "samples_recorded",
            )
        }
        if with_steps:
            data["changed"] = [
                {
                    "step": r.step,
                    "outcome": r.outcome,
                    "winner": r.winner,
                    "recorded": r.recorded,
                    "truth": r.truth,
                    "used": r.used,
                    "available": r.available,
                }
                for r in self.changed
            ]
        return data


def revote_step(
    rule: DecisionRule, keys: Sequence[str | None], recorded: str, truth: str | None, step: Hashable = None
) -> StepRevote:
    """Vote `keys` (None: a red-flagged sample) one by one with `rule` until it decides."""
    tally = Tally()
    for used, key in enumerate(keys, start=1):
        if key is None:
            tally.flagged += 1
            continue
        tally.add(key)
        winner = rule.winner(tally)
        if winner is not None:
            return StepRevote(step, SAME if winner == recorded else DIFFERENT, winner, recorded, truth, used, len(keys))
    return StepRevote(step, NEEDS_MORE, None, recorded, truth, len(keys), len(keys))


def revote(
    trace: str | os.PathLike[str], rules: DecisionRule | Iterable[DecisionRule], *, keep_steps: bool = True
) -> list[Revote]:
    """Re-vote every decided LLM step of `trace` with each rule, in one streaming pass.

    keep_steps=False keeps the counts only, not every changed step (`Revote.changed`):
    a rule that changes most steps of a million-step trace would otherwise hold them all.
    """
    rules = [rules] if isinstance(rules, DecisionRule) else list(rules)
    results = [Revote(rule.describe(), keep_steps=keep_steps) for rule in rules]
    samples: dict[Hashable, list[str | None]] = {}
    decided: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    def settle(step: Hashable, decision: dict[str, Any]) -> None:
        keys = samples.pop(step, [])
        if not keys and not decision.get("samples"):
            return  # decided without sampling (a judged vote's lone candidate): nothing to re-vote
        for rule, result in zip(rules, results, strict=False):
            result.add(revote_step(rule, keys, decision["winner"], decision.get("truth"), step))

    for event in read_lean(trace):
        kind = event["type"]
        if kind == "sample":
            # (a late sample of a step already re-voted just sits here unused)
            samples.setdefault(event["step"], []).append(event["key"])
        elif kind == "decision" and event.get("kind", "llm") == "llm":
            decided[event["step"]] = event
            if len(decided) > LOOKAHEAD:
                settle(*decided.popitem(last=False))
    while decided:
        settle(*decided.popitem(last=False))
    return results
