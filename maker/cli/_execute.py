"""Run a registered task from parsed CLI options and report it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from maker._budget import Budget
from maker._history import choose_independent
from maker._result import RunResult
from maker._runner import arun, default_trace_path
from maker.cli._common import backend_from, budget_from, settings_from, trace_from, voting_from
from maker.cli._progress import RichProgress
from maker.cli._stops import Stopped, stoppable
from maker.cli._summary import report
from maker.errors import BackendError, ConfigError
from maker.tasks import build_task


def execute_task(name: str, options: dict[str, Any], args: argparse.Namespace) -> int:
    try:
        task = build_task(name, **options)
    except (KeyError, ValueError) as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    if getattr(args, "shards", None):
        return _sharded(task, args)
    independent = choose_independent(task, getattr(args, "independent", None), args.seed)
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
        raise type(result.error)(f"{result.error}{where}")
    return report(result, args.json)


# A plain trace holds about 1.5 kB a step (Hanoi on the simulator: every sample's reply
# text); gzip makes it about 13 times smaller. Above this size a plain trace is worth a word.
PLAIN_BYTES_PER_STEP = 1_500
BIG_TRACE_BYTES = 100_000_000


def cli_trace_path(args: argparse.Namespace, task: str, steps: int | None = None) -> Path | None:
    """The trace the run will write, chosen here so every stop message can name it.

    The default trace of a big run (over ~100 MB plain) is compressed; a plain one
    the user named is kept, with a note before the run of how big it will get.
    """
    trace = trace_from(args)
    if trace is False:
        return None
    big = steps is not None and steps * PLAIN_BYTES_PER_STEP >= BIG_TRACE_BYTES
    if trace is None:
        path = default_trace_path(task)
        return path.with_name(path.name + ".gz") if big else path
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
            trace=trace if trace is not None else False,
            progress=progress,
            guard=guard,
            check=False,
            independent=independent,
        )
    finally:
        await backend.aclose()


def _sharded(task: Any, args: argparse.Namespace) -> int:
    from maker.cli._sharding import run_sharded_command

    label = f"{task.name} ({args.shards} shards)"
    budget = budget_from(args)
    endpoint = {k: v for k, v in {"base_url": args.base_url, "timeout": args.request_timeout}.items() if v}
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
