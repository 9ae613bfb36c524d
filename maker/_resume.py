"""Resume: continue an interrupted run from its trace, never paying twice.

A step is committed when its decision is in the trace. Resume reads the
trace, rebuilds the run from its header (refusing if the task, its
parameters, the model or the voting differ; only settings that cannot change
a decision may change: concurrency, the per-step sample cap, the endpoint),
restores the totals and the last committed state, cuts off a torn tail, and
appends to the same trace after a `resume` event. Committed steps are never
sampled again. Samples already recorded for a step that was not committed
(an orderly stop mid-step: a budget, Ctrl-C, a step at its sample cap) are
reused: voting counts them again, in their recorded order, before any new
sample is drawn, and they are neither paid for nor counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import networkx as nx

from maker._budget import Budget, with_budget
from maker._history import independent_of, settings_of, task_of, voting_of
from maker._microagent import Guard
from maker._planner import INPUT, ChainPlan, IndependentPlan, Plan, input_names, make_plan
from maker._recorder import Decision, Progress, Recorder, Totals
from maker._result import RunResult
from maker._runner import execute_plan
from maker._settings import RunSettings
from maker._shards import Shard, shard_graph
from maker._speculation import Reuse
from maker._version import __version__
from maker.backends._protocol import Backend, Completion, Request
from maker.backends._registry import open_backend
from maker.backends._replay import ReplayBackend, Tape, completion_of
from maker.errors import ConfigError, TraceError, TraceMismatch
from maker.tasks._protocol import Chain, SampleableTask, StepGraph, Task
from maker.traces._reader import check_trace_file, read_events
from maker.traces._repair import repair_tail
from maker.traces._writer import TraceLock, TraceWriter
from maker.voting import Verdict, Voting

# Finished runs: nothing left to resume.
FINISHED = ("solved", "failed", "measured")
STEP_EVENTS = ("sample", "decision", "step_error")


@dataclass(slots=True)
class History:
    """What a trace says happened: totals, committed steps, samples of unfinished steps."""

    header: dict[str, Any]
    totals: Totals
    committed: dict[Hashable, Any] = field(default_factory=dict)  # step → answer (a chain keeps only its last)
    count: int = 0  # committed steps
    last: Hashable = None  # the highest committed step of a chain
    unfinished: dict[Hashable, list[dict[str, Any]]] = field(default_factory=dict)  # step → samples, in order
    drafts: list[dict[str, Any]] = field(default_factory=list)  # draft events, served again on resume
    outcome: str | None = None  # the last session's end, if it ended; None after a crash
    cap: int = 0  # the per-step sample cap in force in the last session
    sessions: int = 1
    events: int = 1  # every event read, the header included


def read_history(path: Path, *, chain: bool, cap: int) -> History:
    """Read a trace once, streaming, into what resume needs.

    A chain keeps only its last answer, independent steps none (nothing reads
    them), a DAG every answer (any node may feed one still to run).
    """
    events = read_events(path)
    header = next(events)
    history = History(header, Totals(), cap=cap)
    recorder = Recorder(None, totals=history.totals)  # the very code that counted them the first time
    measuring = header.get("mode") == "independent"
    for event in events:
        history.events += 1
        kind = event["type"]
        if chain and kind in STEP_EVENTS and not (type(event["step"]) is int and event["step"] >= 0):
            raise TraceError(f"{path}:{history.events}: step {event['step']!r} is not a step of a chain (0, 1, 2, ...)")
        if kind == "sample":
            _count_sample(recorder, history, event, chain)
        elif kind == "decision":
            _count_decision(recorder, history, event, chain)
        elif kind == "draft":
            recorder.draft(event, write=False)
            history.drafts.append(event)
        elif kind == "step_error" and measuring and event.get("error") == "VoteUndecided":
            # An independent step that ran out of samples is a measurement, done with.
            history.totals.undecided += 1
            history.committed[event["step"]] = None
            history.unfinished.pop(event["step"], None)
        elif kind == "end":
            history.outcome = event.get("outcome")
            lost = (event.get("totals") or {}).get("lost") if isinstance(event.get("totals"), dict) else None
            if type(lost) is int and lost >= 0:
                history.totals.lost = lost  # each session's end totals carry the earlier sessions' too
        elif kind == "resume":
            history.outcome = None
            history.sessions += 1
            history.cap = int(event.get("max_samples", history.cap))
    return history


def _count_sample(recorder: Recorder, history: History, e: dict[str, Any], chain: bool) -> None:
    verdict = Verdict(e["key"], flag=e.get("flag"))
    recorder.sample(e["step"], e["i"], e["temperature"], completion_of(e), verdict, bool(e["late"]))
    if not _committed(history, e["step"], chain):
        history.unfinished.setdefault(e["step"], []).append(e)


def _committed(history: History, step: Hashable, chain: bool) -> bool:
    if chain:  # steps 0..last, of which only the last answer is kept
        return isinstance(step, int) and history.last is not None and step <= history.last  # type: ignore[operator]
    return step in history.committed


def _count_decision(recorder: Recorder, history: History, e: dict[str, Any], chain: bool) -> None:
    step = e["step"]
    if _committed(history, step, chain):
        raise TraceError(f"step {step} is decided twice in the trace")
    if e.get("kind") == "python":
        recorder.python_step(step, e["answer"])
    else:
        recorder.decision(
            Decision(
                step, e["winner"], e["answer"], e["votes"], e["samples"], e["flagged"], e["rounds"], e.get("prompt")
            ),
            e.get("truth"),
        )
    history.unfinished.pop(step, None)
    history.count += 1
    if chain:
        history.committed = {step: e["answer"]}
        history.last = step
    else:
        history.committed[step] = None if history.header.get("mode") == "independent" else e["answer"]


class _Continuing(Recorder):
    """The run's recorder, seeded with the trace's totals; reused samples are checked, not recounted."""

    def __init__(self, writer: TraceWriter, progress: Progress | None, totals: Totals, tape: Tape) -> None:
        super().__init__(writer, progress, totals)
        self.tape = tape
        self.reused = 0

    def sample(
        self,
        step: Hashable,
        index: int,
        temperature: float,
        c: Completion,
        v: Verdict,
        late: bool,
        extra: dict[str, Any] | None = None,
    ) -> None:
        st = self.tape.get(step)
        recorded = st.samples.get(index) if st is not None else None
        if recorded is None:
            super().sample(step, index, temperature, c, v, late, extra)
            return
        # Already in the trace and its totals: only check that the code still reads it alike.
        if recorded["key"] != v.key:
            raise TraceMismatch(step, f"sample {index} voting {recorded['key']}", f"sample {index} voting {v.key}")
        self.reused += 1
        self.tape.delivered(step, index)


class ResumedChainPlan(ChainPlan):
    """A chain plan that starts at step `start`, whose input is the last committed answer."""

    def __init__(self, chain: Chain, start: int, prev: Any, window: int = 64) -> None:
        Plan.__init__(self, nx.DiGraph())
        self.chain = chain
        self.total = chain.length
        self._start, self._prev = start, prev
        self._next = start
        self._window = max(2, window)
        for _ in range(min(self._window, chain.length - start)):
            self._add()

    def _add(self) -> Hashable:
        i = self._next
        self._next += 1
        self.graph.add_node(i, step=self.chain.step)
        if i > self._start:
            self.graph.add_edge(i - 1, i, **{INPUT: "prev"})
        return i

    def inputs(self, node: Hashable, outputs: dict[Hashable, Any]) -> dict[str, Any]:
        if node == self._start:
            return {"prev": self._prev}
        return {"prev": outputs[node - 1]}  # type: ignore[operator]


class RemainingSteps(IndependentPlan):
    """The independent steps not yet committed, counted out of all of them."""

    def __init__(self, step: Any, remaining: Sequence[int], inputs_of: Any, window: int, *, total: int) -> None:
        super().__init__(step, remaining, inputs_of, window)
        self.total = total  # progress and the result count every step of the run

    def extend(self, done: Hashable) -> Iterable[Hashable]:
        self.graph.remove_node(done)
        return (self._add(),) if self._next < len(self.steps) else ()


class ResumedPlan(Plan):
    """The steps of a DAG not yet committed; committed predecessors feed their recorded answers."""

    def __init__(self, graph: StepGraph, committed: Mapping[Hashable, Any]) -> None:
        super().__init__(graph.subgraph([n for n in graph if n not in committed]).copy())
        self.full = graph
        self.committed = committed
        self.total = graph.number_of_nodes()

    def inputs(self, node: Hashable, outputs: dict[Hashable, Any]) -> dict[str, Any]:
        inputs = dict(self.full.nodes[node].get("args") or {})
        for pred in self.full.predecessors(node):
            value = outputs[pred] if pred in outputs else self.committed[pred]
            for name in input_names(self.full, pred, node):
                inputs[name] = value
        return inputs


class _Continued:
    """The task, judged on its committed outputs and this session's together."""

    def __init__(self, task: Task, earlier: Mapping[Hashable, Any]) -> None:
        self.task = task
        self.name = task.name
        self.earlier = dict(earlier)

    def params(self) -> dict[str, Any]:
        return self.task.params()

    def plan(self) -> StepGraph | Chain:
        return self.task.plan()

    def solved(self, outputs: Mapping[Hashable, Any], errors: int) -> bool:
        return self.task.solved({**self.earlier, **outputs}, errors)


@dataclass(frozen=True, slots=True)
class _Run:
    """Everything rebuilt for the resumed session."""

    task: Task
    plan: Plan
    earlier: dict[Hashable, Any]


def _rebuild(
    task: Task, history: History, settings: RunSettings, independent: Sequence[int] | None, shard: Shard | None
) -> _Run:
    if independent is not None:
        assert isinstance(task, SampleableTask)
        chain = task.plan()
        assert isinstance(chain, Chain)  # the first session ran it independently, so it is one
        done = set(history.committed)
        remaining = [s for s in independent if s not in done]
        plan: Plan = RemainingSteps(
            chain.step,
            remaining,
            task.step_inputs,
            settings.window,
            total=len(independent),
        )
        return _Run(task, plan, {})
    source = task.plan()
    if isinstance(source, Chain):
        start = history.count
        if start and history.last != start - 1:
            raise TraceError(
                f"the trace's committed steps are not 0..{start - 1} of the chain (last is "
                f"{history.last}); it was not written by a sequential run"
            )
        prev = history.committed[start - 1] if start else source.first
        make_plan(source)  # validates
        plan = ResumedChainPlan(source, start, prev, settings.plan_window)
        return _Run(task, plan, {start - 1: prev} if start else {})
    if shard is not None:
        source = shard_graph(source, shard)
    full = make_plan(source, window=settings.plan_window)
    resume_from = getattr(full, "resume_from", None)
    if resume_from is not None:  # a DAG that grows as it runs (maker._recursive): it walks its committed part again
        return _Run(task, resume_from(history.committed), dict(history.committed))
    unknown = [s for s in history.committed if s not in full.graph]
    if unknown:
        raise TraceError(f"the trace commits step {unknown[0]!r}, which the task's plan does not have")
    return _Run(task, ResumedPlan(full.graph, history.committed), dict(history.committed))


async def aresume(
    trace: str | Path,
    *,
    concurrency: int | None = None,
    max_samples_per_step: int | None = None,
    task: Task | StepGraph | None = None,
    voting: Voting | None = None,
    backend: Backend | None = None,
    model: str | None = None,
    endpoint: Mapping[str, Any] | None = None,
    independent: Sequence[int] | None = None,
    progress: Progress | None = None,
    guard: Guard | None = None,
    budget: Budget | None = None,
    verify: bool = True,
) -> RunResult:
    """Continue the run that `trace` recorded; append to the same trace.

    Like `arun`, a session that stops on a `RunError` returns its result with
    the error in `result.error`; `result.raise_for_outcome()` raises it.

    concurrency, max_samples_per_step: the safe changes (requests in flight; the per-step
        sample cap, e.g. raised to get past a step that hit it).
    task, voting, independent: only what a header cannot rebuild (a custom DAG,
        user red flags, the list of independent steps); checked against it.
    backend / model / endpoint: where samples come from; the backend must be the
        recorded model (default: the header's model, opened again).
    budget / guard: limits on what this session may spend (reused samples are free).
    verify: first replay the committed steps from their recorded samples (no
        model calls) and refuse a trace that does not reproduce (`TraceMismatch`,
        `TraceError`): resume continues from what the samples say, never from a
        damaged answer or vote. False skips it (a very long trace already
        checked with `maker replay`).
    """
    path = Path(trace)
    check_trace_file(path)
    # The lock first, before one byte is read: held across reading, repair and every
    # append, so a second resume of this trace is refused before it touches anything.
    lock = TraceLock(path)
    try:
        header, history, run, voting, settings = await _prepare(
            path, task, voting, independent, max_samples_per_step, concurrency, verify
        )
        backend, own = await _backend(header, backend, model, endpoint)
        if budget is not None and budget.limited:
            guard = with_budget(guard, budget.guard(backend.model))
        try:
            return await _continue(
                path,
                lock,
                history=history,
                run=run,
                voting=voting,
                settings=settings,
                backend=backend,
                progress=progress,
                guard=guard,
            )
        finally:
            if own:
                await backend.aclose()
    finally:
        lock.release()  # a no-op once the writer took it over (its close releases it)


async def _prepare(
    path: Path,
    task: Task | StepGraph | None,
    voting: Voting | None,
    independent: Sequence[int] | None,
    max_samples_per_step: int | None,
    concurrency: int | None,
    verify: bool,
) -> tuple[dict[str, Any], History, _Run, Voting, RunSettings]:
    """Everything the resumed session continues from, read (and checked) from the trace."""
    header = next(read_events(path))
    task = task_of(header, task)
    steps = independent_of(header, task, independent)
    voting = voting_of(header, voting)
    chain = steps is None and isinstance(task.plan(), Chain)
    history = read_history(path, chain=chain, cap=voting.max_samples_per_step)
    if history.outcome in FINISHED:
        raise ConfigError(f"{path}: the run already finished ({history.outcome}); there is nothing to resume")
    if verify:
        await _verify(path, task, voting, steps)
    voting = replace(voting, max_samples_per_step=max_samples_per_step or history.cap)
    settings = settings_of(header, concurrency=concurrency)
    return header, history, _rebuild(task, history, settings, steps, Shard.of_header(header)), voting, settings


async def _verify(path: Path, task: Task, voting: Voting, steps: Sequence[int] | None) -> None:
    """Re-derive what resume continues from: replay the committed steps from their samples.

    Every recorded sample is read again by the task's parser and vote keys, and
    every committed step voted again, exactly as `maker replay` does: a trace
    whose votes, answers or totals were damaged would otherwise be continued
    from a wrong state (or reported solved). Refuses with the replay's
    `TraceMismatch` or `TraceError`, before anything is appended.
    """
    from maker._replay import areplay  # replay imports the runner too; only resume needs it here

    report = await areplay(path, task=task, voting=voting, independent=steps)
    if not report.reproduced:
        raise TraceError(
            f"{path}: the trace does not replay to what it records (outcome {report.outcome}, "
            f"recorded {report.recorded_outcome}); it was damaged or edited, so it is not resumed"
        )


async def _backend(
    header: dict[str, Any], backend: Backend | None, model: str | None, endpoint: Mapping[str, Any] | None
) -> tuple[Backend, bool]:
    """The backend to continue with, and whether resume opened it (and so closes it)."""
    recorded = header["model"]
    own = backend is None
    if backend is None:
        settings = dict(endpoint or {})
        if header.get("request_options") and str(recorded).startswith("openai/"):
            settings.setdefault("request_options", header["request_options"])  # they change p: keep them
        backend = open_backend(model or header.get("model_spec") or recorded, seed=header.get("seed", 0), **settings)
    if backend.model != recorded:
        name = backend.model
        if own:
            await backend.aclose()
        raise ConfigError(f"the model differs from the trace's: {name} given, {recorded} recorded")
    return backend, own


async def _continue(
    path: Path,
    lock: TraceLock,
    *,
    history: History,
    run: _Run,
    voting: Voting,
    settings: RunSettings,
    backend: Backend,
    progress: Progress | None,
    guard: Guard | None,
) -> RunResult:
    inode = lock.inode()
    repaired = repair_tail(path)  # in place, under the lock: the same inode, mode and owner
    if repaired.events != history.events or os.stat(path).st_ino != inode:
        raise TraceError(f"{path}: the trace changed while it was being resumed; resume it again")
    # A speculative run's samples are reused by the prompt they answered (one step may hold
    # samples of several prompts); the others', by step, through a replaying backend.
    reuse = Reuse(history.unfinished, history.drafts) if settings.speculate or settings.draft else None
    tape = Tape.of_samples({} if reuse is not None else history.unfinished)
    reused = sum(len(v) for v in history.unfinished.values())
    writer = TraceWriter(path, lock=lock)
    writer.write(
        {
            "type": "resume",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "committed_steps": history.count,
            "settings": settings.describe(),
            "max_samples": voting.max_samples_per_step,
            "model": backend.model,
            "maker_version": __version__,
            "recorded_samples_unfinished": reused,
            "torn_bytes_dropped": repaired.dropped_bytes,
            "session": history.sessions + 1,
        }
    )
    writer.commit(force=True)
    recorder = _Continuing(writer, progress, history.totals, tape)
    source = backend if reuse is not None else ReplayBackend(tape, backend.model, fallback=backend)
    try:
        result = await execute_plan(
            _Continued(run.task, run.earlier),
            run.plan,
            backend=source,
            voting=voting,
            settings=settings,
            recorder=recorder,
            run_id=history.header.get("run_id", ""),
            trace=path,
            guard=_free_if_recorded(guard, tape),
            reuse=reuse,
        )
    finally:
        writer.close()
    if run.plan.keep == "all":  # a DAG returns every node's output: the committed ones are the trace's
        result.outputs = {**run.earlier, **result.outputs}
    elif run.plan.keep == "sinks" and not result.outputs:
        result.outputs = dict(run.earlier)  # the whole chain was committed before
    return result


def _free_if_recorded(guard: Guard | None, tape: Tape) -> Guard | None:
    """The guard (a budget), skipping requests the trace answers: those cost nothing."""
    if guard is None:
        return None

    def check(request: Request) -> Any:
        st = tape.get(request.step)
        if st is not None and request.sample in st.samples:
            return None
        return guard(request)

    return check


def resume(trace: str | Path, **options: Any) -> RunResult:
    """Blocking `aresume`."""
    return anyio.run(lambda: aresume(trace, **options))
