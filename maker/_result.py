"""What a run returns: per-node outputs and a summary a user can read or serialise."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maker._recorder import Totals
from maker.errors import RunError


@dataclass(slots=True)
class RunResult:
    """The outcome of a run. `outcome` is one of traces.OUTCOMES."""

    run_id: str
    task: str
    model: str
    outcome: str
    solved: bool
    total_steps: int
    totals: Totals
    wall_s: float
    trace: Path | None
    outputs: dict[Hashable, Any] = field(default_factory=dict)
    error: RunError | None = None
    mode: str = "sequential"

    @property
    def mean_votes(self) -> float:
        return self.totals.votes / self.totals.llm_steps if self.totals.llm_steps else 0.0

    @property
    def mean_samples(self) -> float:
        return self.totals.samples / self.totals.llm_steps if self.totals.llm_steps else 0.0

    @property
    def derailed(self) -> int | None:
        """Chain errors: decided steps after the first wrong one, which all worked on a wrong input.

        Step errors (`totals.errors`) score each step against its own input, so
        a chain that goes wrong once and then counts on correctly shows one
        error while every later answer is wrong; a chain stuck repeating a
        wrong answer shows an error at every step. None outside chains.
        """
        first = self.totals.first_error
        if self.mode != "sequential" or not isinstance(first, int):
            return None
        return max(0, self.totals.steps - first - 1)

    def raise_for_outcome(self) -> RunResult:
        """Raise the run's error, if it stopped on one (with this result as its `.result`); return self otherwise."""
        if self.error is not None:
            self.error.result = self
            raise self.error
        return self

    def to_json(self) -> dict[str, Any]:
        t = self.totals
        return {
            "solved": self.solved,
            "outcome": self.outcome,
            "mode": self.mode,
            "task": self.task,
            "model": self.model,
            "steps": t.steps,
            "total_steps": self.total_steps,
            "errors": t.errors,
            "first_wrong_step": t.first_error,
            "derailed_steps": self.derailed,
            "scored_steps": t.scored,
            "undecided_steps": t.undecided,
            "samples": t.samples,
            "red_flags": t.red_flags,
            "votes": t.votes,
            "late_samples": t.late,
            "mean_votes_per_step": round(self.mean_votes, 4),
            "mean_samples_per_step": round(self.mean_samples, 4),
            "max_rounds": t.max_rounds,
            "hardest_step": t.hardest_step,
            "hardest_step_samples": t.hardest_samples,
            "tokens_in": t.tokens_in,
            "tokens_out": t.tokens_out,
            "retries": t.retries,
            "lost_requests": t.lost,
            "wall_s": round(self.wall_s, 3),
            "trace": str(self.trace) if self.trace else None,
            "run_id": self.run_id,
            "error": str(self.error) if self.error else None,
        }
