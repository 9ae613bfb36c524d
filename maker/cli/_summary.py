"""The end-of-run summary on stdout: a rich table, or one JSON object; hints on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from maker._escape import visible
from maker._recorder import Totals
from maker._result import RunResult
from maker._words import counted
from maker.cli._escape import console as stdout_console
from maker.cli._escape import err_console, shown
from maker.cli._stops import RESUMABLE, resume_hint


def print_json(result: RunResult, figures: dict[str, Any] | None = None) -> None:
    """Exactly one JSON object on stdout and nothing else there."""
    sys.stdout.write(json.dumps({**result.to_json(), **({"figures": figures} if figures else {})}) + "\n")


def _chain_errors(result: RunResult) -> str:
    first = result.totals.first_error
    if first is None:
        return "none: every decided step was right"
    if result.derailed is None:
        return f"first wrong step {first}; the steps that depend on it are wrong too"
    return f"first wrong step {first}; the {result.derailed:,} decided steps after it are derailed"


def print_table(result: RunResult, console: Console | None = None, figures: dict[str, Any] | None = None) -> None:
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
        ("step errors (vs ground truth)", f"{t.errors:,} of {t.scored:,} scored, each against its own input"),
        *([("chain errors", _chain_errors(result))] if result.mode == "sequential" and t.scored else []),
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
    rows[:0] = _figure_rows(figures or {})
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


def _figure_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """A task's own figures (a recursive task: solve rate, tree size, samples per problem) as table rows."""
    rows: list[tuple[str, str]] = []
    if "solve_rate" in figures:
        rows.append(
            (
                "solve rate",
                f"{figures['solved_problems']:,} / {figures['problems']:,} ({100 * figures['solve_rate']:.1f}%)",
            )
        )
    if "tree_nodes_mean" in figures:
        rows.append(("tree size (nodes)", f"mean {figures['tree_nodes_mean']:.1f}, max {figures['tree_nodes_max']:,}"))
    if "samples_per_problem" in figures:
        rows.append(("samples per problem", f"{figures['samples_per_problem']:.1f}"))
    if "cost_per_problem_usd" in figures:
        rows.append(("cost per problem", f"${figures['cost_per_problem_usd']:.4f}"))
    return rows


def report(result: RunResult, as_json: bool, figures: dict[str, Any] | None = None) -> int:
    """Print the result (with a task's own figures, if it has any, and on stderr how to continue a run that
    stopped early); return the exit status."""
    if as_json:
        print_json(result, figures)
    else:
        print_table(result, figures=figures)
    if result.outcome in RESUMABLE:
        print(f"maker: {visible(resume_hint(result.trace))}", file=sys.stderr)
    return exit_status(result)


def exit_status(result: RunResult) -> int:
    """0 for a run that did what it set out to: solved, or (independent steps) measured; else 1.

    A measurement succeeds whatever it measured, as `maker calibrate` does: its
    error count is the result, not a failure of the command.
    """
    return 0 if result.outcome in ("solved", "measured") else 1
