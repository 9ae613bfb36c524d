"""Run a registered task from parsed CLI options and report it."""

from __future__ import annotations

import argparse
import random
from typing import Any, Sequence

import anyio

from maker._runner import arun
from maker.cli._common import settings_from, trace_from, voting_from
from maker.cli._progress import RichProgress
from maker.cli._summary import report
from maker.errors import ConfigError
from tasks import build_task


def execute_task(name: str, options: dict[str, Any], args: argparse.Namespace) -> int:
    try:
        task = build_task(name, **options)
    except (KeyError, ValueError) as exc:
        raise ConfigError(str(exc).strip("'\"")) from None
    independent = independent_steps(task, getattr(args, "independent", None), args.seed)
    label = f"{name} (independent steps)" if independent is not None else name
    progress = None if (args.quiet or args.json) else RichProgress(label=label)
    result = anyio.run(lambda: arun(task, model=args.model, voting=voting_from(args), settings=settings_from(args),
                                    trace=trace_from(args), progress=progress, check=False, independent=independent))
    return report(result, args.json)


def independent_steps(task: object, count: int | str | None, seed: int) -> Sequence[int] | None:
    """Which steps an `--independent N|all` run evaluates: a seeded random sample, in step order."""
    if count is None:
        return None
    total = getattr(task, "steps", None)
    if total is None:
        raise ConfigError("this task cannot run steps independently (it has no ground-truth step inputs)")
    if count == "all" or int(count) >= total:
        return range(total)
    return sorted(random.Random(seed).sample(range(total), int(count)))
