"""A batch: instances of one task solved together, as one DAG of disjoint components.

Many problems at once (`maker run sorting --instances 200`) are one run with
one trace; because no edge joins two instances, the batch is also exactly
what `--shards` can split, each instance whole in one shard. Node ids are
prefixed with the instance (`"7/c3"`), and every edge names the input it
feeds, so relabelling never changes what a step receives.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import networkx as nx

from maker.errors import ConfigError
from maker.tasks._protocol import Chain, StepGraph, Task

BATCH = "batch"  # the parameter a batch adds to its task's parameters
_INPUT = "name"  # the planner's edge attribute for an input name


class Batch:
    """`count` instances of a task, from `params["instance"]` on; solved when every instance is."""

    def __init__(self, name: str, tasks: list[Task], params: Mapping[str, Any]) -> None:
        self.name = name
        self.tasks = tasks
        self._params = dict(params)

    def params(self) -> dict[str, Any]:
        return {**self._params, BATCH: len(self.tasks)}

    def plan(self) -> StepGraph:
        graph: StepGraph = nx.DiGraph()
        for j, task in enumerate(self.tasks):
            part = task.plan()
            if isinstance(part, Chain):
                raise ConfigError(f"task {self.name!r} is a chain; a batch needs a task whose plan is a DAG")
            for u, _v, data in part.edges(data=True):
                data.setdefault(_INPUT, str(u))  # the input it feeds, before the id changes
            graph.update(nx.relabel_nodes(part, {n: _prefixed(j, n) for n in part}))
        return graph

    def solved(self, outputs: Mapping[Hashable, Any], errors: int) -> bool:
        """Every instance the run computed is solved. A shard of the batch computes only its own
        instances (the others have no outputs here and are judged by their own shard)."""
        judged = [(task, part) for j, task in enumerate(self.tasks) if (part := _instance(outputs, j))]
        return bool(judged) and all(task.solved(part, errors) for task, part in judged)


def _prefixed(instance: int, node: Hashable) -> str:
    return f"{instance}/{node}"


def _instance(outputs: Mapping[Hashable, Any], instance: int) -> dict[Hashable, Any]:
    """One instance's outputs under their own ids (integers come back as integers)."""
    prefix = f"{instance}/"
    out: dict[Hashable, Any] = {}
    for key, value in outputs.items():
        if isinstance(key, str) and key.startswith(prefix):
            rest = key[len(prefix) :]
            out[int(rest) if rest.lstrip("-").isdigit() else rest] = value
    return out
