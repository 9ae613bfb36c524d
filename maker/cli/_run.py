"""`maker run TASK [task options]` and `maker tasks`: every registered task from the command line.

Each task gets its own sub-command under `run`, with its options built from the
task's `Param`s, so `maker run sorting --help` shows exactly what sorting takes
and a misspelt option is a one-line usage error (exit 2). The registry holds the
built-in tasks and installed packages' (entry-point group `maker.tasks`).
`maker hanoi` is `maker run hanoi`, built by the same `add_task_command`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from maker.cli._common import add_run_options
from maker.cli._execute import execute_task
from maker.cli._sharding import add_shard_options
from maker.cli._types import integer, positive
from maker.tasks._protocol import Param, TaskInfo
from maker.tasks._registry import task_info, task_names


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="solve a registered task (see `maker tasks`)",
        description="Solve a registered task with voted microsteps. `maker tasks` lists them.",
    )
    tasks = run.add_subparsers(dest="task", metavar="TASK", parser_class=type(run))
    tasks.required = True
    for name in task_names():
        add_task_command(tasks, task_info(name))
    listing = sub.add_parser(
        "tasks",
        help="list the tasks `maker run` can solve, with their options",
        description="List the registered tasks and their options.",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    listing.set_defaults(func=_list)


def add_task_parser(
    tasks: argparse._SubParsersAction[argparse.ArgumentParser], info: TaskInfo, *, help: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command for one task, with the task's own options (`maker run` and `maker calibrate`)."""
    p = tasks.add_parser(info.name, aliases=list(info.aliases), help=help or info.summary, description=info.summary)
    g = p.add_argument_group(f"{info.name} options")
    for param in info.params:
        g.add_argument(
            _flag(param),
            dest=param.name,
            type=_typed(param),
            default=param.default,
            metavar=param.name.upper(),
            help=f"{param.help} (default {param.default})",
        )
    return p


def add_task_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], info: TaskInfo, *, help: str | None = None
) -> argparse.ArgumentParser:
    """The command that solves one task: its own options, then every run option (`maker run TASK`, `maker hanoi`)."""
    p = add_task_parser(sub, info, help=help)
    if any(param.name == "instance" for param in info.params):
        p.add_argument(
            "--instances",
            type=positive,
            default=None,
            metavar="N",
            help="solve N instances (from --instance on) in one run: one DAG of N disjoint parts, which --shards can split",
        )
    if _sampleable(info):
        p.add_argument(
            "--independent",
            metavar="N|all",
            type=_independent_count,
            default=None,
            help="do not solve: evaluate N random steps (or all) each from its ground-truth state, in "
            "parallel, with voting as usual; measures voted per-step reliability at full scale",
        )
    add_run_options(p)
    add_shard_options(p)
    p.set_defaults(func=_handle, task_name=info.name, task_params=[p.name for p in info.params])
    return p


def _sampleable(info: TaskInfo) -> bool:
    """Whether the task's steps can run from ground truth: its class has `step_inputs` (see SampleableTask)."""
    return callable(getattr(info.factory, "step_inputs", None))


def _independent_count(text: str) -> int | str:
    if text == "all":
        return text
    return integer(1, 2**30)(text)


def _flag(param: Param) -> str:
    return "--" + param.name.replace("_", "-")


def _typed(param: Param) -> Callable[[str], Any]:
    """An argparse type for one task option: its type, and its minimum and maximum if it has them."""

    def parse(text: str) -> Any:
        try:
            value = param.type(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {param.type.__name__}, got {text!r}") from None
        if param.minimum is not None and value < param.minimum:
            raise argparse.ArgumentTypeError(f"must be >= {param.minimum}, got {value}")
        if param.maximum is not None and value > param.maximum:
            raise argparse.ArgumentTypeError(f"must be <= {param.maximum}, got {value}")
        return value

    parse.__name__ = param.type.__name__  # argparse names the type in its messages
    return parse


def _handle(args: argparse.Namespace) -> int:
    options = {name: getattr(args, name) for name in args.task_params}
    if getattr(args, "instances", None):
        options["batch"] = args.instances
    return execute_task(args.task_name, options, args)


def _list(args: argparse.Namespace) -> int:
    infos = [task_info(name) for name in task_names()]
    if args.json:
        sys.stdout.write(json.dumps({"tasks": [_describe(info) for info in infos]}) + "\n")
        return 0
    for info in infos:
        aliases = f" (also: {', '.join(info.aliases)})" if info.aliases else ""
        print(f"{info.name}{aliases}\n    {info.summary}")
        for p in info.params:
            print(f"    {_flag(p) + ' ' + p.name.upper():<24} {p.help} (default {p.default})")
    print("\nmaker run TASK [task options] [--model M --k K ...]; maker run TASK --help shows them all.")
    return 0


def _describe(info: TaskInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "aliases": list(info.aliases),
        "summary": info.summary,
        "options": [
            {
                "name": p.name,
                "flag": _flag(p),
                "type": p.type.__name__,
                "default": p.default,
                "minimum": p.minimum,
                "maximum": p.maximum,
                "help": p.help,
            }
            for p in info.params
        ],
    }
