"""The recorder: every sample and decision goes to the trace and the run's totals.

It is the only writer of the trace during a run, so the order of events in the
trace is the order in which voting saw them, which is what replay relies on.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from maker.backends._protocol import Completion
from maker.traces._writer import TraceWriter
from maker.voting import Tally, Verdict


@dataclass(slots=True)
class Totals:
    """Running counts for a run; what the progress bar and the summary show."""

    steps: int = 0
    llm_steps: int = 0
    samples: int = 0
    red_flags: int = 0
    votes: int = 0
    late: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    errors: int = 0
    scored: int = 0
    # The earliest step decided wrong (a chain is wrong from there on, whatever later steps do).
    first_error: Hashable = None
    undecided: int = 0
    max_rounds: int = 0
    hardest_step: Hashable = None
    hardest_samples: int = 0
    # Requests cancelled in flight when the run stopped (Ctrl-C, an error elsewhere): possibly
    # paid for, never answered, so not in the trace as samples; budgets book them at their worst case.
    lost: int = 0
    # Draft requests (docs/speculation.md#drafts): they decide nothing, but are paid for.
    drafts: int = 0
    draft_tokens_in: int = 0
    draft_tokens_out: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _earlier(step: Hashable, first: Hashable) -> bool:
    if first is None:
        return True
    return isinstance(step, int) and isinstance(first, int) and step < first


class Progress(Protocol):
    """Where the runner reports progress (the CLI's rich bar; anything else)."""

    def start(self, total_steps: int) -> None: ...

    def update(self, totals: Totals) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """A decided step: the winning key and answer, and how it was reached."""

    step: Hashable
    winner: str
    answer: Any
    votes: dict[str, int]
    samples: int
    flagged: int
    rounds: int
    prompt: str | None = None  # traces._schema.prompt_digest of the step's messages
    # "llm" for a voted step; "candidates" for the collection of a judged vote (maker._recursive),
    # whose answer is every distinct candidate: re-voting skips it, the judges' votes are the vote.
    kind: str = "llm"


def _before(step: Hashable, other: Hashable) -> bool:
    """Ties for the hardest step go to the smallest step id, so the totals do not depend on the
    order steps were committed in (a DAG's branches commit in any order; replay's differs)."""
    if other is None:
        return True
    mine, theirs = (isinstance(step, str), str(step)), (isinstance(other, str), str(other))
    if not mine[0] and not theirs[0]:
        return bool(step < other)  # type: ignore[operator]
    return mine < theirs


class Recorder:
    def __init__(self, writer: TraceWriter | None, progress: Progress | None = None, totals: Totals | None = None):
        self.writer = writer
        self.progress = progress
        self.totals = totals or Totals()

    def sample(
        self,
        step: Hashable,
        index: int,
        temperature: float,
        c: Completion,
        v: Verdict,
        late: bool,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Count one sample and write its event; `extra`: fields only some samples carry (speculation's basis)."""
        t = self.totals
        t.samples += 1
        t.tokens_in += c.input_tokens
        t.tokens_out += c.output_tokens
        t.retries += c.retries
        if v.key is None:
            t.red_flags += 1
        elif late:
            t.late += 1
        else:
            t.votes += 1
        if self.writer is not None:
            event = {
                "type": "sample",
                "step": step,
                "i": index,
                "temperature": temperature,
                "text": c.text,
                "finish": c.finish_reason,
                "tokens_in": c.input_tokens,
                "tokens_out": c.output_tokens,
                "latency": round(c.latency, 6),
                "retries": c.retries,
                "flag": v.flag,
                "key": v.key,
                "late": late,
            }
            if c.cached_tokens is not None:
                event["cached_tokens"] = c.cached_tokens
            if c.endpoint is not None:
                event["endpoint"] = c.endpoint
            if extra:
                event.update(extra)
            self.writer.write(event)

    def event(self, event: dict[str, Any]) -> None:
        """An event only analysis reads (a backend's `governor` changes): written, never committed on its own."""
        if self.writer is not None:
            self.writer.write(event)

    def draft(self, event: dict[str, Any], *, write: bool = True) -> None:
        """A draft reply (a `draft` event): counted in the totals; written unless it is read back."""
        t = self.totals
        t.drafts += 1
        t.draft_tokens_in += int(event.get("tokens_in") or 0)
        t.draft_tokens_out += int(event.get("tokens_out") or 0)
        t.retries += int(event.get("retries") or 0)
        if write and self.writer is not None:
            self.writer.write(event)

    def lost_request(self, step: Hashable, index: int) -> None:
        """A request cancelled while out: counted in the totals (the `end` event), not a sample."""
        self.totals.lost += 1

    def decision(self, d: Decision, truth: str | None) -> None:
        t = self.totals
        t.steps += 1
        t.llm_steps += 1
        if (d.rounds, d.samples) > (t.max_rounds, t.hardest_samples) or (
            (d.rounds, d.samples) == (t.max_rounds, t.hardest_samples) and _before(d.step, t.hardest_step)
        ):
            t.max_rounds, t.hardest_step, t.hardest_samples = d.rounds, d.step, d.samples
        correct = None if truth is None else d.winner == truth
        if correct is not None:
            t.scored += 1
            t.errors += not correct
            if not correct and _earlier(d.step, t.first_error):
                t.first_error = d.step
        if self.writer is not None:
            self.writer.write(
                {
                    "type": "decision",
                    "step": d.step,
                    "kind": d.kind,
                    "winner": d.winner,
                    "answer": d.answer,
                    "votes": d.votes,
                    "samples": d.samples,
                    "flagged": d.flagged,
                    "rounds": d.rounds,
                    "truth": truth,
                    "correct": correct,
                    "prompt": d.prompt,
                }
            )
            self.writer.commit()
        self._tick()

    def python_step(self, step: Hashable, output: Any) -> None:
        self.totals.steps += 1
        if self.writer is not None:
            self.writer.write(
                {
                    "type": "decision",
                    "step": step,
                    "kind": "python",
                    "winner": None,
                    "answer": output,
                    "votes": {},
                    "samples": 0,
                    "flagged": 0,
                    "rounds": 0,
                    "truth": None,
                    "correct": None,
                }
            )
            self.writer.commit()
        self._tick()

    def step_error(self, step: Hashable, error: Exception, tally: Tally | None = None, samples: int = 0) -> None:
        if self.writer is not None:
            self.writer.write(
                {
                    "type": "step_error",
                    "step": step,
                    "error": type(error).__name__,
                    "message": str(error),
                    "votes": dict(tally.counts) if tally else {},
                    "samples": samples,
                    "flagged": tally.flagged if tally else 0,
                }
            )
            self.writer.commit(force=True)

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update(self.totals)
