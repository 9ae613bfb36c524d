"""`maker hanoi`: the flagship task, at the top level.

It is `maker run hanoi` under a shorter name: the same command, built by the
same `add_task_command` from the registry's entry, so the two take exactly the
same options and do exactly the same thing.
"""

from __future__ import annotations

import argparse

from maker.cli._run import add_task_command
from maker.tasks._registry import task_info


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_task_command(
        sub, task_info("hanoi"), help="solve Towers of Hanoi, one voted LLM call per move (= maker run hanoi)"
    )
