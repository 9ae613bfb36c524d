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


def trace_path(trace: object, task: str) -> Path | None:
    """Where `trace=` says to write: a path, a fresh file under ./runs/ for None, nowhere for False.

    Takes `object` because callers are not always type-checked: anything else
    (True included) is a clear ConfigError, not a TypeError from deep inside.
    """
    if trace is False:
        return None
    if trace is None:
        return default_trace_path(task)
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
        return make_plan(source, window=settings.window)
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
    model: str,
    voting: Voting,
    settings: RunSettings,
    independent: Sequence[int] | None = None,
    model_spec: str | None = None,
    shard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    mode = (
        {"mode": "sequential"} if independent is None else {"mode": "independent", "steps_evaluated": len(independent)}
    )
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
    check: bool = True,
    independent: Sequence[int] | None = None,
    budget: Budget | None = None,
    shard: Shard | None = None,
    shard_selection: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run a task (or a networkx DAG of steps) to the end and return its result.

    trace: a path, None for a fresh file under ./runs/, or False for no trace.
    backend: an already-open backend (tests, custom providers); else `model` picks one.
    check: raise the run's error (with `.result` attached) instead of returning it.
    independent: instead of solving the chain, evaluate these steps of it, each
        from its ground-truth input (measures voted per-step reliability; it is
        not a sequential solve, and the trace and summary say so).
    budget: limits on cost, samples and tokens, checked before each request
        (a request that could cross one is never sent; see `maker.Budget`).
    shard: run only this shard's part of the work (see `maker.run_sharded`);
        `shard_selection` says what the whole run selected, for the header.
    """
    if isinstance(task, nx.DiGraph):
        task = GraphTask(task)
    voting = voting or Voting()
    settings = settings or RunSettings()
    if shard is not None and independent is not None:
        independent = shard_steps(independent, shard)
    plan = _plan_for(task, settings, independent, shard)
    own_backend = backend is None
    backend = backend or open_backend(model, seed=settings.seed)
    if budget is not None and budget.limited:
        guard = with_budget(guard, budget.guard(backend.model))
    path = trace_path(trace, task.name)
    try:
        writer = _open_writer(path) if path else None
    except BaseException:
        if own_backend:
            await backend.aclose()
        raise
    run_id = uuid.uuid4().hex
    if writer:
        described = {**shard.describe(), **dict(shard_selection or {})} if shard else None
        writer.write(
            header(run_id, task, backend.model, voting, settings, independent, _spec(model, backend), described)
        )
        writer.commit(force=True)
    recorder = Recorder(writer, progress)
    try:
        return await _execute(task, plan, backend, voting, settings, recorder, run_id, path, guard, check)
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


async def _execute(
    task: Task,
    plan: Plan,
    backend: Backend,
    voting: Voting,
    settings: RunSettings,
    recorder: Recorder,
    run_id: str,
    path: Path | None,
    guard: Guard | None,
    check: bool,
    *,
    reuse: Reuse | None = None,
) -> RunResult:
    start = time.perf_counter()
    if recorder.progress:
        recorder.progress.start(plan.total)
    outputs: dict[Hashable, Any] = {}
    error: RunError | None = None
    outcome = "interrupted"
    try:
        async with anyio.create_task_group() as samples:
            agent = Microagent(backend, recorder, anyio.CapacityLimiter(settings.concurrency), samples, guard)
            # A plan that votes its own steps (maker._recursive: judged votes, a growing DAG).
            own = getattr(plan, "executor", None)
            if own is not None and settings.speculate:
                raise ConfigError("--speculate works on chains of steps; a recursive plan cannot speculate")
            # Independent steps are measurements: an undecided one is a data point, not a reason to stop.
            if settings.speculate and not isinstance(plan, IndependentPlan) and own is None:
                outputs = await run_speculative(
                    plan,
                    agent,
                    recorder,
                    voting,
                    depth=settings.speculate,
                    max_steps=settings.step_limit,
                    reuse=reuse,
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
        path,
        dict(outputs),
        error,
        "independent" if isinstance(plan, IndependentPlan) else "sequential",
    )
    if check and error is not None:
        error.result = result  # type: ignore[attr-defined]
        raise error
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
    """Blocking `arun` for scripts and notebooks without an event loop."""
    return anyio.run(partial(arun, task, **options))
