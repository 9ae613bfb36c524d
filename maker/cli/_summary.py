"""The end-of-run summary: a rich table on stderr, or one JSON object on stdout."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from maker._result import RunResult
from maker.cli._escape import console as stderr_console
from maker.cli._escape import shown


def print_json(result: RunResult) -> None:
    """Exactly one JSON object on stdout and nothing else there."""
    sys.stdout.write(json.dumps(result.to_json()) + "\n")


def _chain_errors(result: RunResult) -> str:
    first = result.totals.first_error
    if first is None:
        return "none: every decided step was right"
    if result.derailed is None:
        return f"first wrong step {first}; the steps that depend on it are wrong too"
    return f"first wrong step {first}; the {result.derailed:,} decided steps after it are derailed"


def print_table(result: RunResult, console: Console | None = None) -> None:
    console = console or stderr_console()
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
        ("step errors (vs ground truth)", f"{t.errors:,} of {t.scored:,} scored, each against its own input"),
        *([("chain errors", _chain_errors(result))] if result.mode == "sequential" and t.scored else []),
        ("samples", f"{t.samples:,}"),
        ("red flags", f"{t.red_flags:,}"),
        ("mean votes per step", f"{result.mean_votes:.3f}"),
        ("mean samples per step", f"{result.mean_samples:.3f}"),
        ("hardest step", f"{t.hardest_step} ({t.max_rounds} rounds, {t.hardest_samples} samples)"),
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
        console.print(f"[red]stopped: {shown(result.error)}[/]")  # may quote a server's words


def report(result: RunResult, as_json: bool) -> int:
    """Print the result; exit status 0 only for a solved run."""
    if as_json:
        print_json(result)
    else:
        print_table(result)
    return 0 if result.solved else 1
