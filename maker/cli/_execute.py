"""Run a registered task from parsed CLI options and report it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from maker._budget import Budget
from maker._independent import independent_steps
from maker._pricing import price_of
from maker._result import RunResult
from maker._runner import arun
from maker.cli._common import backend_from, budget_from, endpoint_settings, settings_from, trace_from, voting_from
from maker.cli._progress import RichProgress
from maker.cli._stops import Stopped, stoppable
from maker.cli._summary import report
from maker.errors import BackendError
from maker.tasks import build_task


def execute_task(name: str, options: dict[str, Any], args: argparse.Namespace) -> int:
    task = build_task(name, **options)
    if getattr(args, "shards", None):
        return _sharded(task, args)
    count = getattr(args, "independent", None)
    independent = None if count is None else independent_steps(task, count, seed=args.seed)
    label = f"{name} (independent steps)" if independent is not None else name
    progress = None if (args.quiet or args.json) else RichProgress(label=label)
    budget = budget_from(args)
    for note in budget.notes(args.model) if budget else []:
        print(f"maker: note: {note}", file=sys.stderr)
    steps = len(independent) if independent is not None else getattr(task, "steps", None)
    trace = cli_trace_path(args, task.name, steps if isinstance(steps, int) else None)
    result = stoppable(lambda: _run(task, args, progress, independent, budget, trace), trace)
    if isinstance(result, Stopped):
        return result.code
    if isinstance(result.error, BackendError) and not args.json:
        # The endpoint failed (bad key, wrong model or URL, unreachable): one line says it all.
        where = f" (trace: {result.trace})" if result.trace else ""
        raise result.error.with_message(f"{result.error}{where}")
    return report(result, args.json, figures_of(task, result))


def figures_of(task: Any, result: RunResult) -> dict[str, Any] | None:
    """A task's own figures of the run (multiplication: solve rate, tree size, samples per problem)."""
    figures = getattr(task, "figures", None)
    if figures is None:
        return None
    price = price_of(result.model)
    cost = price.cost(result.totals.tokens_in, result.totals.tokens_out) if price else None
    found: dict[str, Any] = figures(result.outputs, result.totals.samples, cost)
    return found


# A plain trace holds about 1.5 kB a step (Hanoi on the simulator: every sample's reply
# text); gzip makes it about 13 times smaller. Above this size a plain trace is worth a word.
PLAIN_BYTES_PER_STEP = 1_500
BIG_TRACE_BYTES = 100_000_000


def cli_trace_path(args: argparse.Namespace, task: str, steps: int | None = None) -> Path | None:
    """The trace the run will write, chosen here so every stop message can name it.

    The default trace of a big run (over ~100 MB plain) is compressed; a plain one
    the user named is kept, with a note before the run of how big it will get.
    """
    trace = trace_from(args, task)
    if trace is None:
        return None
    big = steps is not None and steps * PLAIN_BYTES_PER_STEP >= BIG_TRACE_BYTES
    if args.trace is None:  # the default file under ./runs/
        return trace.with_name(trace.name + ".gz") if big else trace
    if big and steps is not None and not trace.name.endswith(".gz"):
        print(
            f"maker: note: a plain trace of {steps:,} steps is about {_size(steps * PLAIN_BYTES_PER_STEP)}; "
            f"name it {trace.name}.gz to have it compressed (about 13 times smaller)",
            file=sys.stderr,
        )
    return trace


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


async def _run(
    task: Any,
    args: argparse.Namespace,
    progress: RichProgress | None,
    independent: Sequence[int] | None,
    budget: Budget | None,
    trace: Path | None,
) -> RunResult:
    backend = backend_from(args, progress.on_retry if progress else None)
    guard = budget.guard(backend.model, announce=False) if budget else None
    try:
        return await arun(
            task,
            model=args.model,
            backend=backend,
            voting=voting_from(args),
            settings=settings_from(args),
            trace=trace,
            progress=progress,
            guard=guard,
            independent=independent,
        )
    finally:
        await backend.aclose()


def _sharded(task: Any, args: argparse.Namespace) -> int:
    from maker.cli._sharding import run_sharded_command

    label = f"{task.name} ({args.shards} shards)"
    budget = budget_from(args)
    endpoint = endpoint_settings(args)
    anyio.run(_check_backend, args)  # fail here, once, on options every shard would refuse
    parts = {
        "voting": voting_from(args),
        "settings": settings_from(args),
        "budget": budget,
        "endpoint": endpoint,
        "progress": None if (args.quiet or args.json) else RichProgress(label=label),
    }
    return run_sharded_command(task, args, parts)


async def _check_backend(args: argparse.Namespace) -> None:
    await backend_from(args).aclose()
