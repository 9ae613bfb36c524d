"""A trace's header, turned back into the live objects of the run it recorded.

Replay and resume both start here: the task (rebuilt from the registry by
name and parameters, or the caller's own, checked against the header), the
voting settings, the run settings and the model. Whatever cannot be rebuilt
(a user's own DAG, user red flags) is asked of the caller with a clear message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import networkx as nx

from maker._independent import independent_steps, recorded_steps
from maker._runner import GraphTask
from maker._settings import RunSettings
from maker.errors import ConfigError, TraceError
from maker.tasks._protocol import StepGraph, Task
from maker.tasks._registry import build_task
from maker.voting import Voting


def task_of(header: dict[str, Any], task: Task | StepGraph | None = None) -> Task:
    """The recorded task: the caller's (checked against the header) or rebuilt from the registry."""
    recorded = header.get("task") or {}
    name, params = recorded.get("name"), recorded.get("params") or {}
    if task is None:
        if name == GraphTask.name:
            raise ConfigError(
                "this trace is of a custom DAG: pass the same DAG from Python "
                "(maker.resume(trace, task=dag) or maker.replay(trace, task=dag))"
            )
        if not isinstance(name, str):
            raise TraceError(f"the trace's header names no task (task name {name!r})")
        if not isinstance(params, dict):
            raise TraceError(f"the trace's task parameters are not an object (got {params!r})")
        try:
            return build_task(name, **params)
        except ConfigError as exc:
            raise TraceError(f"the trace's task {name!r} {params} cannot be rebuilt: {exc}") from None
    if isinstance(task, nx.DiGraph):
        task = GraphTask(task)
    given = (task.name, _json(task.params()))
    if given != (name, _json(params)):
        raise ConfigError(
            f"the task differs from the trace's: {task.name} {task.params()} given, {name} {params} recorded"
        )
    return task


def voting_of(header: dict[str, Any], voting: Voting | None = None) -> Voting:
    """The recorded voting: the caller's (which must decide alike) or rebuilt from the header."""
    recorded = header["voting"]
    if voting is None:
        if recorded.get("red_flags"):
            raise ConfigError(
                f"the trace's run used user red flags ({', '.join(recorded['red_flags'])}), which a "
                "trace cannot rebuild: pass the same Voting from Python"
            )
        try:
            return Voting.from_dict(recorded)
        except (ConfigError, KeyError, ValueError, TypeError) as exc:  # missing or mistyped header fields
            raise TraceError(f"the trace's voting settings cannot be rebuilt ({exc})") from None
    differences = voting_differences(recorded, voting.describe())
    if differences:
        raise ConfigError(f"the voting settings differ from the trace's ({differences[0]})")
    return voting


def voting_differences(recorded: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """Every setting that changes decisions, recorded vs given; the sample cap is not one."""
    keys = sorted((set(recorded) | set(given)) - {"max_samples"})  # the per-step cap
    return [
        f"{k}: {recorded.get(k)!r} recorded, {given.get(k)!r} given" for k in keys if recorded.get(k) != given.get(k)
    ]


def settings_of(
    header: dict[str, Any], *, concurrency: int | None = None, max_parallel_steps: int | None = None
) -> RunSettings:
    """The recorded run settings, with the ones that are safe to change changed."""
    s = header.get("settings") or {}
    base = RunSettings(
        concurrency=int(s.get("concurrency", 16)),
        max_parallel_steps=s.get("max_steps"),
        window=int(s.get("window", 64)),
        seed=int(header.get("seed", 0)),
        speculate=int(s.get("speculate", 0)),
        draft=int(s.get("draft", 0)),
        draft_model=s.get("draft_model"),
    )
    changes: dict[str, Any] = {}
    if concurrency is not None:
        changes["concurrency"] = concurrency
        if max_parallel_steps is None:
            changes["max_parallel_steps"] = None  # follows concurrency, as in a fresh run
    if max_parallel_steps is not None:
        changes["max_parallel_steps"] = max_parallel_steps
    return replace(base, **changes)


def independent_of(header: dict[str, Any], task: Task, steps: Sequence[int] | None) -> Sequence[int] | None:
    """The steps of an independent-steps run: the caller's (checked against the header) or the recorded ones."""
    if header.get("mode", "sequential") != "independent":
        if steps is not None:
            raise ConfigError("the trace is of a sequential run, not of independent steps")
        return None
    if steps is None:
        return recorded_steps(header, task)
    if len(steps) != header.get("steps_evaluated"):
        raise ConfigError(f"{len(steps)} independent steps given, the trace evaluated {header.get('steps_evaluated')}")
    return steps


def choose_independent(task: object, count: int | str | None, seed: int) -> Sequence[int] | None:
    """Which steps an `--independent N|all` run evaluates (None: not an independent run); see `independent_steps`."""
    if count is None:
        return None
    if isinstance(count, str) and count != "all":
        raise ConfigError(f"independent steps: expected a positive count or 'all', got {count!r}")
    return independent_steps(task, count if isinstance(count, int) else "all", seed=seed)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))
