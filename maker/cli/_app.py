"""The `maker` command: parse arguments, call library code, print results.

Every command lives in its own module with `register(subparsers)`; handlers
stay short and only translate between the command line and the library.
User errors print one line and exit 2; run failures print one line and exit 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from maker.errors import MakerError, RunError, UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> ArgumentParser:
    from maker._version import __version__
    from maker.cli import _hanoi

    parser = ArgumentParser(prog="maker", description="Reliable million-step LLM work: voting, red flags, traces.")
    parser.add_argument("--version", action="version", version=f"maker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for module in (_hanoi, *_extra_commands()):
        module.register(sub)
    return parser


def _extra_commands() -> list:  # type: ignore[type-arg]
    """Command modules beyond the flagship; each adds itself with `register`."""
    import importlib

    names = ["_run", "_serve", "_traces", "_analysis", "_watch", "_models"]
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(f"maker.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"maker.cli.{name}":
                raise
    return modules


def fail(message: str, code: int) -> int:
    """One line on stderr. The message may quote a server or a trace: control characters are spelled out."""
    from maker._escape import visible

    print(f"maker: error: {visible(message)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    with warnings.catch_warnings():  # restored on return: main may run inside someone's program
        warnings.showwarning = _show_warning
        return _main(argv)


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning (a task plugin that failed to load, say) as one line, like the errors."""
    from maker._escape import visible

    text = str(message).removeprefix("maker: ")
    print(f"maker: warning: {visible(text)}", file=sys.stderr)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        return fail(str(exc), 2)
    except RunError as exc:
        return fail(str(exc), 1)
    except MakerError as exc:
        return fail(str(exc), 1)
    except OSError as exc:  # a full disk, a vanished directory: the environment, not a bug
        where = f" ({exc.filename})" if exc.filename else ""
        return fail(f"{exc.strerror or exc}{where}", 1)
    except KeyboardInterrupt:  # a run names its trace itself (maker.cli._stops); anything else just stops
        return fail("interrupted", 130)
