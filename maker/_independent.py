"""Which steps an independent-steps run evaluates, chosen once and recorded in the trace.

An independent run (`--independent N|all`, `arun(independent=...)`) evaluates
steps of a chain each from its ground-truth input. The choice is made here
(`independent_steps`) and written to the trace's header (`independent_steps`),
so resume, replay and shards rebuild exactly the steps the run chose, whoever
chose them. Traces written before the header field existed came from the CLI's
choice, which `recorded_steps` makes again from the count and the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any, Literal, overload

from maker._shards import Shard, shard_steps
from maker.errors import ConfigError, TraceError

HEADER_FIELD = "independent_steps"


class IndependentSteps(Sequence[int]):
    """A seeded random sample of `count` of a chain's `total` steps (or all of them), in step order.

    Recorded in a trace by its count and seed alone, so a million steps cost
    a few bytes of header.
    """

    def __init__(self, total: int, count: int | Literal["all"], seed: int = 0) -> None:
        if count != "all" and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ConfigError(f"independent steps: expected a positive count or 'all', got {count!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"independent steps: the seed must be an integer, got {seed!r}")
        self.total, self.seed = total, seed
        # `size`, not `count`: a Sequence's count() is a method.
        self.size: int | Literal["all"] = "all" if count == "all" or count >= total else count
        self._steps: Sequence[int] = (
            range(total) if self.size == "all" else sorted(random.Random(seed).sample(range(total), self.size))
        )

    def describe(self) -> dict[str, Any]:
        """The header's record of the choice."""
        return {"count": self.size, "seed": self.seed}

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        return self._steps[index]

    def __len__(self) -> int:
        return len(self._steps)

    def __iter__(self) -> Iterator[int]:
        return iter(self._steps)

    def __repr__(self) -> str:
        return f"IndependentSteps(total={self.total}, count={self.size!r}, seed={self.seed})"


def independent_steps(task: object, count: int | Literal["all"], *, seed: int = 0) -> IndependentSteps:
    """The steps an independent run of `task` evaluates: `count` of them (or "all"), chosen by `seed`.

    The same choice `maker hanoi --independent N --seed S` makes; pass it to
    `maker.run(task, independent=...)`. The trace records it, so resume and
    replay find the same steps without being told.
    """
    total = getattr(task, "steps", None)
    if not isinstance(total, int):
        name = getattr(task, "name", type(task).__name__)
        raise ConfigError(f"task {name!r} cannot run steps independently (it has no ground-truth step inputs)")
    return IndependentSteps(total, count, seed)


def describe_steps(steps: Sequence[int]) -> dict[str, Any]:
    """The header field for a run's choice: its count and seed, or the steps themselves if given as a list."""
    if isinstance(steps, IndependentSteps):
        return steps.describe()
    return {"steps": [int(s) for s in steps]}


def recorded_steps(header: dict[str, Any], task: object) -> Sequence[int] | None:
    """The steps an independent-steps trace evaluates (None for a sequential trace).

    A shard's trace holds its part of the whole run's choice: the steps of
    the choice that hash to it, as `maker.run_sharded` split them.
    """
    if header.get("mode") != "independent":
        return None
    shard = Shard.of_header(header)
    chosen = _whole_choice(header, task, shard)
    return shard_steps(chosen, shard) if shard is not None else chosen


def _whole_choice(header: dict[str, Any], task: object, shard: Shard | None) -> Sequence[int]:
    recorded = header.get(HEADER_FIELD)
    if recorded is None:  # an older trace: the CLI chose, by count and seed
        count = header["shard"].get("independent") if shard is not None else header.get("steps_evaluated")
        return independent_steps(task, _count(count), seed=_seed(header.get("seed", 0)))
    if not isinstance(recorded, dict):
        raise TraceError(f"the header's {HEADER_FIELD} must be an object, not {recorded!r}")
    if "steps" in recorded:
        steps = recorded["steps"]
        if not isinstance(steps, list) or not all(type(s) is int for s in steps):
            raise TraceError(f"the header's {HEADER_FIELD}.steps must be a list of step numbers")
        return steps
    try:
        return independent_steps(task, _count(recorded.get("count")), seed=_seed(recorded.get("seed")))
    except ConfigError as exc:
        raise TraceError(f"the header's {HEADER_FIELD} cannot be rebuilt: {exc}") from None


def _count(value: object) -> int | Literal["all"]:
    if value == "all":
        return "all"
    if type(value) is not int:
        raise TraceError(f"the trace's count of independent steps must be a positive integer or 'all', not {value!r}")
    return value


def _seed(value: object) -> int:
    if type(value) is not int:
        raise TraceError(f"the trace's seed must be an integer, not {value!r}")
    return value
