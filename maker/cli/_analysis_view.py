"""Rich tables for `maker estimate`, `maker calibrate` and `maker analyze`.

Only presentation: every number here was computed by `maker.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from maker._words import counted
from maker.analysis import Analysis, Estimate, Proportion
from maker.analysis._analyze import speculation_line
from maker.analysis._calibrate import Calibration
from maker.analysis._estimate import WallTime
from maker.analysis._rates import WideTime, cache_line, rate_line
from maker.cli._escape import shown
from maker.traces._size import TraceSize, size_text


def pct(x: float | None, digits: int = 3) -> str:
    if x is None or math.isnan(x):
        return "–"
    return f"{100 * x:.{digits}g}%"


def prob(x: float) -> str:
    """A probability as a percentage, with enough digits to show how far it is from 100%."""
    if x >= 1.0:
        return "100%"
    if x <= 0.99:
        return f"{100 * x:.3g}%"
    if 1.0 - x < 1e-7:
        return ">99.99999%"
    digits = min(5, math.ceil(-math.log10(1.0 - x)) - 1)
    return f"{100 * x:.{digits}f}%"


def money(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 1e6:
        return "$" + big(x)
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}"


def big(x: float | None) -> str:
    """Counts a reader can take in at a glance: 3,159 / 3.16M / 1.42G."""
    if x is None:
        return "–"
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(x) >= size:
            return f"{x / size:.3g}{suffix}"
    return f"{x:,.0f}"


def small(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}" if x >= 1e-3 else f"{x:.2g}"


def interval(p: Proportion) -> str:
    if not p.n:
        return "– (no data)"
    return f"{pct(p.value)}  ({pct(p.low)} – {pct(p.high)})  {p.hits:,}/{p.n:,}"


def _kv(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for name, value in rows:
        t.add_row(name, shown(value))  # values hold trace contents (task, model, flags): never markup
    return t


def estimate_tables(e: Estimate) -> list[Any]:
    head = (
        f"{e.steps:,} steps, error rate {pct(e.error_rate, 4)} (p = {e.p:.6g}), valid rate {pct(e.valid_rate)}, "
        f"target {pct(e.target)}"
    )
    out: list[Any] = [f"[bold]{head}[/]"]
    if e.k_min is not None:
        out.append(f"[bold green]k_min = {e.k_min}[/]")
    if e.rows:
        out.append(_k_table(e))
    if e.majority_n is not None and e.majority_savings is not None:
        out.append(
            f"a fixed majority vote needs {counted(e.majority_n, 'vote')} per step for the same per-step success; "
            f"ahead-by-{e.k_min} saves {pct(e.majority_savings)} of them"
        )
    if e.wall is not None:
        out.append(_wall_line(e.wall))
    if e.wide is not None:
        out.append(_wide_line(e.wide))
    if e.trace is not None:
        out.append(_trace_line(e.trace))
    out.extend(f"[yellow]note:[/] {n}" for n in e.notes)
    return out


def _trace_line(t: TraceSize) -> str:
    tokens = f"{t.tokens_out:g} output tokens a reply" + (" (assumed; give --tokens-out)" if t.assumed else "")
    return (
        f"trace at k_min: about {size_text(t.gzip_bytes)} as .jsonl.gz, {size_text(t.plain_bytes)} as plain "
        f".jsonl ({tokens}; a rough guide, within about 2x)"
    )


def _wall_line(w: WallTime) -> str:
    return (
        f"wall time as one chain of {w.steps:,} dependent steps at {w.latency:g} s a call (spread {w.sigma:g}, "
        f"k = {w.k}): about {duration(w.plain_s)} without speculation (s × latency × {w.per_step_plain:.2f}), "
        f"{duration(w.speculative_s)} with --speculate (× {w.per_step_speculative:.2f}, when first samples are "
        f"usually right), {duration(w.drafted_s)} with --draft {w.draft} (× {w.per_step_drafted:.2f}, drafts right "
        f"{100 * w.draft_accuracy:g}% of steps). A chain is latency-bound, not rate-bound: more concurrency, rate "
        "limit or batch APIs cannot shorten it; only speculation can"
    )


def _wide_line(w: WideTime) -> str:
    limits = " and ".join(
        f"{value:,.0f} {name}" for name, value in (("RPM", w.rpm), ("TPM", w.tpm)) if value is not None
    )
    parts = []
    if w.by_requests_s is not None:
        parts.append(f"{w.requests:,.0f} requests / {w.rpm:,.0f} RPM = {duration(w.by_requests_s)}")
    if w.by_tokens_s is not None:
        parts.append(
            f"{w.requests:,.0f} × {w.tokens_per_request:,.0f} tokens reserved / {w.tpm:,.0f} TPM = "
            f"{duration(w.by_tokens_s)}"
        )
    flight = "" if w.in_flight is None else f"; it needs about {w.in_flight:,.0f} requests in flight (rate × latency)"
    return (
        f"wall time of the same requests done wide (independent steps, calibration) at {limits}: about "
        f"{duration(w.seconds)}, {w.bound}-bound ({'; '.join(parts)}){flight}"
    )


def duration(seconds: float) -> str:
    """Seconds in the largest unit that reads well: 42 s, 3.5 min, 7.1 h, 96 days."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _k_table(e: Estimate) -> Table:
    t = Table(title="for k around k_min", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns: list[tuple[str, Any]] = [
        ("k", lambda r: str(r.k)),
        ("step error", lambda r: small(r.step_error)),
        ("task success", lambda r: prob(r.p_task)),
        ("samples/step", lambda r: f"{r.samples_per_step:.2f}"),
        ("samples", lambda r: big(r.total_samples)),
    ]
    # Only the columns this estimate has numbers for: an 80-column terminal is the norm.
    if e.tokens_in is not None:
        columns.append(("tok in", lambda r: big(r.tokens_in)))
    if e.tokens_out is not None:
        columns.append(("tok out", lambda r: big(r.tokens_out)))
    if any(r.cost is not None for r in e.rows):
        columns.append(("cost", lambda r: money(r.cost)))
    for name, _ in columns:
        t.add_column(name, justify="right")
    for r in e.rows:
        t.add_row(*(cell(r) for _, cell in columns), style="bold" if r.k == e.k_min else None)
    return t


def calibration_tables(c: Calibration) -> list[Any]:
    a = c.analysis
    rows = [
        ("task", f"{c.task} {c.params}"),
        ("model", c.model),
        (
            "steps sampled",
            f"{len(c.steps):,}" if not c.stopped else f"{a.decided:,} of {len(c.steps):,} (stopped early: {c.stopped})",
        ),
        ("samples", f"{a.samples:,} ({_flags(a.flags)})"),
        ("error rate 1 − p (95% CI)", interval(c.error)),
        ("valid rate v (95% CI)", interval(c.valid)),
        ("mean tokens in / out", f"{a.mean_tokens_in:,.0f} / {a.mean_tokens_out:,.0f}"),
        ("k_min", _k_min(c)),
        ("trace", str(c.trace) if c.trace else "(not kept)"),
    ]
    out: list[Any] = [_kv(f"calibration of {c.model}", rows), length_table(a)]
    if c.estimate is not None:
        out.extend(estimate_tables(c.estimate))
    if c.repeats > 1:
        out.append(input_table(c))
    colour = {True: "green", False: "red", None: "yellow"}[c.voting_helps]
    out.append(f"[bold {colour}]{c.verdict}[/]")
    if c.systematic_verdict:
        out.extend(f"[red]systematic: {r.describe()}[/]" for r in c.systematic)
        out.append(f"[bold red]{c.systematic_verdict}[/]")
    return out


def input_table(c: Calibration, rows: int = 20) -> Table | str:
    """Per-input success where some sample was wrong, worst first (the rest were always right)."""
    wrong = sorted((r for r in c.inputs if r.success.hits < r.success.n), key=lambda r: r.success.value)
    if not wrong:
        return f"every input answered right in all {c.repeats} repeats"
    t = Table(title=f"inputs with wrong answers ({len(wrong)} of {len(c.inputs)}; {c.repeats} repeats each)")
    for col in ("step", "inputs", "p̂ (95% CI)", "answers"):
        t.add_column(col, justify="left")
    for r in wrong[:rows]:
        s = r.success
        answers = ", ".join(f"{n}× {k}" for k, n in sorted(r.answers.items(), key=lambda kv: -kv[1])[:4])
        style = "red" if r.systematic else ""
        inputs = ", ".join(f"{k}={v}" for k, v in r.inputs.items())
        t.add_row(str(r.step), inputs, f"{s.value:.2f} ({s.low:.2f}–{s.high:.2f})", answers, style=style)
    return t


def _k_min(c: Calibration) -> str:
    if c.estimate is None or c.estimate.k_min is None:
        return "– (voting cannot help)"
    worst = c.k_min_pessimistic
    extra = "" if worst in (None, c.estimate.k_min) else f" ({worst} at the pessimistic end of the interval)"
    return f"{c.estimate.k_min} for {c.estimate.steps:,} steps at {pct(c.estimate.target)}{extra}"


def _flags(flags: dict[str, int]) -> str:
    total = sum(flags.values())
    if not total:
        return "no red flags"
    return f"{total:,} red-flagged: " + ", ".join(f"{n:,} {kind}" for kind, n in sorted(flags.items()))


def length_table(a: Analysis) -> Table:
    t = Table(title=f"error rate by response length (output tokens; red flag above {_cap(a)})", title_justify="left")
    for col in ("tokens", "samples", "red-flagged", "scored", "wrong", "error rate (95% CI)"):
        t.add_column(col, justify="right")
    for b in a.by_length:
        e = b.error
        t.add_row(
            f"{b.low}–{b.high - 1}",
            f"{b.count:,}",
            f"{b.flagged:,}",
            f"{e.n:,}",
            f"{e.hits:,}",
            f"{pct(e.value)} ({pct(e.low)}–{pct(e.high)})" if e.n else "–",
        )
    return t


def _cap(a: Analysis) -> str:
    return str(a.rule.get("max_output_tokens", "?"))


def analysis_tables(a: Analysis) -> list[Any]:
    out: list[Any] = [_summary(a), length_table(a), _step_table(a), _hist(a)]
    if a.convergence is not None:
        out.append(_convergence(a))
    out.append(_collisions(a))
    if a.heterogeneity is not None and a.heterogeneity.outliers:
        out.append(_outliers(a))
    out.append(_projections(a))
    out.extend(f"[bold]•[/] {f}" for f in a.findings())
    out.extend(f"[yellow]note:[/] {n}" for n in a.notes)
    return out


def _summary(a: Analysis) -> Table:
    rows = [
        ("trace", f"{a.path}  ({a.mode}, {a.outcome or 'no end event'})"),
        ("task / model", f"{a.task} on {a.model}"),
        ("voting", ", ".join(f"{k}={v}" for k, v in a.rule.items() if k in ("rule", "k", "n", "max_samples"))),
        ("steps", f"{a.decided:,} decided, {a.undecided:,} undecided, {a.python_steps:,} python"),
        ("samples", f"{a.samples:,} ({_flags(a.flags)}; {a.late:,} late)"),
        (f"vote error rate vs {a.reference}", interval(a.vote_error)),
        ("first-vote error rate", interval(a.first_vote_error)),
        ("valid rate v", interval(a.valid)),
        (
            "steps decided wrong",
            "–"
            if a.wrong_steps is None
            else f"{a.wrong_steps.hits:,} of {a.wrong_steps.n:,}"
            + ("" if a.wrong_steps_expected is None else f" ({a.wrong_steps_expected:.2g} expected)"),
        ),
        (
            "votes per step",
            f"{a.mean_votes:.4f}" + ("" if a.expected_votes is None else f" (theory {a.expected_votes:.4f})"),
        ),
        ("tokens in / out", f"{a.tokens_in:,} / {a.tokens_out:,}"),
        ("cost", money(a.cost) if a.price else f"– (no price for {a.model})"),
    ]
    if a.speculation is not None:
        rows.append(("speculation", speculation_line(a).split(": ", 1)[1]))
    if a.rates is not None:
        rows.extend(_rate_rows(a))
    return _kv("trace analysis", rows)


def _rate_rows(a: Analysis) -> list[tuple[str, str]]:
    r = a.rates
    assert r is not None
    rows = [("cached input", cache_line(r))]
    if r.governed:
        rows.insert(0, ("rate limits", rate_line(r, a.wall_s)))
    if len(r.by_endpoint) > 1:
        rows.append(("samples by endpoint", ", ".join(f"{n:,} at {w}" for w, n in sorted(r.by_endpoint.items()))))
    return rows


def _step_table(a: Analysis) -> Table:
    drift = "–" if a.drift_p_value is None else f"{a.drift_p_value:.2g}"
    t = Table(title=f"first-vote error rate by step (drift test p = {drift})", title_justify="left")
    for col in ("steps", "count", "wrong", "error rate (95% CI)"):
        t.add_column(col, justify="right")
    for b in a.by_step:
        e = b.error
        t.add_row(
            f"{b.low:,}–{b.high - 1:,}", f"{b.count:,}", f"{e.hits:,}", f"{pct(e.value)} ({pct(e.low)}–{pct(e.high)})"
        )
    return t


def _hist(a: Analysis) -> Table:
    t = Table(title="per step: rounds and votes", title_justify="left")
    t.add_column("n", justify="right")
    t.add_column("steps with n rounds", justify="right")
    t.add_column("steps with n votes", justify="right")
    for n in sorted(set(a.rounds) | set(a.votes)):
        t.add_row(str(n), f"{a.rounds.get(n, 0):,}", f"{a.votes.get(n, 0):,}")
    return t


def _convergence(a: Analysis) -> Table:
    c = a.convergence
    assert c is not None
    t = Table(
        title=f"undecided steps after each vote vs independent errors (k = {c.k}, p = {c.p:.5g}; "
        f"slower p = {c.p_slower:.2g}, faster p = {c.p_faster:.2g})",
        title_justify="left",
    )
    for col in ("after vote", "undecided", "predicted"):
        t.add_column(col, justify="right")
    for j in range(c.k, len(c.observed)):
        t.add_row(str(j), f"{c.observed[j]:,}", f"{c.expected[j]:,.2f}")
    return t


def _collisions(a: Analysis) -> Table:
    c = a.collisions
    if c is None:
        return _kv("collisions", [("first two votes both wrong", "– (needs steps with two votes or more)")])
    return _kv(
        "collisions (first two votes of a step both wrong)",
        [
            ("observed", f"{c.observed:,} of {c.steps:,} steps ({c.same_answer:,} on the same wrong answer)"),
            ("expected if independent", f"{c.expected:.2f}  (Fisher p = {c.p_value:.2g})"),
        ],
    )


def _outliers(a: Analysis) -> Table:
    h = a.heterogeneity
    assert h is not None
    t = Table(
        title=f"steps needing far more votes than predicted ({h.count}; listed: {len(h.outliers)})",
        title_justify="left",
    )
    for col in ("step", "votes", "rounds", "samples", "P(this many | model)"):
        t.add_column(col, justify="right")
    for o in h.outliers:
        t.add_row(
            str(o.step),
            f"{o.votes}" + (" (undecided)" if o.undecided else ""),
            str(o.rounds),
            str(o.samples),
            f"{o.tail:.2g}",
        )
    return t


def _projections(a: Analysis) -> Table:
    t = Table(
        title="the same setup at scale (k_min: 95% task success; pessimistic: at the interval's end)",
        title_justify="left",
    )
    for col in ("steps", "k", "task success", "cost", "k_min", "cost", "pessimistic"):
        t.add_column(col, justify="right")
    for p in a.projections:
        t.add_row(
            big(p.steps),
            str(p.k or "–"),
            "–" if p.p_task is None else prob(p.p_task),
            money(p.cost),
            str(p.k_min or "–"),
            money(p.k_min_cost),
            str(p.k_min_pessimistic or "–"),
        )
    return t


def show(renderables: Iterable[Any], console: Console | None = None) -> None:
    console = console or Console(emoji=False)
    for r in renderables:
        console.print(r)
