"""What the CLI says when a run stops before its end, and SIGTERM handled like Ctrl-C.

Every stop message names the trace it left (or says there is none), on stderr,
so it reaches the user with `--json` too, where stdout holds only JSON.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio

from maker._escape import visible

R = TypeVar("R")

# Outcomes a resume can continue (a finished run has nothing left to do).
RESUMABLE = ("undecided", "budget", "error", "interrupted")


@dataclass(frozen=True, slots=True)
class Stopped:
    """A run that ended by Ctrl-C, SIGTERM or a failing environment; `code` is the exit status."""

    code: int


def resume_hint(trace: Path | None) -> str:
    """How to continue from here, or why one cannot."""
    if trace is None:
        return "no trace was written (--no-trace), so it cannot be resumed"
    return f"everything committed is in {trace}; resume it with `maker resume {trace}`"


def interrupted_message(trace: Path | None) -> str:
    return f"interrupted; {resume_hint(trace)}"


def environment_message(exc: OSError, trace: Path | None) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; {resume_hint(trace)}"


def stoppable(run: Callable[[], Awaitable[R]], trace: Path | None) -> R | Stopped:
    """Run `run` (a whole run) in an event loop; a Ctrl-C, SIGTERM or full disk is one line on stderr naming `trace`."""
    try:
        return anyio.run(until_sigterm, run)
    except KeyboardInterrupt:
        return _say(interrupted_message(trace), 130)
    except OSError as exc:  # a full disk, a vanished directory: the environment, not a bug
        return _say(environment_message(exc, trace), 1)


async def until_sigterm(run: Callable[[], Awaitable[R]]) -> R:
    """Await `run()`; SIGTERM cancels it as Ctrl-C does, so the run writes its end event and stays resumable.

    A signal receiver, not a handler: a handler would have to interrupt the
    event loop wherever it is, and SIGINT (which a handler could re-raise) is
    ignored in background jobs, where SIGTERM is the usual way to stop a run.
    """
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_sigterm, tg.cancel_scope)
            result = await run()
            tg.cancel_scope.cancel()  # stop listening
            return result
    except BaseExceptionGroup as group:  # the run's own error, not wrapped by this task group
        raise _first(group) from None
    raise KeyboardInterrupt  # only SIGTERM gets here: it cancelled the run


async def _cancel_on_sigterm(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _say(message: str, code: int) -> Stopped:
    print(f"maker: error: {visible(message)}", file=sys.stderr)
    return Stopped(code)
