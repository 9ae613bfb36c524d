"""The planner: a task's steps as a networkx DAG, materialised lazily for long chains.

Users see plain networkx DiGraphs. For a chain of a million steps the planner
keeps only a sliding window of it in the graph (a full million-node DiGraph
costs about a gigabyte), adding steps ahead as the run commits steps behind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx

from maker.errors import PlanError
from maker.tasks._protocol import Chain, Inputs, LLMStep, PythonStep, StepGraph
from maker.voting import Voting

INPUT = "name"  # edge attribute: which input of the target the source's output feeds


class Plan:
    """A validated DAG of steps, possibly a window onto a longer chain.

    keep: which outputs the run returns: "all" (a user's DAG), "sinks" (the end
    of a chain) or "none" (independent steps, where only the scores matter).
    """

    lazy = False
    keep = "all"

    def __init__(self, graph: StepGraph) -> None:
        self.graph = graph
        self.total = graph.number_of_nodes()

    def extend(self, done: Hashable) -> Iterable[Hashable]:
        """Called when `done` committed; returns nodes it added (none for a fixed DAG)."""
        return ()

    def release(self, node: Hashable) -> None:
        """`node`'s output is no longer needed by anything still to run."""

    def inputs(self, node: Hashable, outputs: dict[Hashable, Any]) -> dict[str, Any]:
        data = self.graph.nodes[node]
        inputs = dict(data.get("args") or {})
        for pred in self.graph.predecessors(node):
            for name in input_names(self.graph, pred, node):
                inputs[name] = outputs[pred]
        return inputs


def input_names(graph: StepGraph, source: Hashable, target: Hashable) -> tuple[str, ...]:
    """The inputs of `target` that `source`'s output feeds: edge attribute `name`, a
    string or a tuple of strings (one output into several inputs); default str(source)."""
    name = graph.edges[source, target].get(INPUT, str(source))
    return name if isinstance(name, tuple) else (name,)


class ChainPlan(Plan):
    """A window of `window` steps onto a chain of `chain.length` steps."""

    lazy = True
    keep = "sinks"

    def __init__(self, chain: Chain, window: int = 64) -> None:
        super().__init__(nx.DiGraph())
        self.chain = chain
        self.total = chain.length
        self._next = 0
        self._window = max(2, window)
        for _ in range(min(self._window, chain.length)):
            self._add()

    def _add(self) -> Hashable:
        i = self._next
        self._next += 1
        if i == 0:
            self.graph.add_node(0, step=self.chain.step, args={"prev": self.chain.first})
        else:
            self.graph.add_node(i, step=self.chain.step)
            self.graph.add_edge(i - 1, i, **{INPUT: "prev"})
        return i

    def extend(self, done: Hashable) -> Iterable[Hashable]:
        if self._next < self.total:
            return (self._add(),)
        return ()

    def release(self, node: Hashable) -> None:
        self.graph.remove_node(node)

    def inputs(self, node: Hashable, outputs: dict[Hashable, Any]) -> dict[str, Any]:
        # The hot path of a million-step chain: skip the generic edge walk.
        return {"prev": self.chain.first if node == 0 else outputs[node - 1]}  # type: ignore[operator]


class IndependentPlan(Plan):
    """Chosen steps of a chain, each from its ground-truth input, none depending on another.

    This is how per-step reliability is measured at full scale (and how
    calibration samples steps): a sequential chain can only run one step at a
    time, this runs as many as the concurrency limit allows.
    """

    lazy = True
    keep = "none"

    def __init__(
        self, step: LLMStep, steps: Sequence[int], inputs_of: Callable[[int], Inputs], window: int = 64
    ) -> None:
        super().__init__(nx.DiGraph())
        self.step = step
        self.steps = steps
        self.total = len(steps)
        self._inputs_of = inputs_of
        self._next = 0
        for _ in range(min(max(2, window), self.total)):
            self._add()

    def _add(self) -> Hashable:
        node = self.steps[self._next]
        self._next += 1
        self.graph.add_node(node, step=self.step)
        return node

    def extend(self, done: Hashable) -> Iterable[Hashable]:
        self.graph.remove_node(done)  # nothing consumes its output
        if self._next < self.total:
            return (self._add(),)
        return ()

    def inputs(self, node: Hashable, outputs: dict[Hashable, Any]) -> dict[str, Any]:
        return dict(self._inputs_of(node))  # type: ignore[arg-type]


def make_plan(source: StepGraph | Chain, *, window: int = 64) -> Plan:
    """Validate a task's plan and wrap it for the scheduler."""
    if isinstance(source, Chain):
        if source.length < 1:
            raise PlanError("a chain needs at least one step")
        return ChainPlan(source, window)
    grow = getattr(source, "as_plan", None)
    if grow is not None:  # a DAG that grows while it runs (maker._recursive): it validates itself
        plan: Plan = grow(window)
        return plan
    if not isinstance(source, nx.DiGraph):
        raise PlanError(f"a plan must be a networkx DiGraph or a Chain, got {type(source).__name__}")
    validate(source)
    return Plan(source)


def validate(graph: StepGraph) -> None:
    """Reject what would fail mid-run: cycles, unknown or bad nodes, clashing, missing or unexpected inputs."""
    if graph.number_of_nodes() == 0:
        raise PlanError("the plan has no steps")
    for node, data in graph.nodes(data=True):
        _check_node(graph, node, data)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise PlanError(f"the plan has a cycle through node {cycle[0][0]!r}: " + " → ".join(repr(u) for u, _ in cycle))
    for node, data in graph.nodes(data=True):
        _check_inputs(graph, node, data)


def _check_node(graph: StepGraph, node: Hashable, data: dict[str, Any]) -> None:
    if not isinstance(node, (str, int)) or isinstance(node, bool):
        raise PlanError(f"node {node!r}: node ids must be strings or integers (they are written to traces)")
    step = data.get("step")
    if step is None:
        fed = [(t, input_names(graph, node, t)[0]) for t in graph.successors(node)]
        if not data and fed:
            # networkx creates a node for any edge end: this one was only ever named as a source.
            target, name = fed[0]
            raise PlanError(
                f"node {node!r} is unknown: it feeds input {name!r} of node {target!r} but was never added as a step"
            )
        raise PlanError(f"node {node!r} has no 'step' attribute")
    if not isinstance(step, (LLMStep, PythonStep)):
        raise PlanError(f"node {node!r}: 'step' must be an LLM step or a Python step, got {type(step).__name__}")
    if not isinstance(data.get("args") or {}, Mapping):
        raise PlanError(f"node {node!r}: 'args' must be a mapping of input name to value")
    voting = data.get("voting")
    if voting is not None and not isinstance(voting, Voting):
        raise PlanError(f"node {node!r}: 'voting' must be a voting.Voting, got {type(voting).__name__}")


def _check_inputs(graph: StepGraph, node: Hashable, data: dict[str, Any]) -> None:
    step = data["step"]
    names = [n for p in graph.predecessors(node) for n in input_names(graph, p, node)]
    args = data.get("args") or {}
    given = set(args)
    for name in names:
        if name in given:
            raise PlanError(f"node {node!r}: input {name!r} is fed twice")
        given.add(name)
    needs = getattr(step, "inputs", None)
    missing = set(needs or ()) - given
    if missing:
        raise PlanError(f"node {node!r}: missing input {sorted(missing)[0]!r}")
    accepts: Collection[str] | None = getattr(step, "accepts", None)  # None: any input (it takes **kwargs)
    if accepts is not None and (unexpected := given - set(accepts)):
        raise PlanError(
            f"node {node!r}: unexpected input {sorted(unexpected)[0]!r} "
            f"(its step takes {', '.join(sorted(accepts)) or 'no inputs'})"
        )
