"""What a task is, as the runtime sees it.

A task is a graph of steps plus, for scoring only, ground truth. Each LLM step
knows how to turn its inputs into a prompt, how to parse a reply strictly, and
how to reduce an answer to its vote key. Tasks know nothing about scheduling,
backends or voting rules.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol, TypeAlias, runtime_checkable

import networkx as nx

Messages = tuple[dict[str, str], ...]
Inputs = Mapping[str, Any]
NodeId = Hashable
# A plan graph. A string because networkx's DiGraph is generic only in its type
# stubs (subscripting it at run time raises), so this is for annotations only.
StepGraph: TypeAlias = "nx.DiGraph[NodeId]"


@runtime_checkable
class LLMStep(Protocol):
    """One microstep that a model answers and voting decides.

    Answers must be JSON values (numbers, strings, lists, dicts): they are
    written to traces and read back by replay and resume.
    """

    def prompt(self, inputs: Inputs) -> Messages:
        """The chat messages for this step: only what the step needs, no history."""
        ...

    def parse(self, text: str) -> Any:
        """Strictly parse a reply into an answer; raise `voting.ParseError`, never repair."""
        ...

    def vote_key(self, answer: Any) -> str:
        """Canonical form: two answers are the same vote only if their keys are equal."""
        ...

    def expected(self, inputs: Inputs) -> Any | None:
        """Ground truth for scoring after the fact; None when unknown. Never used to vote."""
        ...


@runtime_checkable
class PythonStep(Protocol):
    """A plain Python step: runs once, is not voted, mixes freely with LLM steps."""

    def run(self, inputs: Inputs) -> Any: ...


@runtime_checkable
class Oracle(Protocol):
    """What the simulated model knows about a task: how to answer its prompts.

    The simulator only sees the messages, exactly like a real model behind HTTP,
    so the same oracle serves the in-process backend and `maker serve-sim`.
    """

    def solve(self, messages: Messages) -> Any | None:
        """The right answer for these messages, or None if they are not this task's."""
        ...

    def render(self, answer: Any) -> str:
        """The answer written in the reply format the task's parser expects."""
        ...

    def wrong(self, answer: Any, rng: Random) -> Any:
        """A plausible wrong answer (its vote key must differ from the right one)."""
        ...


@dataclass(frozen=True, slots=True)
class Chain:
    """A task that is one long chain of identical steps (Hanoi).

    Kept symbolic so a planner can materialise a window of it at a time: a
    million-node networkx graph costs about a gigabyte by itself.
    Step i receives step i-1's output under the input name `prev`; step 0
    receives `first`.
    """

    step: LLMStep
    length: int
    first: Any


@runtime_checkable
class Task(Protocol):
    """A registered task: parameters, a plan, and a final check."""

    # Read-only, so frozen dataclasses (every built-in task) satisfy it.
    @property
    def name(self) -> str: ...

    def params(self) -> dict[str, Any]:
        """JSON-ready parameters, written to trace headers and checked by resume."""
        ...

    def plan(self) -> StepGraph | Chain:
        """The steps: a networkx DAG (node attr `step`, optional `args`; edge attr `name`) or a Chain."""
        ...

    def solved(self, outputs: Mapping[NodeId, Any], errors: int) -> bool:
        """Did the run achieve the task? `outputs` holds the sink steps' outputs."""
        ...


@runtime_checkable
class SampleableTask(Task, Protocol):
    """A chain task whose every step's correct input is known (for calibration and
    independent-steps runs: each step evaluated from ground truth, not from the
    previous step's vote)."""

    @property
    def steps(self) -> int: ...

    def step_inputs(self, step: int) -> Inputs: ...


@dataclass(frozen=True, slots=True)
class Param:
    """One task option, as the CLI and `maker tasks` show it; minimum and maximum are checked before the task is built."""

    name: str
    type: type
    default: Any
    help: str
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A registry entry: how to build a task from options, and its simulator oracle."""

    name: str
    summary: str
    params: tuple[Param, ...]
    factory: Callable[..., Task]
    oracle: Oracle | None = None
    aliases: tuple[str, ...] = field(default=())
