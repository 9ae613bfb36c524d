"""Sharded runs: N ordinary maker runs on processes or Ray workers, one manifest that lists them.

The parent writes the manifest first (every shard's job, so `maker resume
MANIFEST` can run any of them again), then hands each job to an executor. A
job is small JSON (task name and parameters, model, voting, settings, the
shard's budget share, its trace path); what comes back is small JSON (the
shard's summary). Samples never travel: they go to each shard's own trace.

A job is idempotent: if its trace exists it is resumed, not started again, so
a retry (Ray retries a failed task from scratch; the local executor retries a
shard whose process died) never pays twice for a committed step or a recorded
sample, and budgets are reduced by what the trace says was already spent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio

from maker._budget import Budget
from maker._budget_pool import LIMITS, RATES, BudgetPool, Lease, LeasedBudget, RayLease, follow_rates, leased
from maker._history import choose_independent
from maker._pricing import Price
from maker._recorder import Progress, Totals
from maker._settings import RunSettings
from maker._shards import (
    CHAIN_REFUSAL,
    Shard,
    budget_left,
    components,
    shard_graph,
    shard_of,
    shard_steps,
    split_budget,
)
from maker.errors import BudgetExceeded, ConfigError, MakerError, PlanError, TraceError
from maker.tasks._protocol import Chain, Task
from maker.tasks._registry import build_task
from maker.traces._manifest import read_manifest, write_manifest
from maker.voting import Voting

Executor = Literal["local", "ray"]
FINISHED = ("solved", "failed", "measured")
_RETRIES = 2  # a shard whose process died is resumed this many times before the run gives up on it


@dataclass(frozen=True, slots=True)
class ShardJob:
    """Everything one shard needs, as JSON: what a child process or a Ray task receives."""

    index: int
    count: int
    parent: str
    trace: str
    task: str
    params: dict[str, Any]
    model: str
    voting: dict[str, Any]
    settings: dict[str, Any]
    independent: int | str | None = None
    budget: dict[str, Any] | None = None
    prices: dict[str, list[float | None]] | None = None
    endpoint: dict[str, Any] = field(default_factory=dict)

    @property
    def shard(self) -> Shard:
        return Shard(self.index, self.count, self.parent)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardJob:
        try:
            return cls(**data)
        except TypeError as exc:
            raise TraceError(f"a shard job in the manifest is malformed ({exc})") from None


@dataclass(slots=True)
class ShardedResult:
    """What a sharded run did: each shard's summary, summed, and where the manifest is."""

    run_id: str
    manifest: Path
    shards: list[dict[str, Any]]
    wall_s: float

    @property
    def outcome(self) -> str:
        outcomes = {s.get("outcome") for s in self.shards}
        if len(outcomes) == 1:
            return str(outcomes.pop())
        bad = [o for o in outcomes if o not in FINISHED]
        return str(bad[0]) if bad else "failed"

    @property
    def totals(self) -> dict[str, int]:
        summed: dict[str, int] = {}
        for s in self.shards:
            for key in ("steps", "samples", "red_flags", "votes", "errors", "scored_steps", "undecided_steps"):
                summed[key] = summed.get(key, 0) + int(s.get(key) or 0)
        return summed

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [s for s in self.shards if s.get("outcome") not in FINISHED]

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "sharded": True,
            "run_id": self.run_id,
            "manifest": str(self.manifest),
            "shards": self.shards,
            "wall_s": round(self.wall_s, 3),
            **self.totals,
        }


# --- planning the shards ---------------------------------------------------------------------------


def plan_jobs(
    task: Task,
    *,
    shards: int,
    model: str,
    voting: Voting,
    settings: RunSettings,
    directory: Path,
    independent: int | str | None = None,
    budget: Budget | None = None,
    endpoint: dict[str, Any] | None = None,
    gzip: bool = True,
) -> list[ShardJob]:
    """One job per non-empty shard; refuses work that cannot be split (a chain, one component)."""
    if shards < 1:
        raise ConfigError(f"--shards must be >= 1, got {shards}")
    parent = uuid.uuid4().hex
    owned = _owners(task, independent, settings.seed, shards)
    shares = split_budget(budget, shards)
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    endpoint = split_rates(endpoint or {}, sum(1 for o in owned if o))
    jobs = []
    for i in range(shards):
        if not owned[i]:
            continue  # nothing hashed here: no run, no trace
        share = shares[i]
        jobs.append(
            ShardJob(
                index=i,
                count=shards,
                parent=parent,
                trace=str(directory / f"shard-{i:03d}-of-{shards:03d}{suffix}"),
                task=task.name,
                params=task.params(),
                model=model,
                voting=voting.describe(),
                settings={"concurrency": settings.concurrency, "window": settings.window, "seed": settings.seed},
                independent=independent,
                budget=_budget_json(share),
                prices=_prices_json(budget),
                endpoint=dict(endpoint),
            )
        )
    return jobs


def split_rates(endpoint: dict[str, Any], shards: int) -> dict[str, Any]:
    """Hand-set rate limits (`--rpm`, `--tpm`) are the endpoint's, not each shard's: each shard gets its part.

    Without this, N shards at `--rpm 1200` would send N × 1200 a minute to a
    server that sends no headers to slow them down. (Limits the server sends in
    `x-ratelimit-*` headers need no split: each shard's governor reads the
    endpoint's remaining capacity, which all shards draw on.)
    """
    out = dict(endpoint)
    for name in ("rpm", "tpm"):
        if out.get(name) is not None and shards > 1:
            out[name] = float(out[name]) / shards
    return out


def _owners(task: Task, independent: int | str | None, seed: int, shards: int) -> list[int]:
    """How many steps (or components) each shard owns."""
    counts = [0] * shards
    if independent is not None:
        for step in choose_independent(task, independent, seed) or ():
            counts[shard_of(step, shards)] += 1
        return counts
    source = task.plan()
    if isinstance(source, Chain):
        raise ConfigError(CHAIN_REFUSAL)
    for i in range(shards):
        counts[i] = shard_graph(source, Shard(i, shards, "")).number_of_nodes()
    if len(components(source)) < 2:
        raise PlanError("this plan is one connected component, so it cannot be sharded")
    return counts


def _budget_json(budget: Budget | None) -> dict[str, Any] | None:
    return None if budget is None else budget.describe()


def _prices_json(budget: Budget | None) -> dict[str, list[float | None]] | None:
    if budget is None or budget.prices is None:
        return None
    return {name: [p.input, p.output] for name, p in budget.prices.items()}


# --- one shard (runs in the child process or the Ray worker) ---------------------------------------


def run_job(data: dict[str, Any], pool: Any = None) -> dict[str, Any]:
    """Run (or resume) one shard to its end and return its summary. Blocking; never raises MakerError.

    pool: a `BudgetPool` Ray actor holding the run-wide budget and hand-set rate limits (the Ray
    executor), or None: the shard then keeps to its shares.
    """
    job = ShardJob.from_json(data)
    try:
        path = Path(job.trace)
        state = _trace_state(path) if path.exists() else None
        if path.exists() and state is None:
            path.unlink()  # a torn header: nothing was sent yet, so start afresh
        if state is not None and state[0] in FINISHED:
            return _summary(job, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lease = RayLease(pool, job.index) if pool is not None else None
        return anyio.run(_run_job, job, state, lease)
    except MakerError as exc:
        return {"index": job.index, "trace": job.trace, "outcome": _outcome(exc), "message": str(exc)}


def _outcome(exc: MakerError) -> str:
    return "budget" if isinstance(exc, BudgetExceeded) else "error"


async def _run_job(
    job: ShardJob, state: tuple[str | None, dict[str, Any]] | None, lease: Lease | None = None
) -> dict[str, Any]:
    """One shard's session. With a `lease` on the run-wide pool, its budget can grow past its share, and
    its part of hand-set rate limits grows as other shards finish; without one it keeps to its share."""
    from maker.backends._registry import open_backend

    prices = {k: Price(v[0], float(v[1] or 0.0)) for k, v in job.prices.items()} if job.prices else None
    budget: Budget | None = Budget(**job.budget, prices=prices) if job.budget else None
    if budget is not None and lease is not None:
        budget = leased(budget, lease)  # the claim the pool holds for this shard (its share at first)
    backend = open_backend(job.model, seed=int(job.settings["seed"]), **job.endpoint)
    rates = lease is not None and any(job.endpoint.get(name) is not None for name in ("rpm", "tpm"))
    try:
        async with anyio.create_task_group() as tg:
            if rates and lease is not None:
                tg.start_soon(follow_rates, lease, backend)
            budget, result = await _session(job, state, backend, budget, lease)
            tg.cancel_scope.cancel()
    finally:
        await backend.aclose()
        if isinstance(budget, LeasedBudget):
            budget.release()  # what this shard did not spend, for the shards still running
        if lease is not None:
            lease.leave()
    summary = {**result.to_json(), "index": job.index, "trace": job.trace}
    if result.error is not None:
        summary["message"] = str(result.error)
    return summary


async def _session(
    job: ShardJob,
    state: tuple[str | None, dict[str, Any]] | None,
    backend: Any,
    budget: Budget | None,
    lease: Lease | None,
) -> tuple[Budget | None, Any]:
    """Run the shard, or resume it from its trace; returns the budget it ran on, and its result."""
    from maker._resume import aresume
    from maker._runner import arun

    task = build_task(job.task, **job.params)
    chosen = choose_independent(task, job.independent, int(job.settings["seed"]))
    if state is not None:  # a retry or a resume: continue the trace, paying nothing twice
        left = budget_left(budget, backend.model, state[1])
        if left == "spent":
            raise BudgetExceeded("the shard's share of the budget", "spent by earlier sessions")
        if lease is not None and isinstance(left, Budget):
            left = leased(left, lease, claimed=False)  # what is left of the claim, still able to grow
        budget = left if isinstance(left, Budget) else None
        steps = shard_steps(chosen, job.shard) if chosen is not None else None
        return budget, await aresume(job.trace, independent=steps, backend=backend, budget=budget)
    result = await arun(
        task,
        model=job.model,
        backend=backend,
        voting=Voting.from_dict(job.voting),
        settings=RunSettings(
            concurrency=int(job.settings["concurrency"]),
            max_parallel_steps=job.settings.get("max_steps"),
            window=int(job.settings["window"]),
            seed=int(job.settings["seed"]),
        ),
        trace=job.trace,
        independent=chosen,
        budget=budget,
        shard=job.shard,
        shard_selection={"independent": job.independent} if job.independent is not None else None,
    )
    return budget, result


def _trace_state(path: Path) -> tuple[str | None, dict[str, Any]] | None:
    """The last session's outcome (None if it did not end) and its totals; None for a trace with no header.

    The header is flushed before the first request, so a trace without one
    (killed while it was being written) recorded nothing and nothing was paid.
    """
    from maker._resume import read_history
    from maker.traces._reader import read_events

    try:
        next(read_events(path))
    except (TraceError, StopIteration):
        return None
    history = read_history(path, chain=False, cap=1)
    return history.outcome, history.totals.as_dict()


def _summary(job: ShardJob, path: Path) -> dict[str, Any]:
    """A finished shard's summary, from its trace alone (a retry of a shard that had finished)."""
    from maker.traces._inspect import summarize

    s = summarize(path)
    return {
        "index": job.index,
        "trace": job.trace,
        "outcome": s.outcome,
        "steps": s.decisions,
        "samples": s.samples,
        "red_flags": s.red_flags,
        "votes": s.votes,
        "errors": s.wrong,
        "scored_steps": s.scored,
    }


# --- executors ---------------------------------------------------------------------------------------


async def _with_progress(
    work: Callable[[], Awaitable[list[dict[str, Any]]]], tails: _Tails | None
) -> list[dict[str, Any]]:
    """Run `work`; meanwhile, if asked, keep one progress bar fed from the shards' traces."""
    if tails is None:
        return await work()
    async with anyio.create_task_group() as tg:
        tg.start_soon(tails.follow)
        results = await work()
        tg.cancel_scope.cancel()
    return results


async def _local(jobs: Sequence[ShardJob]) -> list[dict[str, Any]]:
    """Each shard in a child process of this machine (`python -m maker._shard_worker`)."""
    results: list[dict[str, Any]] = [{} for _ in jobs]

    async def one(i: int, job: ShardJob) -> None:
        for attempt in range(_RETRIES + 1):
            done = await anyio.run_process(
                [sys.executable, "-m", "maker._shard_worker"], input=json.dumps(job.to_json()).encode(), check=False
            )
            lines = done.stdout.decode(errors="replace").strip().splitlines()
            if done.returncode == 0 and lines:
                results[i] = json.loads(lines[-1])
                return
            # The process died (killed, out of memory): the next try resumes its trace and pays nothing twice.
            why = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1][:300]
            results[i] = {
                "index": job.index,
                "trace": job.trace,
                "outcome": "error",
                "message": f"shard process exited with status {done.returncode} after {attempt + 1} tries {why}".strip(),
            }

    async with anyio.create_task_group() as tg:
        for i, job in enumerate(jobs):
            tg.start_soon(one, i, job)
    return results


def _ray(jobs: Sequence[ShardJob], address: str | None) -> list[dict[str, Any]]:
    """Each shard a Ray task; Ray moves the job and the summary, never a sample. Blocking.

    Ray prints what it has to say about its workers (a worker that died, a
    retry) on the driver's stdout; while it runs, that goes to stderr instead,
    so `--json` still prints exactly one object on stdout.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'maker[ray]'") from None
    with contextlib.redirect_stdout(sys.stderr):
        started = not ray.is_initialized()
        if started:
            options: dict[str, Any] = {"address": address} if address else {"num_cpus": max(1, len(jobs))}
            ray.init(
                **options,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,  # Ray's start-up chatter is not the user's business
            )
        try:
            return _ray_results(ray, jobs)
        finally:
            if started:
                ray.shutdown()


def _ray_results(ray: Any, jobs: Sequence[ShardJob]) -> list[dict[str, Any]]:
    remote = ray.remote(max_retries=_RETRIES, num_cpus=1)(run_job)
    pool = _pool_actor(ray, jobs)
    refs = [remote.remote(job.to_json(), pool) for job in jobs]
    out: list[dict[str, Any]] = []
    for job, ref in zip(jobs, refs, strict=True):
        try:
            out.append(ray.get(ref))
        except Exception as exc:  # a worker lost for good: report this shard, keep the others
            message = f"ray task failed: {type(exc).__name__}: {str(exc)[:300]}"
            out.append({"index": job.index, "trace": job.trace, "outcome": "error", "message": message})
    return out


def _pool_actor(ray: Any, jobs: Sequence[ShardJob]) -> Any:
    """The run-wide budget and hand-set rate limits as an actor the shards lease from (None: neither).

    Its limits are the sums of the jobs' parts: the shares of the run-wide
    budget (or, on a resume, what `rebalance` gave each shard) and of `--rpm` /
    `--tpm` (`split_rates`).
    """
    budgets = [j.budget for j in jobs]
    limits = {name: _sum([b.get(name) for b in budgets]) for name in LIMITS} if all(budgets) else {}  # type: ignore[union-attr]
    rates = {name: _sum([j.endpoint.get(name) for j in jobs]) for name in RATES}
    if not any(v is not None for v in (*limits.values(), *rates.values())):
        return None
    shares = [b or {} for b in budgets]
    return ray.remote(num_cpus=0)(BudgetPool).remote(limits, shares, rates)


def _sum(values: list[Any]) -> float | None:
    return None if any(v is None for v in values) else sum(values)


# --- progress: the shards' traces, followed ----------------------------------------------------------


class _Tails:
    """One progress bar for all shards: decisions and samples counted from the shards' traces as they grow."""

    def __init__(self, jobs: Sequence[ShardJob], progress: Progress, total: int) -> None:
        from maker.traces._follow import TraceTail

        self.tails = [TraceTail(Path(j.trace)) for j in jobs]
        self.progress = progress
        self.total = total

    async def follow(self) -> None:
        self.progress.start(self.total)
        try:
            while True:
                self._update()
                await anyio.sleep(0.5)
        finally:
            self._update()
            self.progress.stop()

    def _update(self) -> None:
        totals = Totals()
        for tail in self.tails:
            tail.poll()
            totals.steps += tail.decisions
            totals.llm_steps += tail.decisions
            totals.samples += tail.samples
            totals.red_flags += tail.red_flags
            totals.votes += tail.samples - tail.red_flags  # late samples included: close enough for a bar
        self.progress.update(totals)


# --- the public entry points -------------------------------------------------------------------------


def default_directory(task: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{stamp}-{uuid.uuid4().hex[:6]}-shards"


async def arun_sharded(
    task: Task,
    *,
    shards: int,
    directory: str | Path,
    model: str,
    voting: Voting | None = None,
    settings: RunSettings | None = None,
    independent: int | str | None = None,
    budget: Budget | None = None,
    endpoint: dict[str, Any] | None = None,
    executor: Executor = "local",
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> ShardedResult:
    """Split wide work into `shards` runs by a stable hash of step (or component) ids, and run them all.

    independent: evaluate this many random steps (or "all") of a chain task, as
        `--independent` does; without it, the task's DAG is split by components.
    budget: run-wide; each shard gets an equal share, so together they never cross it.
    executor: "local" (child processes here) or "ray" (`ray.init()` locally, or `ray_address`).
    """
    voting = voting or Voting()
    settings = settings or RunSettings()
    out = Path(directory)
    jobs = plan_jobs(
        task,
        shards=shards,
        model=model,
        voting=voting,
        settings=settings,
        directory=out,
        independent=independent,
        budget=budget,
        endpoint=endpoint,
    )
    manifest = await anyio.to_thread.run_sync(_start, out, jobs, executor)
    total = _total_steps(task, independent, settings.seed)
    return await _execute(manifest, jobs, executor, ray_address, progress, total)


def _start(out: Path, jobs: Sequence[ShardJob], executor: str) -> Path:
    """Create the run's directory and write its manifest, before any shard starts."""
    manifest = out / "manifest.json"
    if manifest.exists():
        raise ConfigError(f"{manifest} already exists; resume it with `maker resume {manifest}`, or pick another path")
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, jobs[0].parent if jobs else "", [j.to_json() for j in jobs], executor)
    return manifest


async def aresume_sharded(
    manifest: str | Path,
    *,
    executor: Executor | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> ShardedResult:
    """Resume every unfinished shard of a sharded run (a finished one is only summarised)."""
    path = Path(manifest)
    data = await anyio.to_thread.run_sync(read_manifest, path)
    jobs = [ShardJob.from_json(j) for j in data["jobs"]]
    jobs = rebalance([_relocated(j, path) for j in jobs])
    task = build_task(jobs[0].task, **jobs[0].params) if jobs else None
    total = _total_steps(task, jobs[0].independent, int(jobs[0].settings["seed"])) if task else 0
    return await _execute(path, jobs, executor or data.get("executor", "local"), ray_address, progress, total)


async def _execute(
    manifest: Path, jobs: Sequence[ShardJob], executor: str, address: str | None, progress: Progress | None, total: int
) -> ShardedResult:
    start = time.perf_counter()
    tails = _Tails(jobs, progress, total) if progress is not None else None
    if executor == "local":
        shards = await _with_progress(lambda: _local(jobs), tails)
    elif executor == "ray":
        shards = await _with_progress(lambda: anyio.to_thread.run_sync(_ray, jobs, address), tails)
    else:
        raise ConfigError(f"unknown executor {executor!r} (local or ray)")
    return ShardedResult(jobs[0].parent if jobs else "", manifest, shards, time.perf_counter() - start)


def rebalance(jobs: Sequence[ShardJob]) -> list[ShardJob]:
    """Each unfinished shard's budget for a resume: what it spent, plus an equal part of what no shard spent.

    A shard may have spent past its share (it leased from the run-wide pool), so
    the manifest's shares are not safe to reuse. The traces say what each shard
    spent; the run-wide budget less all of that is split between the shards
    still to run, so together they never cross it, whichever executor resumes.
    """
    if not jobs or not all(j.budget for j in jobs):
        return list(jobs)
    states = [_trace_state(Path(j.trace)) if Path(j.trace).exists() else None for j in jobs]
    spent = [_spent(j, state[1] if state else {}) for j, state in zip(jobs, states, strict=True)]
    open_ = [i for i, state in enumerate(states) if state is None or state[0] not in FINISHED]
    out = list(jobs)
    for name in LIMITS:
        total = _sum([j.budget.get(name) for j in jobs])  # type: ignore[union-attr]
        if total is None or not open_:
            continue
        free = max(0.0, total - sum(s[name] for s in spent))
        for n, i in enumerate(open_):
            part = free / len(open_)
            if name != "max_cost":
                part = int(free) // len(open_) + (1 if n < int(free) % len(open_) else 0)
            out[i] = replace(out[i], budget={**(out[i].budget or {}), name: spent[i][name] + part})
    return out


def _spent(job: ShardJob, totals: dict[str, Any]) -> dict[str, float]:
    tokens_in, tokens_out = int(totals.get("tokens_in", 0)), int(totals.get("tokens_out", 0))
    prices = {k: Price(v[0], float(v[1] or 0.0)) for k, v in job.prices.items()} if job.prices else None
    price = Budget(max_samples=1, prices=prices).price(job.model)
    cost = price.cost(tokens_in, tokens_out) if price is not None else 0.0
    return {"max_samples": int(totals.get("samples", 0)), "max_tokens": tokens_in + tokens_out, "max_cost": cost}


def _total_steps(task: Task | None, independent: int | str | None, seed: int) -> int:
    if task is None:
        return 0
    if independent is not None:
        return len(choose_independent(task, independent, seed) or ())
    source = task.plan()
    return source.length if isinstance(source, Chain) else source.number_of_nodes()


def _relocated(job: ShardJob, manifest: Path) -> ShardJob:
    """Shard traces are named relative to the manifest, so a moved run directory still resumes."""
    trace = Path(job.trace)
    if not trace.is_absolute():
        trace = manifest.parent / trace.name
    return ShardJob(**{**job.to_json(), "trace": str(trace)})


def run_sharded(task: Task, **options: Any) -> ShardedResult:
    """Blocking `arun_sharded`."""
    return anyio.run(lambda: arun_sharded(task, **options))


def resume_sharded(manifest: str | Path, **options: Any) -> ShardedResult:
    """Blocking `aresume_sharded`."""
    return anyio.run(lambda: aresume_sharded(manifest, **options))
