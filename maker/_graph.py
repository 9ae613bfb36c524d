"""A thin helper for building plans: a networkx DiGraph with one method more.

A plan is a plain `networkx.DiGraph`: each node carries its step in the node
attribute `step` (optional `args`: fixed inputs, `voting`: the node's own
voting), and each edge carries the source's output to the target's input named
by the edge attribute `name`. `DAG.add_step` writes exactly that, so anything
networkx can do with a graph (draw it, inspect it, take a subgraph) still works,
and `maker.run` accepts it as it is.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from maker._planner import INPUT, validate
from maker._steps import as_step
from maker.errors import PlanError
from maker.voting import Voting

# networkx's DiGraph is generic only in its type stubs: subscript it for mypy alone.
if TYPE_CHECKING:
    _DiGraph = nx.DiGraph[Hashable]
else:
    _DiGraph = nx.DiGraph


class DAG(_DiGraph):
    """A plan of microsteps. `maker.run(dag)` validates it, then runs it.

    ::

        dag = DAG()
        dag.add_step("a", load, args={"path": "x.txt"})
        dag.add_step("b", summarise, inputs={"text": "a"})   # a's output → b's input `text`
    """

    def add_step(
        self,
        node: Hashable,
        step: Any,
        *,
        inputs: Mapping[str, Hashable] | None = None,
        args: Mapping[str, Any] | None = None,
        voting: Voting | None = None,
    ) -> Hashable:
        """Add `node` running `step` (an LLM step, a python step, or a plain function).

        inputs: input name → the node whose output feeds it (that node may be
            added later; the plan is checked as a whole before it runs).
        args: fixed inputs (JSON values: they are written to the trace when scored).
        voting: this node's own voting settings.
        Returns `node`, so steps can be chained into expressions.
        """
        if node in self and "step" in self.nodes[node]:
            raise PlanError(f"node {node!r} is added twice")
        if voting is not None and not isinstance(voting, Voting):
            raise PlanError(f"node {node!r}: voting must be a voting.Voting, got {type(voting).__name__}")
        attrs: dict[str, Any] = {"step": as_step(step)}
        if args:
            attrs["args"] = dict(args)
        if voting is not None:
            attrs["voting"] = voting
        self.add_node(node, **attrs)
        for name, source in (inputs or {}).items():
            self._feed(source, node, name)
        return node

    def _feed(self, source: Hashable, node: Hashable, name: str) -> None:
        if source == node:
            raise PlanError(f"node {node!r}: input {name!r} cannot come from the node itself")
        if self.has_edge(source, node):
            # One edge per pair in a DiGraph: the same output feeding several
            # inputs is one edge whose `name` lists them all.
            names = self.edges[source, node][INPUT]
            self.edges[source, node][INPUT] = (*(names if isinstance(names, tuple) else (names,)), name)
        else:
            self.add_edge(source, node, **{INPUT: name})

    def validate(self) -> DAG:
        """Check the plan now (runs do it anyway): raise `PlanError` naming the first bad node."""
        validate(self)
        return self
