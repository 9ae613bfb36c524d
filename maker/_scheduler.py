"""The scheduler: run every step whose inputs are ready, hand outputs downstream.

Structured concurrency only: one anyio task group owns every step, so the first
unrecoverable error cancels the rest and propagates, and nothing outlives the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio
import anyio.lowlevel

from maker._planner import Plan

Execute = Callable[[Hashable, dict[str, Any], dict[str, Any]], Awaitable[Any]]


async def run_plan(plan: Plan, execute: Execute, *, max_steps: int) -> dict[Hashable, Any]:
    """Run `plan` to the end; return the outputs the plan keeps (see `Plan.keep`).

    `execute(node, node_data, inputs)` does one step and returns its output.
    At most `max_steps` steps are in progress at once (the limit on in-flight
    requests is the microagent's; this one bounds memory on wide DAGs).
    Outputs nobody needs any more are dropped as soon as the last consumer has
    read them, so a long chain holds a window, not a million states.
    """
    graph = plan.graph
    outputs: dict[Hashable, Any] = {}
    waiting = {n: graph.in_degree(n) for n in graph.nodes}
    unread = {n: graph.out_degree(n) for n in graph.nodes}
    limiter = anyio.CapacityLimiter(max_steps)
    keep = plan.keep

    async def worker(node: Hashable | None, tg: anyio.abc.TaskGroup) -> None:
        # A worker carries on with one of the steps its step made ready, so a
        # chain runs in a single task instead of spawning one per step.
        done = 0
        async with limiter:  # one slot per worker, held across the steps it carries on with
            while node is not None:
                done += 1
                if done % 32 == 0:
                    # Steps on an instant backend never suspend; yield now and then so
                    # Ctrl-C (cancellation) and other tasks still get their turn.
                    await anyio.lowlevel.checkpoint()
                ready = await step(node)
                node = ready.pop() if ready else None
                for other in ready:
                    tg.start_soon(worker, other, tg)

    async def step(node: Hashable) -> list[Hashable]:
        inputs = plan.inputs(node, outputs)
        for pred in list(graph.predecessors(node)):
            unread[pred] -= 1
            if unread[pred] == 0:
                _forget(pred)
        output = await execute(node, graph.nodes[node], inputs)
        successors = list(graph.successors(node))
        if successors or keep != "none":
            outputs[node] = output
        if not successors:
            del unread[node]
        del waiting[node]
        ready = []
        for new in plan.extend(node):
            preds = list(graph.predecessors(new))
            waiting[new] = sum(1 for p in preds if p not in outputs)
            unread[new] = 0
            for pred in preds:
                # A growing plan may feed a new node from one that had no consumer when it
                # committed (a recursive plan's sub-answer, read by a composition added later).
                unread[pred] = unread.get(pred, 0) + 1
            if waiting[new] == 0:
                ready.append(new)
        for succ in successors:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                ready.append(succ)
        return ready

    def _forget(node: Hashable) -> None:
        # Every consumer has read this output: drop it unless the user keeps all.
        del unread[node]
        if keep != "all":
            outputs.pop(node, None)
        plan.release(node)

    async with anyio.create_task_group() as tg:
        for node in [n for n, d in waiting.items() if d == 0]:
            tg.start_soon(worker, node, tg)
    return outputs
