"""Voting settings as one small typed object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maker.errors import ConfigError
from maker.voting._redflags import RedFlag
from maker.voting._rules import AheadByK, DecisionRule, rule_from_dict


@dataclass(frozen=True, slots=True)
class Voting:
    """How each step is voted.

    The paper's million-step run: ahead-by-3, first sample at temperature 0 and
    the rest at 0.1, replies capped and flagged at 750 output tokens.

    max_samples_per_step: the most samples one step may draw; a step that
        reaches it without a winner is undecided (`VoteUndecided`). The cap on
        a whole run's samples is `maker.Budget(max_samples=...)`.
    """

    rule: DecisionRule = field(default_factory=lambda: AheadByK(3))
    first_temperature: float = 0.0
    temperature: float = 0.1
    max_output_tokens: int = 750
    max_samples_per_step: int = 100
    red_flags: tuple[RedFlag, ...] = ()

    def __post_init__(self) -> None:
        if self.max_output_tokens < 1:
            raise ConfigError("max_output_tokens must be >= 1")
        if self.max_samples_per_step < 1:
            raise ConfigError(f"max_samples_per_step must be >= 1, got {self.max_samples_per_step}")
        for t in (self.first_temperature, self.temperature):
            if not 0.0 <= t <= 2.0:
                raise ConfigError(f"temperature must be in [0, 2], got {t}")

    def temperature_for(self, sample_index: int) -> float:
        return self.first_temperature if sample_index == 0 else self.temperature

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings for trace headers (user flags by name only)."""
        return {
            **self.rule.describe(),
            "first_temperature": self.first_temperature,
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
            "max_samples": self.max_samples_per_step,  # the trace's name for the per-step cap
            "red_flags": [getattr(f, "__name__", type(f).__name__) for f in self.red_flags],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Voting:
        return cls(
            rule=rule_from_dict(data),
            first_temperature=float(data["first_temperature"]),
            temperature=float(data["temperature"]),
            max_output_tokens=int(data["max_output_tokens"]),
            max_samples_per_step=int(data["max_samples"]),
        )
