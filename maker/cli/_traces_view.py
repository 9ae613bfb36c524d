"""Rich tables for `maker replay` and `maker trace show` (stderr, like every table maker prints).

Everything taken from a trace went through `shown`: a trace holds what servers
and models sent, and none of it may reach the terminal as markup or escapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from maker._replay import ReplayReport
from maker._words import counted
from maker.cli._escape import console as stdout_console
from maker.cli._escape import shown
from maker.traces._inspect import StepDetail, TraceSummary
from maker.traces._replay import Revote

KEY_WIDTH = 64


def _console() -> Console:
    return stdout_console()


def _count(n: Any, noun: str) -> str:
    """`n nouns` for a number read from a trace (anything else is shown as it is)."""
    return counted(n, noun) if isinstance(n, int | float) and not isinstance(n, bool) else f"{n} {noun}s"


def _short(value: Any, width: int = KEY_WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return shown(text if len(text) <= width else text[: width - 1] + "…")


def rule_name(described: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in described.items() if k != "rule")
    return f"{described['rule']}" + (f" {extra}" if extra else "")


# -- replay ----------------------------------------------------------------------------------------------------


def print_replay(r: ReplayReport, console: Console | None = None) -> None:
    console = console or _console()
    table = Table(title=f"replay of {shown(r.trace)}: {_verdict(r)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("task, model", f"{r.task} on {r.model} (no model calls: every sample came from the trace)"),
        ("decisions reproduced", f"{r.steps:,} of {r.total_steps:,} steps (winner, votes, samples, rounds, truth)"),
        ("samples replayed", f"{r.samples:,}"),
        (
            "outcome",
            f"{r.outcome}"
            + (f" at step {r.stopped_at}" if r.stopped_at is not None else "")
            + (f" (recorded: {r.recorded_outcome})" if r.recorded_outcome else " (the trace has no end event)"),
        ),
        ("totals vs the trace", _totals(r)),
    ]
    for name, value in rows:
        table.add_row(name, shown(value))
    console.print(table)


def _verdict(r: ReplayReport) -> str:
    if r.outcome == "history ends":
        return "[bold green]reproduced[/] every decision the trace holds (the trace stops early)"
    return "[bold green]reproduced[/] every decision"


def _totals(r: ReplayReport) -> str:
    if r.totals_match is None:
        return "not compared (the replay and the trace end at different points)"
    if r.totals_match:
        return "equal"
    return "differ: " + ", ".join(f"{k} {a} recorded, {b} replayed" for k, (a, b) in r.totals_differences.items())


# -- counterfactual re-voting ----------------------------------------------------------------------------------


def print_revotes(
    trace: Path, recorded: str, results: Sequence[Revote], *, show_steps: bool = False, console: Console | None = None
) -> None:
    console = console or _console()
    steps = results[0].steps if results else 0
    wrong = results[0].recorded_errors if results else 0
    table = Table(
        title=f"re-voting the {steps:,} decided steps of {shown(trace)} (recorded with {recorded}, "
        f"{wrong} of them wrong vs ground truth)",
        title_justify="left",
    )
    for name in (
        "rule",
        "same winner",
        "different winner",
        "needed more samples",
        "errors vs truth",
        "samples used / recorded",
    ):
        table.add_column(name, justify="left" if name == "rule" else "right")
    for r in results:
        table.add_row(
            shown(rule_name(r.rule)),
            f"{r.same:,}",
            f"{r.different:,}",
            f"{r.needs_more:,}",
            f"{r.errors:,} of {r.scored:,}",
            f"{r.samples_used:,} / {r.samples_recorded:,}",
        )
    console.print(table)
    console.print(
        "Each step is re-voted on its recorded input, its samples taken in recorded order; 'needed more' "
        "means the recorded samples ran out before the rule decided."
    )
    if show_steps:
        for r in results:
            _print_changed(r, console)


def _print_changed(r: Revote, console: Console) -> None:
    if not r.changed:
        return
    table = Table(title=f"{shown(rule_name(r.rule))}: steps not decided as recorded", title_justify="left")
    for name in ("step", "outcome", "rule's winner", "recorded winner", "right?", "samples used"):
        table.add_column(name)
    for s in r.changed:
        right = "" if s.correct is None else ("yes" if s.correct else "[red]no[/]")
        table.add_row(
            shown(s.step),
            shown(s.outcome),
            _short(s.winner or "—"),
            _short(s.recorded),
            right,
            shown(f"{s.used} / {s.available}"),
        )
    console.print(table)


# -- trace show ------------------------------------------------------------------------------------------------


def print_summary(s: TraceSummary, *, show_text: bool = False, console: Console | None = None) -> None:
    console = console or _console()
    console.print(_header_table(s))
    console.print(_counts_table(s))
    if s.resumes:
        console.print(_sessions_table(s))
    if s.hardest:
        console.print(_hardest_table(s))
    if s.detail is not None:
        _print_step(s.detail, console, show_text)


def _header_table(s: TraceSummary) -> Table:
    h = s.header
    table = Table(title=f"trace {shown(s.path)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    task = h.get("task") or {}
    rows = [
        ("task", f"{task.get('name')} {json.dumps(task.get('params') or {})}"),
        ("model", str(h.get("model_spec") or h.get("model"))),
        ("voting", ", ".join(f"{k}={v}" for k, v in (h.get("voting") or {}).items())),
        ("seed, settings", f"{h.get('seed')}, " + ", ".join(f"{k}={v}" for k, v in (h.get("settings") or {}).items())),
        (
            "mode",
            str(h.get("mode", "sequential")) + (f" ({h['steps_evaluated']} steps)" if "steps_evaluated" in h else ""),
        ),
        (
            "run id, created",
            f"{h.get('run_id')}, {h.get('created')} (maker {h.get('maker_version')}, schema {h.get('schema_version')})",
        ),
    ]
    for name, value in rows:
        table.add_row(name, shown(value))
    return table


def _counts_table(s: TraceSummary) -> Table:
    table = Table(title="what it holds", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("outcome", _outcome(s.outcome)),
        ("steps decided", f"{s.decisions:,} ({s.llm_decisions:,} voted)"),
        ("errors vs ground truth", f"{s.wrong:,} of {s.scored:,} scored"),
        ("samples", f"{s.samples:,} ({s.votes:,} votes, {s.red_flags:,} red-flagged, {s.late:,} late)"),
        ("mean samples per voted step", f"{s.samples / s.llm_decisions:.3f}" if s.llm_decisions else "—"),
        (
            "step errors",
            f"{len(s.step_errors):,}" + (f" (last: {s.step_errors[-1].get('message')})" if s.step_errors else ""),
        ),
        ("sessions", f"{len(s.resumes) + 1} ({len(s.resumes)} resume{'s' if len(s.resumes) != 1 else ''})"),
        ("events", f"{s.events:,}"),
    ]
    spec = s.speculation
    if spec.speculative:
        rate = "—" if spec.hit_rate is None else f"{100 * spec.hit_rate:.3g}% ({spec.hits:,} of {spec.predictions:,})"
        rows.append(("speculation hit rate", rate))
        tokens = spec.wasted_tokens_in + spec.wasted_tokens_out
        rows.append(("wasted on mispredictions", f"{spec.wasted_samples:,} samples, {tokens:,} tokens"))
        if spec.drafts:
            hit = "—" if spec.draft_hit_rate is None else f"{100 * spec.draft_hit_rate:.3g}%"
            rows.append(("draft hit rate", f"{hit} ({spec.draft_hits:,} of {spec.drafted_steps:,} drafted steps)"))
            wasted = round(sum(spec.wasted_draft_tokens))
            drafted = spec.draft_tokens_in + spec.draft_tokens_out
            rows.append(("drafts", f"{spec.drafts:,}, {drafted:,} tokens ({wasted:,} wasted)"))
    for name, value in rows:
        table.add_row(name, shown(value))
    return table


def _outcome(outcome: str) -> str:
    if outcome == "running":
        return "running (still being written; `maker watch` follows it)"
    if outcome == "crashed":
        return "crashed (no end event and no writer; `maker resume` continues it)"
    return outcome


def _sessions_table(s: TraceSummary) -> Table:
    table = Table(title="resumes", title_justify="left")
    for name in ("session", "created", "committed steps before", "reused samples", "concurrency", "sample cap"):
        table.add_column(name)
    for r in s.resumes:
        table.add_row(
            shown(r.get("session", "")),
            shown(r.get("created")),
            shown(r.get("committed_steps", 0)),
            shown(r.get("recorded_samples_unfinished", "")),
            shown((r.get("settings") or {}).get("concurrency")),
            shown(r.get("max_samples", "")),
        )
    return table


def _hardest_table(s: TraceSummary) -> Table:
    table = Table(title="hardest steps (most voting rounds)", title_justify="left")
    for name in ("step", "rounds", "samples", "red flags", "candidates", "winner", "right?"):
        table.add_column(name)
    for d in s.hardest:
        right = "" if d.get("correct") is None else ("yes" if d["correct"] else "[red]no[/]")
        table.add_row(
            shown(d["step"]),
            shown(d["rounds"]),
            shown(d["samples"]),
            shown(d.get("flagged", 0)),
            shown(len(d.get("votes") or {})),
            _short(d.get("winner")),
            right,
        )
    return table


def _print_step(d: StepDetail, console: Console, show_text: bool) -> None:
    if not (d.samples or d.decision or d.errors):
        console.print(f"[yellow]step {shown(d.step)}: the trace holds nothing for it[/]")
        return
    table = Table(
        title=f"step {shown(d.step)}: {len(d.samples)} samples in the order voting saw them", title_justify="left"
    )
    for name in ("#", "sample", "temp", "finish", "tokens out", "latency s", "vote (or red flag)", "late"):
        table.add_column(name)
    for n, e in enumerate(d.samples, start=1):
        vote = _short(e["key"]) if e.get("key") is not None else f"[red]{_short(e.get('flag') or 'red flag')}[/]"
        table.add_row(
            str(n),
            shown(e["i"]),
            shown(e["temperature"]),
            shown(e["finish"]),
            shown(e["tokens_out"]),
            f"{e['latency']:.3f}",
            vote,
            "late" if e.get("late") else "",
        )
    console.print(table)
    if d.decision is not None:
        dec = d.decision
        votes = ", ".join(
            f"{n}× {_short(k, 40)}" for k, n in sorted((dec.get("votes") or {}).items(), key=lambda kv: -kv[1])
        )
        right = "" if dec.get("correct") is None else (" — right" if dec["correct"] else " — [red]wrong[/]")
        console.print(
            f"decided {_short(dec.get('winner'))} after {shown(_count(dec.get('samples'), 'sample'))} in "
            f"{shown(_count(dec.get('rounds'), 'round'))}{right}; votes: {votes}"
        )
    for err in d.errors:
        console.print(f"[red]{shown(err.get('error'))}: {shown(err.get('message'))}[/]")
    if show_text:
        for e in d.samples:
            console.print(f"[bold]sample {shown(e['i'])}[/] ({shown(e['finish'])}):")
            console.print(shown(e["text"], lines=True), soft_wrap=True)
