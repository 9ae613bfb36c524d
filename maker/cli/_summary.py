"""The end-of-run summary on stdout: a rich table, or one JSON object; hints on stderr."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from maker._escape import visible
from maker._recorder import Totals
from maker._result import RunResult
from maker._words import counted
from maker.cli._escape import console as stdout_console
from maker.cli._escape import err_console, shown
from maker.cli._stops import RESUMABLE, resume_hint


def print_json(result: RunResult) -> None:
    """Exactly one JSON object on stdout and nothing else there."""
    sys.stdout.write(json.dumps(result.to_json()) + "\n")


def print_table(result: RunResult, console: Console | None = None) -> None:
    console = console or stdout_console()
    t = result.totals
    if result.mode == "independent":
        wrong = "[bold green]0 wrong[/]" if t.errors == 0 else f"[bold red]{t.errors} wrong[/]"
        title = (
            f"{shown(result.task)} on {shown(result.model)}: INDEPENDENT STEPS ({t.steps:,} steps from ground truth, {wrong};"
            " measures voted per-step reliability, not a sequential solve)"
        )
    else:
        verdict = "[bold green]solved[/]" if result.solved else f"[bold red]{result.outcome}[/]"
        title = f"{shown(result.task)} on {shown(result.model)}: {verdict}"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("steps", f"{t.steps:,} / {result.total_steps:,}"),
        ("errors (vs ground truth)", f"{t.errors:,} of {t.scored:,} scored"),
        ("samples", f"{t.samples:,}"),
        ("red flags", f"{t.red_flags:,}"),
        ("mean votes per step", f"{result.mean_votes:.3f}"),
        ("mean samples per step", f"{result.mean_samples:.3f}"),
        ("hardest step", _hardest(t)),
        ("late samples", f"{t.late:,}"),
        ("tokens in / out", f"{t.tokens_in:,} / {t.tokens_out:,}"),
        ("transport retries", f"{t.retries:,}"),
        *(
            [("lost requests", f"{t.lost:,} (cancelled in flight: possibly paid for, not in the trace)")]
            if t.lost
            else []
        ),
        ("wall time", f"{result.wall_s:.2f} s"),
        ("trace", str(result.trace) if result.trace else "(none)"),
    ]
    for name, value in rows:
        table.add_row(name, shown(value))
    console.print(table)
    if result.error is not None:
        err_console().print(f"[red]stopped: {shown(_reason(result))}[/]")  # may quote a server's words


RESUMABLE_CLAUSE = "; the run stopped cleanly and can be resumed"


def _reason(result: RunResult) -> str:
    """The error; without a trace, minus the budget's promise of a resume (the hint line says why not)."""
    text = str(result.error)
    return text.replace(RESUMABLE_CLAUSE, "") if result.trace is None else text


def _hardest(t: Totals) -> str:
    if t.hardest_step is None:  # no step was voted (none decided yet, or python steps only)
        return "— (no voted step)"
    return f"{t.hardest_step} ({counted(t.max_rounds, 'round')}, {counted(t.hardest_samples, 'sample')})"


def report(result: RunResult, as_json: bool) -> int:
    """Print the result (and, on stderr, how to continue a run that stopped early); return the exit status."""
    if as_json:
        print_json(result)
    else:
        print_table(result)
    if result.outcome in RESUMABLE:
        print(f"maker: {visible(resume_hint(result.trace))}", file=sys.stderr)
    return exit_status(result)


def exit_status(result: RunResult) -> int:
    """0 for a run that did what it set out to: solved, or (independent steps) measured; else 1.

    A measurement succeeds whatever it measured, as `maker calibrate` does: its
    error count is the result, not a failure of the command.
    """
    return 0 if result.outcome in ("solved", "measured") else 1
