"""`maker hanoi`: the flagship task."""

from __future__ import annotations

import argparse

from maker.cli._common import add_run_options
from maker.cli._execute import execute_task
from maker.cli._sharding import add_shard_options
from maker.cli._types import bounded


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "hanoi",
        help="solve Towers of Hanoi, one voted LLM call per move",
        description="Solve Towers of Hanoi with 2^n − 1 voted microsteps.",
    )
    p.add_argument("--disks", type=bounded(1, 30), default=10, help="number of disks (default 10: 1,023 steps)")
    add_run_options(p)
    add_shard_options(p)
    p.add_argument(
        "--independent",
        metavar="N|all",
        type=_count,
        default=None,
        help="do not solve: evaluate N random steps (or all) each from its ground-truth state, in "
        "parallel, with voting as usual; measures voted per-step reliability at full scale",
    )
    p.set_defaults(func=_handle)


def _count(text: str) -> int | str:
    if text == "all":
        return text
    return bounded(1, 2**30)(text)


def _handle(args: argparse.Namespace) -> int:
    return execute_task("hanoi", {"disks": args.disks}, args)
