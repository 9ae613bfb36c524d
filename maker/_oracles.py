"""Teaching the simulated model a user's own steps, so custom graphs run offline.

The simulator answers from the prompt alone, exactly as a model behind HTTP
would: an oracle reads the prompt text, works out the right answer, writes it
in the step's reply format, and knows a plausible wrong answer for the
simulator's mistakes. The simulator, not the oracle, decides when to be wrong,
so voting and red flags see the same mix of replies a real model produces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

from maker.backends._protocol import Backend
from maker.backends._registry import open_backend
from maker.tasks._protocol import Messages, Oracle


@dataclass(frozen=True, slots=True)
class SimOracle:
    """An `Oracle` from three functions.

    solve: the prompt's last message (text) → the right answer, or None when the
        prompt is not this step's (the simulator then asks the next oracle).
    render: answer → reply text in the format the step's parser reads.
    wrong: (right answer, rng) → a wrong answer whose vote key differs.
    """

    solve_text: Callable[[str], Any | None]
    render_answer: Callable[[Any], str]
    wrong_answer: Callable[[Any, Random], Any]

    def solve(self, messages: Messages) -> Any | None:
        return self.solve_text(messages[-1]["content"]) if messages else None

    def render(self, answer: Any) -> str:
        return self.render_answer(answer)

    def wrong(self, answer: Any, rng: Random) -> Any:
        return self.wrong_answer(answer, rng)


def sim_oracle(
    *, solve: Callable[[str], Any | None], render: Callable[[Any], str], wrong: Callable[[Any, Random], Any]
) -> SimOracle:
    """Build a `SimOracle` by keyword (see its fields)."""
    return SimOracle(solve, render, wrong)


def sim_backend(
    model: str = "sim/gpt-4.1-mini", *, oracles: Sequence[Oracle], seed: int = 0, with_tasks: bool = False
) -> Backend:
    """A simulated model (`sim/PROFILE?knob=value`) that knows these oracles.

    with_tasks: also answer the registered tasks' prompts (Hanoi, arithmetic …),
    for graphs that mix task steps with the user's own.
    Pass the result to `maker.run(..., backend=...)`.
    """
    from maker.tasks._registry import oracles as task_oracles

    known = [*oracles, *(task_oracles() if with_tasks else ())]
    return open_backend(model, seed=seed, oracles=known)
