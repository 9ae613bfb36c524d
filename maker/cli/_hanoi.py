"""`maker hanoi`: the flagship task."""

from __future__ import annotations

import argparse

from maker.cli._common import add_run_options, bounded
from maker.cli._execute import execute_task


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("hanoi", help="solve Towers of Hanoi, one voted LLM call per move",
                       description="Solve Towers of Hanoi with 2^n − 1 voted microsteps.")
    p.add_argument("--disks", type=bounded(1, 30), default=10, help="number of disks (default 10: 1,023 steps)")
    add_run_options(p)
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    return execute_task("hanoi", {"disks": args.disks}, args)
