"""Run a registered task from parsed CLI options and report it."""

from __future__ import annotations

import argparse
from typing import Any

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
    progress = None if (args.quiet or args.json) else RichProgress(label=name)
    result = anyio.run(lambda: arun(task, model=args.model, voting=voting_from(args), settings=settings_from(args),
                                    trace=trace_from(args), progress=progress, check=False))
    return report(result, args.json)
