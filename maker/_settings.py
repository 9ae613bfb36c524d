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
    draft: ask a model for the next `draft` steps' answers at once and verify
        them all in parallel (0: off); the task must offer a draft prompt.
        Decisions are unchanged; see docs/speculation.md#drafts.
    draft_model: the model that writes drafts (default: the run's own).
    """

    concurrency: int = 16
    max_parallel_steps: int | None = None
    window: int = 64
    seed: int = 0
    speculate: int = 0
    draft: int = 0
    draft_model: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_parallel_steps is not None and self.max_parallel_steps < 1:
            raise ConfigError(f"max_parallel_steps must be >= 1, got {self.max_parallel_steps}")
        if self.speculate < 0:
            raise ConfigError(f"speculate must be >= 0, got {self.speculate}")
        if self.draft < 0:
            raise ConfigError(f"draft must be >= 0, got {self.draft}")
        if self.draft_model is not None and "@" in self.draft_model:
            raise ConfigError(
                "draft_model must not carry credentials (it is written to the trace for resume): "
                "give the key and endpoint through $OPENAI_API_KEY and $MAKER_BASE_URL"
            )
        if self.draft_model is not None and not self.draft:
            raise ConfigError("draft_model is set but draft is 0: say how many steps a draft covers")
        if self.window < 2:
            raise ConfigError(f"window must be >= 2, got {self.window}")

    @property
    def step_limit(self) -> int:
        """Steps in progress at once, in force: `max_parallel_steps`, else `concurrency`."""
        return self.max_parallel_steps or self.concurrency

    @property
    def plan_window(self) -> int:
        """Steps of a chain kept materialised: room for drafts (the verified one, the next, its anchor)."""
        return max(self.window, 3 * self.draft + 2)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "concurrency": self.concurrency,
            "max_steps": self.step_limit,  # the trace's name for max_parallel_steps
            "window": self.window,
        }
        if self.speculate:
            described["speculate"] = self.speculate
        if self.draft:
            described["draft"] = self.draft
        if self.draft_model is not None:
            described["draft_model"] = self.draft_model
        return described
