"""Shards: wide work split into independent runs, each an ordinary maker run with its own trace.

Scale past one process comes from shards, not from scheduling single LLM calls
on a cluster engine (1.5–5 ms of engine overhead a task, and an engine's own
history would duplicate every sample). A shard is a normal run: its own trace,
resumable by `maker resume`, replayable by `maker replay`. Its header names the
parent run, its index and the count; a manifest lists the shards.

What can be split is work with no edge between shards: the independent steps
of a measurement, or the weakly connected components of a DAG. A step (or a
component, named by its smallest node id) goes to shard `stable_hash(id) %
count`, so the split depends on nothing but the ids: not on order, process or
machine, and a retry or a resume rebuilds exactly the same shard. A dependent
chain cannot be split at all (each step needs the one before it);
speculation is what shortens a chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from maker._budget import Budget
from maker.errors import ConfigError, PlanError
from maker.tasks._protocol import StepGraph

CHAIN_REFUSAL = (
    "a dependent chain cannot be sharded: each step needs the one before it. Shard wide work "
    "(--independent steps, a DAG of several components); to shorten a chain, use --speculate"
)


@dataclass(frozen=True, slots=True)
class Shard:
    """Which part of a sharded run this run is: `index` of `count`, under run `parent`."""

    index: int
    count: int
    parent: str

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index} of {self.count} does not exist")

    def owns(self, key: Hashable) -> bool:
        return shard_of(key, self.count) == self.index

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "parent": self.parent}

    @classmethod
    def of_header(cls, header: dict[str, Any]) -> Shard | None:
        """The shard a trace's header records, if it is one."""
        s = header.get("shard")
        if not isinstance(s, dict):
            return None
        try:
            return cls(int(s["index"]), int(s["count"]), str(s["parent"]))
        except (KeyError, TypeError, ValueError):
            return None


def shard_of(key: Hashable, count: int) -> int:
    """The shard of a step or component id: a stable hash, the same in every process and on every machine."""
    text = json.dumps(key, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") % count


def shard_steps(steps: Sequence[int], shard: Shard) -> list[int]:
    """The independent steps that belong to `shard`, in their original order."""
    return [s for s in steps if shard.owns(s)]


def components(graph: StepGraph) -> list[set[Hashable]]:
    """The weakly connected components of a plan: the parts with no edge between them."""
    return [set(c) for c in nx.weakly_connected_components(graph)]


def shard_graph(graph: StepGraph, shard: Shard) -> StepGraph:
    """The components of `graph` that belong to `shard` (possibly none)."""
    if hasattr(graph, "as_plan"):  # maker._recursive: its components are not known before it runs
        raise PlanError("a recursive plan grows while it runs, so it cannot be split into shards")
    parts = components(graph)
    if len(parts) < 2:
        raise PlanError(
            "this plan is one connected component, so it cannot be sharded: every part of it depends on "
            "another (a chain or a joined DAG runs in one process; to shorten a chain, use --speculate)"
        )
    nodes = [n for part in parts if shard.owns(_name(part)) for n in part]
    return graph.subgraph(nodes).copy()


def _name(part: set[Hashable]) -> str:
    """A component's id: its smallest node id, by its JSON text (ids may mix str and int)."""
    return min(json.dumps(n, default=str) for n in part)


def split_budget(budget: Budget | None, count: int) -> list[Budget | None]:
    """Each shard's share of a run-wide budget, so the shards together never cross it.

    Cost is split evenly; samples and tokens are whole numbers, split with the
    remainder going to the first shards. A share of zero samples or tokens is
    a shard that cannot send anything, which is refused up front.
    """
    if budget is None or not budget.limited:
        return [None] * count

    def part(total: int | None, i: int) -> int | None:
        return None if total is None else total // count + (1 if i < total % count else 0)

    shares: list[Budget | None] = []
    for i in range(count):
        samples, tokens = part(budget.max_samples, i), part(budget.max_tokens, i)
        if samples == 0 or tokens == 0:
            raise ConfigError(
                f"a budget of {budget.max_samples or budget.max_tokens} cannot be split into {count} shards"
            )
        cost = budget.max_cost / count if budget.max_cost is not None else None
        shares.append(Budget(max_cost=cost, max_samples=samples, max_tokens=tokens, prices=budget.prices))
    return shares


def budget_left(budget: Budget | None, model: str, spent: dict[str, Any]) -> Budget | str | None:
    """What a shard may still spend after what its trace says it spent, so a retry never pays twice.

    None: no limit; "spent": the share is used up (the shard stops on its
    budget without sending anything).
    """
    if budget is None or not budget.limited:
        return None
    tokens_in, tokens_out = int(spent.get("tokens_in", 0)), int(spent.get("tokens_out", 0))
    price = budget.price(model)
    left: dict[str, Any] = {
        "max_samples": None if budget.max_samples is None else budget.max_samples - int(spent.get("samples", 0)),
        "max_tokens": None if budget.max_tokens is None else budget.max_tokens - tokens_in - tokens_out,
        "max_cost": None,
    }
    if budget.max_cost is not None:
        left["max_cost"] = budget.max_cost - (price.cost(tokens_in, tokens_out) if price else 0.0)
    if any(v is not None and v <= 0 for v in left.values()):
        return "spent"
    return Budget(**left, prices=budget.prices)
