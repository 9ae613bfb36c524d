"""One pass over a trace, keeping per-step numbers, not samples.

A million-step trace holds a few million samples; the analysis needs only a
handful of numbers per step (votes, wrong votes, rounds, what the first two
votes were) and per-length counts. Samples wait in `pending` only until their
step's decision arrives, so memory follows the run's concurrency, not its size.

Every step is scored twice, against ground truth (where the decision carries
`truth`) and against the voted winner, because which one the analysis uses is
only known once the whole trace has been read.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET

from maker.analysis._rates import RateStats
from maker.errors import TraceError
from maker.traces._reader_lean import LeanSample, read_lean
from maker.traces._speculation import SpeculationStats

NO_TRUTH = -1
# What the first two votes of a step were, against the reference answer: bit flags,
# or FIRST_TWO_NA when the step had fewer than two votes.
FIRST_TWO_NA, FIRST_WRONG, SECOND_WRONG, SAME_WRONG = -1, 1, 2, 4
# How one sample ends up in the error-vs-length table.
RIGHT, WRONG, FLAGGED, UNSCORED = "right", "wrong", "flagged", "unscored"


@dataclass(slots=True)
class Scored:
    """Per-step columns scored against one reference (truth or winner)."""

    wrong_votes: array[int] = field(default_factory=lambda: array("i"))  # -1: step has no reference
    first_wrong: array[int] = field(default_factory=lambda: array("b"))  # first vote wrong: 1/0, -1 n/a
    first_two: array[int] = field(default_factory=lambda: array("b"))  # FIRST_WRONG | SECOND_WRONG | SAME_WRONG
    step_wrong: array[int] = field(default_factory=lambda: array("b"))  # decided answer wrong: 1/0, -1 n/a
    by_length: Counter[tuple[int, str]] = field(default_factory=Counter)  # (tokens_out, RIGHT/WRONG/…) → n


@dataclass(slots=True)
class Table:
    """Everything the analysis reads from a trace."""

    header: dict[str, Any]
    ids: list[Hashable] = field(default_factory=list)  # decided LLM steps, in decision order
    position: array[int] = field(default_factory=lambda: array("q"))  # step index (int ids) or decision order
    votes: array[int] = field(default_factory=lambda: array("i"))
    rounds: array[int] = field(default_factory=lambda: array("i"))
    samples: array[int] = field(default_factory=lambda: array("i"))
    truth: Scored = field(default_factory=Scored)
    winner: Scored = field(default_factory=Scored)
    undecided: list[dict[str, Any]] = field(default_factory=list)  # step_error events
    python_steps: int = 0
    sample_count: int = 0
    late: int = 0
    flags: Counter[str] = field(default_factory=Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    resumes: int = 0
    end: dict[str, Any] | None = None
    speculation: SpeculationStats = field(default_factory=SpeculationStats)
    rates: RateStats = field(default_factory=RateStats)

    @property
    def has_truth(self) -> bool:
        return any(w >= 0 for w in self.truth.wrong_votes)


def accumulate(path: str | os.PathLike[str]) -> Table:
    """Read a trace once and return its per-step table (raises TraceError on a bad file)."""
    events = read_lean(path)  # samples and decisions as lean events: the analysis only counts
    table = Table(next(events))
    _feed(table, events, path)
    return table


def _feed(table: Table, events: Iterable[Any], path: str | os.PathLike[str] = "trace") -> None:
    """Count every event into `table`: dicts, and lean events (see read_lean)."""
    # Samples wait here for their step's decision. They stay across a step
    # error and a resume: a resumed run reuses the samples already recorded for
    # an unfinished step (it never writes them again) and counts them as votes.
    pending: dict[Hashable, list[tuple[int, str | None, bool]]] = {}
    # A speculative run's samples, by the prompt they answered: only the decided prompt's were voted.
    bases: dict[Hashable, dict[str, list[tuple[int, str | None, bool]]]] = {}
    stuck: dict[Hashable, dict[str, Any]] = {}
    decided: set[Hashable] = set()
    spec = table.speculation
    for event in events:
        if type(event) is LeanSample and event.basis is UNSET:
            _lean_sample(table, pending, event)  # nearly every line: no speculation to feed
            continue
        kind = event["type"]
        spec.feed(event)
        table.rates.feed(event)
        if kind == "sample":
            if "basis" not in event:
                _sample(table, pending, event)
            elif event.get("discarded"):
                _sample(table, {}, event)  # paid for, never voted
            else:
                _sample(table, bases.setdefault(_hashable(event["step"]), {}), event, event["basis"])
        elif kind == "decision":
            step = _hashable(event["step"])
            if step in decided:  # counted twice it would skew every rate (an edited or merged-twice trace)
                raise TraceError(f"{path}: step {event['step']!r} is decided twice")
            decided.add(step)
            samples = pending.pop(step, [])
            samples += bases.pop(step, {}).get(event.get("prompt") or "", [])
            stuck.pop(step, None)
            if event.get("kind") == "python":
                table.python_steps += 1
            else:
                _decision(table, event, samples)
        elif kind == "step_error":
            stuck[_hashable(event["step"])] = event
        elif kind == "resume":
            table.resumes += 1
        elif kind == "end":
            table.end = event
    table.undecided.extend(stuck.values())
    for samples in pending.values():  # steps that never got a decision
        _unscored(table, samples)


def _unscored(table: Table, samples: list[tuple[int, str | None, bool]]) -> None:
    """Samples of a step that was never decided: they count by length, but there is nothing to score them by."""
    for col in (table.truth, table.winner):
        for out, key, _ in samples:
            col.by_length[(out, FLAGGED if key is None else UNSCORED)] += 1


def _hashable(step: Any) -> Hashable:
    return tuple(step) if isinstance(step, list) else step


def _sample(
    table: Table, pending: dict[Any, list[tuple[int, str | None, bool]]], e: dict[str, Any], key: Any = None
) -> None:
    table.sample_count += 1
    table.tokens_in += int(e.get("tokens_in") or 0)
    out = int(e.get("tokens_out") or 0)
    table.tokens_out += out
    table.retries += int(e.get("retries") or 0)
    late = bool(e.get("late"))
    table.late += late
    flag = e.get("flag")
    if flag:
        table.flags[str(flag).split(":", 1)[0]] += 1
    pending.setdefault(_hashable(e["step"]) if key is None else key, []).append((out, e.get("key"), late))


def _lean_sample(table: Table, pending: dict[Any, list[tuple[int, str | None, bool]]], e: LeanSample) -> None:
    """`_sample` for a lean sample (fields checked by the reader): the same counts, by attribute."""
    table.sample_count += 1
    table.tokens_in += e.tokens_in
    out = e.tokens_out
    table.tokens_out += out
    table.retries += e.retries
    late = e.late
    table.late += late
    if e.flag:
        table.flags[e.flag.split(":", 1)[0]] += 1
    pending.setdefault(e.step, []).append((out, e.key, late))  # an int or a string: hashable as it is
    table.rates.count_sample(e.cached_tokens, e.tokens_in, e.endpoint)


def _decision(table: Table, e: dict[str, Any], samples: list[tuple[int, str | None, bool]]) -> None:
    step = _hashable(e["step"])
    table.ids.append(step)
    table.position.append(step if isinstance(step, int) and not isinstance(step, bool) else len(table.ids) - 1)
    counts: dict[str, int] = e.get("votes") or {}
    n = sum(counts.values())
    table.votes.append(n)
    table.rounds.append(int(e.get("rounds") or 0))
    table.samples.append(int(e.get("samples") or 0))
    truth = e.get("truth")
    _score(table.truth, truth, counts, n, samples, e.get("correct"))
    winner = e.get("winner")
    _score(table.winner, winner, counts, n, samples, True if winner is not None else None)


def _score(
    col: Scored,
    ref: str | None,
    counts: dict[str, int],
    n: int,
    samples: list[tuple[int, str | None, bool]],
    correct: bool | None,
) -> None:
    votes = [key for _, key, late in samples if key is not None and not late]
    if ref is None:
        col.wrong_votes.append(NO_TRUTH)
        col.first_wrong.append(-1)
        col.first_two.append(FIRST_TWO_NA)
        col.step_wrong.append(-1)
        for out, key, _ in samples:
            col.by_length[(out, FLAGGED if key is None else UNSCORED)] += 1
        return
    col.wrong_votes.append(n - counts.get(ref, 0))
    col.first_wrong.append(int(votes[0] != ref) if votes else -1)
    col.first_two.append(_first_two(votes, ref))
    col.step_wrong.append(-1 if correct is None else int(not correct))
    for out, key, _ in samples:
        col.by_length[(out, FLAGGED if key is None else (RIGHT if key == ref else WRONG))] += 1


def _first_two(votes: list[str], ref: str) -> int:
    if len(votes) < 2:
        return FIRST_TWO_NA
    a, b = votes[0], votes[1]
    code = (FIRST_WRONG if a != ref else 0) | (SECOND_WRONG if b != ref else 0)
    return code | (SAME_WRONG if a == b != ref else 0)
