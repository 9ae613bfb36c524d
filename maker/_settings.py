"""Run settings as one small typed object, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How a run executes (not what it decides): safe to change on resume.

    concurrency: most model requests in flight at once (anyio CapacityLimiter).
    max_parallel_steps: most steps in progress at once; defaults to `concurrency`.
    window: how many steps of a long chain the planner keeps materialised.
    seed: seeds the simulated model; recorded in the trace header.
    speculate: start a step from its predecessor's leading candidate, up to this
        many undecided steps ahead (0: off). Decisions are unchanged; see
        docs/speculation.md.
    """

    concurrency: int = 16
    max_parallel_steps: int | None = None
    window: int = 64
    seed: int = 0
    speculate: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_parallel_steps is not None and self.max_parallel_steps < 1:
            raise ConfigError(f"max_parallel_steps must be >= 1, got {self.max_parallel_steps}")
        if self.speculate < 0:
            raise ConfigError(f"speculate must be >= 0, got {self.speculate}")
        if self.window < 2:
            raise ConfigError(f"window must be >= 2, got {self.window}")

    @property
    def step_limit(self) -> int:
        """Steps in progress at once, in force: `max_parallel_steps`, else `concurrency`."""
        return self.max_parallel_steps or self.concurrency

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "concurrency": self.concurrency,
            "max_steps": self.step_limit,  # the trace's name for max_parallel_steps
            "window": self.window,
        }
        if self.speculate:
            described["speculate"] = self.speculate
        return described
