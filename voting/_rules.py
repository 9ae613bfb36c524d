"""Decision rules: when is a step decided, and how many samples could it still need.

A rule is pure: it reads a `Tally` and answers two questions. It never sees
samples, tasks or ground truth, which is what lets replay re-vote a trace with a
different rule and get an exact answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from maker.errors import ConfigError
from maker.voting._tally import Tally


@runtime_checkable
class DecisionRule(Protocol):
    """How a step's votes turn into a winner."""

    # Read-only: the built-in rules are frozen dataclasses, and a protocol
    # attribute declared as a plain `name: str` would demand a settable one.
    @property
    def name(self) -> str:
        """Short id written to traces and shown in reports."""
        ...

    def winner(self, tally: Tally) -> str | None:
        """The decided candidate, or None while undecided."""
        ...

    def needed(self, tally: Tally) -> int:
        """Fewest further votes that could decide the step (0 once decided)."""
        ...

    def describe(self) -> dict[str, object]:
        """JSON-ready settings, written to trace headers."""
        ...


@dataclass(frozen=True, slots=True)
class AheadByK:
    """First-to-ahead-by-k: a candidate wins with k more votes than any other."""

    k: int = 3
    name: str = "ahead-by-k"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")

    def winner(self, tally: Tally) -> str | None:
        key, top, second = tally.leader()
        return key if key is not None and top - second >= self.k else None

    def needed(self, tally: Tally) -> int:
        # The best case is that every new vote goes to the current leader, so the
        # leader's deficit to a k-lead is exactly how many samples are worth
        # launching now; launching more only buys samples that are likely wasted,
        # launching fewer costs a round of latency.
        key, top, second = tally.leader()
        if key is None:
            return self.k
        return max(0, self.k - (top - second))

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "k": self.k}


@dataclass(frozen=True, slots=True)
class Majority:
    """Fixed-N majority: draw N valid votes, the most common candidate wins.

    The baseline MAKER is compared against. Ties go to the candidate seen first.
    The step is decided early once no outcome of the remaining votes could
    change the winner, so samples still in flight then arrive late.
    """

    n: int = 7
    name: str = "majority"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")

    def winner(self, tally: Tally) -> str | None:
        key, top, second = tally.leader()
        if key is None:
            return None
        remaining = self.n - tally.votes
        # Stop early only when even a clean sweep by the runner-up could not
        # catch the leader: then the remaining votes cannot change the verdict.
        if remaining <= 0 or top - second > remaining:
            return key
        return None

    def needed(self, tally: Tally) -> int:
        return 0 if self.winner(tally) is not None else max(0, self.n - tally.votes)

    def describe(self) -> dict[str, object]:
        return {"rule": self.name, "n": self.n}


@dataclass(frozen=True, slots=True)
class Single:
    """No voting: the first valid sample is the answer (the no-error-correction baseline)."""

    name: str = "single"

    def winner(self, tally: Tally) -> str | None:
        for key in tally.counts:
            return key
        return None

    def needed(self, tally: Tally) -> int:
        return 0 if tally.counts else 1

    def describe(self) -> dict[str, object]:
        return {"rule": self.name}


def rule_from_dict(data: dict[str, object]) -> DecisionRule:
    """Rebuild a rule from `describe()` output (trace headers, replay)."""
    name = data.get("rule")
    if name == "ahead-by-k":
        return AheadByK(int(data["k"]))  # type: ignore[call-overload]
    if name == "majority":
        return Majority(int(data["n"]))  # type: ignore[call-overload]
    if name == "single":
        return Single()
    raise ConfigError(f"unknown decision rule {name!r}")
