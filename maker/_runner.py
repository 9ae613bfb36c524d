"""`run` / `arun`: wire a task, a backend, voting and a trace together, and go."""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Hashable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio
import networkx as nx

from maker._budget import Budget, with_budget
from maker._drafts import check_draftable
from maker._independent import HEADER_FIELD, describe_steps
from maker._microagent import Guard, Microagent
from maker._planner import IndependentPlan, Plan, make_plan
from maker._recorder import Progress, Recorder
from maker._result import RunResult
from maker._scheduler import run_plan
from maker._settings import RunSettings
from maker._shards import CHAIN_REFUSAL, Shard, shard_graph, shard_steps
from maker._speculation import Reuse, run_speculative
from maker._steps import step_voting
from maker._version import __version__
from maker.backends._protocol import Backend
from maker.backends._registry import open_backend
from maker.errors import BudgetExceeded, ConfigError, MakerError, RunError, StepFailed, VoteUndecided
from maker.tasks._protocol import Chain, LLMStep, SampleableTask, StepGraph, Task
from maker.traces._schema import SCHEMA_VERSION
from maker.traces._writer import TraceWriter
from maker.voting import Voting

DEFAULT_MODEL = "sim/gpt-4.1-mini"


class GraphTask:
    """A user's DAG as a task: no parameters, solved when every step is decided and scored right."""

    name = "custom"

    def __init__(self, graph: StepGraph) -> None:
        self.graph = graph

    def params(self) -> dict[str, Any]:
        return {"nodes": self.graph.number_of_nodes(), "edges": self.graph.number_of_edges()}

    def plan(self) -> StepGraph:
        return self.graph

    def solved(self, outputs: Mapping[Hashable, Any], errors: int) -> bool:
        return errors == 0


def default_trace_path(task: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{stamp}-{uuid.uuid4().hex[:6]}.jsonl"


def trace_path(trace: object) -> Path | None:
    """Where `trace=` says to write: a path, or nowhere for None (the default) and False.

    A library call writes no file it was not asked for; the CLI asks for a
    fresh file under ./runs/ (`default_trace_path`) unless told otherwise.
    Takes `object` because callers are not always type-checked: anything else
    (True included) is a clear ConfigError, not a TypeError from deep inside.
    """
    if trace is None or trace is False:
        return None
    if isinstance(trace, str | Path):
        return Path(trace)
    raise ConfigError(f"trace must be a path, None or False, got {trace!r}")


def _plan_for(task: Task, settings: RunSettings, independent: Sequence[int] | None, shard: Shard | None = None) -> Plan:
    if independent is None:
        source = task.plan()
        if shard is not None:
            if isinstance(source, Chain):
                raise ConfigError(CHAIN_REFUSAL)
            source = shard_graph(source, shard)
        plan = make_plan(source, window=settings.plan_window)
        check_draftable(plan, task.name, settings.draft)
        return plan
    if not isinstance(task, SampleableTask):
        raise ConfigError(f"task {task.name!r} has no ground-truth step inputs, so it cannot run steps independently")
    chain = task.plan()
    if not isinstance(chain, Chain):
        raise ConfigError(f"task {task.name!r} is not a chain of steps, so it cannot run steps independently")
    bad = [s for s in independent if not 0 <= s < task.steps]
    if bad:
        raise ConfigError(f"step {bad[0]} is outside {task.name}'s 0..{task.steps - 1}")
    return IndependentPlan(chain.step, independent, task.step_inputs, settings.window)


def header(
    run_id: str,
    task: Task,
    *,
    model: str,
    voting: Voting,
    settings: RunSettings,
    independent: Sequence[int] | None = None,
    chosen: Sequence[int] | None = None,
    model_spec: str | None = None,
    shard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The trace's first line. independent: the steps this run evaluates; chosen: the whole
    run's choice they come from (a shard evaluates its part of it), recorded so resume and
    replay rebuild it."""
    mode: dict[str, Any] = {"mode": "sequential"}
    if independent is not None:
        mode = {
            "mode": "independent",
            "steps_evaluated": len(independent),
            HEADER_FIELD: describe_steps(independent if chosen is None else chosen),
        }
    # model_spec: the name with its options (`sim/x?latency=0.002`), which resume opens again.
    spec = {"model_spec": model_spec} if model_spec and model_spec != model else {}
    return {
        "type": "header",
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "maker_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": {"name": task.name, "params": task.params()},
        "model": model,
        **spec,
        "voting": voting.describe(),
        "seed": settings.seed,
        "settings": settings.describe(),
        **mode,
        **({"shard": shard} if shard else {}),
    }


def with_request_options(head: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """The header, with the backend's request options (`top_p`, `stop`, …) where it sends any (they change
    p), and a fleet's endpoints."""
    options = getattr(backend, "request_options", None)
    if isinstance(options, dict) and options:
        head["request_options"] = dict(options)
    endpoints = getattr(backend, "endpoints", None)
    if isinstance(endpoints, list) and endpoints:
        head["endpoints"] = endpoints  # a fleet: which endpoints served the run (samples name theirs)
    return head


def _spec(model: str, backend: Backend) -> str | None:
    """The model name as given, if it names this backend and carries no credentials."""
    same = model.split("?", 1)[0] == backend.model
    return model if same and "@" not in model else None


async def arun(
    task: Task | StepGraph,
    *,
    model: str = DEFAULT_MODEL,
    voting: Voting | None = None,
    settings: RunSettings | None = None,
    trace: str | Path | Literal[False] | None = None,
    backend: Backend | None = None,
    progress: Progress | None = None,
    guard: Guard | None = None,
    independent: Sequence[int] | None = None,
    budget: Budget | None = None,
    shard: Shard | None = None,
    shard_selection: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run a task (or a networkx DAG of steps) to the end and return its result.

    A run that stops early on a `RunError` (a step undecided at its cap, a
    budget reached, a failed step or endpoint) still returns: `result.error`
    holds the error and `result.outcome` says why; `result.raise_for_outcome()`
    raises it, with the result attached as `error.result`. Anything else
    (bad settings, a bug) raises.

    trace: where to write the run's trace (.jsonl, or .jsonl.gz compressed); None
        (the default) or False: none. Resume and replay need one.
    backend: an already-open backend (tests, custom providers); else `model` picks one.
    independent: instead of solving the chain, evaluate these steps of it, each
        from its ground-truth input (measures voted per-step reliability; it is
        not a sequential solve, and the trace and summary say so). Choose them
        with `maker.independent_steps(task, N, seed=S)` (or pass a list); the
        trace records the choice, so resume and replay find the same steps.
    budget: limits on cost, samples and tokens, checked before each request
        (a request that could cross one is never sent; see `maker.Budget`).
    shard: run only this shard's part of the work (see `maker.run_sharded`);
        `shard_selection` says what the whole run selected, for the header.
    """
    if isinstance(task, nx.DiGraph):
        task = GraphTask(task)
    voting = voting or Voting()
    settings = settings or RunSettings()
    chosen = independent
    if shard is not None and independent is not None:
        independent = shard_steps(independent, shard)
    plan = _plan_for(task, settings, independent, shard)
    own_backend = backend is None
    backend = backend or open_backend(model, seed=settings.seed)
    if budget is not None and budget.limited:
        guard = with_budget(guard, budget.guard(backend.model))
    path = trace_path(trace)
    try:
        writer = _open_writer(path) if path else None
    except BaseException:
        if own_backend:
            await backend.aclose()
        raise
    run_id = uuid.uuid4().hex
    if writer:
        described = {**shard.describe(), **dict(shard_selection or {})} if shard else None
        head = header(
            run_id,
            task,
            model=backend.model,
            voting=voting,
            settings=settings,
            independent=independent,
            chosen=chosen,
            model_spec=_spec(model, backend),
            shard=described,
        )
        writer.write(with_request_options(head, backend))
        writer.commit(force=True)
    recorder = Recorder(writer, progress)
    try:
        return await execute_plan(
            task,
            plan,
            backend=backend,
            voting=voting,
            settings=settings,
            recorder=recorder,
            run_id=run_id,
            trace=path,
            guard=guard,
        )
    finally:
        if writer:
            writer.close()
        if own_backend:
            await backend.aclose()


def _open_writer(path: Path) -> TraceWriter:
    try:
        return TraceWriter(path)
    except FileExistsError:
        raise ConfigError(f"trace {path} already exists; pick another path (or resume it)") from None
    except OSError as exc:
        raise ConfigError(f"cannot write trace {path}: {exc.strerror or exc}") from None


async def execute_plan(
    task: Task,
    plan: Plan,
    *,
    backend: Backend,
    voting: Voting,
    settings: RunSettings,
    recorder: Recorder,
    run_id: str,
    trace: Path | None = None,
    guard: Guard | None = None,
    reuse: Reuse | None = None,
) -> RunResult:
    """Run `plan` to its end (a fresh run, a resumed session, a replay) and say how it went.

    A `RunError` ends the session with an end event and is returned in the
    result, not raised; `recorder` writes (or, for replay, checks) every event.
    """
    start = time.perf_counter()
    if recorder.progress:
        recorder.progress.start(plan.total)
    outputs: dict[Hashable, Any] = {}
    error: RunError | None = None
    outcome = "interrupted"
    watch = getattr(backend, "watch", None)  # a governed backend's changes go to the trace
    if callable(watch) and recorder.writer is not None:
        watch(recorder.event)
    try:
        async with anyio.create_task_group() as samples:
            agent = Microagent(backend, recorder, anyio.CapacityLimiter(settings.concurrency), samples, guard)
            # A plan that votes its own steps (maker._recursive: judged votes, a growing DAG).
            own = getattr(plan, "executor", None)
            if own is not None and settings.speculate:
                raise ConfigError("--speculate works on chains of steps; a recursive plan cannot speculate")
            # Independent steps are measurements: an undecided one is a data point, not a reason to stop.
            if (settings.speculate or settings.draft) and not isinstance(plan, IndependentPlan) and own is None:
                outputs = await run_speculative(
                    plan,
                    agent,
                    recorder,
                    voting,
                    depth=settings.speculate,
                    max_steps=settings.step_limit,
                    reuse=reuse,
                    draft=settings.draft,
                    draft_model=settings.draft_model,
                    seed=settings.seed,
                )
            else:
                execute = (
                    own(agent, recorder, voting)
                    if own is not None
                    else partial(_step, agent, recorder, voting, isinstance(plan, IndependentPlan))
                )
                outputs = await run_plan(plan, execute, max_steps=settings.step_limit)
        solved = task.solved(outputs, recorder.totals.errors)
        outcome = "solved" if solved else "failed"
        if isinstance(plan, IndependentPlan):
            outcome = "measured"  # independent steps measure reliability; they solve nothing
    except Exception as exc:
        leaf = _first_error(exc)
        if not isinstance(leaf, RunError):
            outcome = "error"
            if leaf is exc:
                raise
            raise leaf from None
        error = leaf
        outcome = _outcome_of(error)
    finally:
        wall = time.perf_counter() - start
        if recorder.progress:
            recorder.progress.stop()
        if callable(watch) and recorder.writer is not None:
            watch(None)
        if recorder.writer:
            recorder.writer.write(
                {
                    "type": "end",
                    "outcome": outcome,
                    "message": str(error) if error else None,
                    "totals": recorder.totals.as_dict(),
                    "wall_s": round(wall, 3),
                }
            )
    result = RunResult(
        run_id,
        task.name,
        backend.model,
        outcome,
        outcome == "solved",
        plan.total,
        recorder.totals,
        wall,
        trace,
        dict(outputs),
        error,
        "independent" if isinstance(plan, IndependentPlan) else "sequential",
    )
    return result


def _first_error(exc: BaseException) -> BaseException:
    """The error that started it: task groups nest it in exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _outcome_of(error: RunError) -> str:
    if isinstance(error, VoteUndecided):
        return "undecided"
    if isinstance(error, BudgetExceeded):
        return "budget"
    return "error"


async def _step(
    agent: Microagent,
    recorder: Recorder,
    voting: Voting,
    skip_undecided: bool,
    node: Hashable,
    data: dict[str, Any],
    inputs: dict[str, Any],
) -> Any:
    step = data["step"]
    if _is_llm_step(step):
        try:
            decision = await agent.vote(node, step, inputs, step_voting(step, data.get("voting"), voting))
            # Scored only now, after the decision: ground truth never reaches voting.
            truth = step.expected(inputs)
            truth_key = None if truth is None else step.vote_key(truth)
        except VoteUndecided:
            if not skip_undecided:
                raise
            recorder.totals.undecided += 1  # its samples and a step_error event are in the trace
            return None
        except MakerError:
            raise
        except Exception as exc:  # a bug in the step's own prompt builder, parser or vote key
            raise _failed(recorder, node, exc) from exc
        recorder.decision(decision, truth_key)
        return decision.answer
    try:
        output = step.run(inputs)
        if inspect.isawaitable(output):
            output = await output
    except Exception as exc:
        raise _failed(recorder, node, exc) from exc
    recorder.python_step(node, output)
    return output


def _failed(recorder: Recorder, node: Hashable, exc: Exception) -> StepFailed:
    error = StepFailed(f"step {node!r} raised {type(exc).__name__}: {exc}", step=node)
    recorder.step_error(node, error)
    return error


_LLM_KINDS: dict[type, bool] = {}


def _is_llm_step(step: object) -> bool:
    # Protocol isinstance checks are slow and a million-step chain asks a
    # million times; the answer is the same for every step of one class.
    kind = type(step)
    known = _LLM_KINDS.get(kind)
    if known is None:
        known = _LLM_KINDS[kind] = isinstance(step, LLMStep)
    return known


def run(task: Task | StepGraph, **options: Any) -> RunResult:
    """Blocking `arun` for scripts and notebooks without an event loop.

    Each call runs its own event loop. A `backend=` you pass stays yours and
    stays open: its connections made in this loop are closed before the loop
    ends, so it can go to the next `maker.run`, and `anyio.run(backend.aclose)`
    afterwards is clean (there is nothing left to close).
    """
    return anyio.run(partial(_arun_then_release, task, options))


async def _arun_then_release(task: Task | StepGraph, options: dict[str, Any]) -> RunResult:
    try:
        return await arun(task, **options)
    finally:
        await release_loop(options.get("backend"))


async def release_loop(backend: Backend | None) -> None:
    """Close a backend's connections bound to the current event loop, if it keeps any."""
    release = getattr(backend, "release_loop", None)
    if release is not None:
        await release()
