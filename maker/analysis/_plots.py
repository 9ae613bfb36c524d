"""PNG figures of an analysis, for people who would rather look than read.

matplotlib is an optional extra (`pip install 'maker[plots]'`), imported only
here and only when plots are asked for, so the core stays light. The figures
are drawn with matplotlib's object API on the Agg canvas: no pyplot global
state, no GUI backend, safe to call from any thread or test.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from maker.analysis._analyze import Analysis
from maker.analysis._estimate import estimate
from maker.errors import ConfigError
from maker.voting._theory import k_min

FILES = ("error_vs_length.png", "convergence.png", "rounds.png", "kmin_cost.png", "error_vs_step.png")


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'maker[plots]'") from None
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write_plots(a: Analysis, directory: str | os.PathLike[str]) -> list[Path]:
    """Write every figure that the analysis has data for into `directory`; return their paths."""
    _figure()  # fail early, with one line, when matplotlib is missing
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create plot directory {out}: {exc.strerror or exc}") from None
    written = []
    for name, draw in zip(FILES, (_error_vs_length, _convergence, _rounds, _kmin_cost, _error_vs_step), strict=False):
        fig = draw(a)
        if fig is None:
            continue
        path = out / name
        fig.savefig(path)
        written.append(path)
    return written


def _integers() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _title(a: Analysis, what: str) -> str:
    return f"{what}\n{a.task} on {a.model}"


def _error_vs_length(a: Analysis) -> Any:
    bins = [b for b in a.by_length if b.count]
    if not bins:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    mids = [(b.low + b.high) / 2 for b in bins]
    width = (bins[0].high - bins[0].low) * 0.8
    ax2 = ax.twinx()
    ax2.bar(mids, [b.count for b in bins], width=width, color="#d9d9d9", label="samples")
    ax2.bar(mids, [b.flagged for b in bins], width=width, color="#f4a582", label="red-flagged")
    ax2.set_ylabel("samples")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    scored = [(m, b.error) for m, b in zip(mids, bins, strict=False) if b.error.n]
    if scored:
        xs = [m for m, _ in scored]
        ys = [100 * e.value for _, e in scored]
        lo = [100 * (e.value - e.low) for _, e in scored]
        hi = [100 * (e.high - e.value) for _, e in scored]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color="#b2182b", capsize=3, label="error rate (95% CI)")
        # Bins with a handful of samples have huge intervals; let their bars run
        # off the top rather than squash the well-measured bins flat.
        solid = [100 * e.high for _, e in scored if e.n >= 30] or [100 * e.high for _, e in scored]
        top = max(max(ys) * 1.3, max(solid) * 1.1, 0.1)
        ax.set_ylim(0, top)
        # Say so where an interval runs off the top: a cut bar must not read as a short one.
        cut = [(x, 100 * e.high) for x, e in scored if 100 * e.high > top]
        if cut:
            ax.plot(
                [x for x, _ in cut],
                [top] * len(cut),
                "^",
                color="#b2182b",
                markersize=7,
                clip_on=False,
                label="interval runs off the top (few samples)",
            )
    cap = a.rule.get("max_output_tokens")
    if cap:
        ax.axvline(float(cap), color="black", linestyle="--", linewidth=1, label=f"length red flag ({cap})")
    ax.set_xlabel("response length (output tokens)")
    ax.set_ylabel(f"error rate vs {a.reference} (%)")
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    # Below the axes, never over the error bars.
    fig.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="outside lower center", ncols=3, fontsize=8)
    ax.set_title(_title(a, "Error rate by response length"), fontsize=10)
    return fig


def _convergence(a: Analysis) -> Any:
    c = a.convergence
    if c is None:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    js = list(range(len(c.observed)))
    obs = [(j, u) for j, u in zip(js, c.observed, strict=False) if u > 0]
    ax.plot(
        [j for j, _ in obs], [u for _, u in obs], "s-", color="#2166ac", linewidth=2, markersize=5, label="observed"
    )
    # Predicted counts are drawn down to a hundredth of a step (below, nothing is observable);
    # where the band's lower edge reaches zero it runs to the bottom of the axis, not to a floor.
    bottom = 0.005
    exp = [(j, e) for j, e in zip(js, c.expected, strict=False) if e >= 2 * bottom]
    ax.plot(
        [j for j, _ in exp],
        [e for _, e in exp],
        "o--",
        color="#b2182b",
        markersize=4,
        label=f"independent errors (p = {c.p:.4g}, k = {c.k})",
    )
    band = [(j, e, 2 * math.sqrt(e * max(0.0, 1 - e / c.steps))) for j, e in exp]
    ax.fill_between(
        [j for j, _, _ in band],
        [e - s if e - s > bottom else bottom for _, e, s in band],
        [e + s for _, e, s in band],
        color="#b2182b",
        alpha=0.15,
        label="± 2 s.d. (to the axis: down to 0)",
    )
    ax.set_yscale("log")
    ax.set_ylim(bottom=bottom)
    ax.set_xlabel("votes drawn")
    ax.set_ylabel("steps still undecided")
    verdict = "slower than predicted" if c.slower else "faster than worst case" if c.faster else "as predicted"
    ax.set_title(_title(a, f"Convergence: {verdict}"), fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _rounds(a: Analysis) -> Any:
    if not a.rounds:
        return None
    fig = _figure(8.0, 3.8)
    left, right = fig.subplots(1, 2)
    for ax, hist, what in ((left, a.rounds, "rounds"), (right, a.votes, "votes")):
        xs = sorted(hist)
        ax.bar(xs, [hist[x] for x in xs], color="#4393c3")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(_integers())
        ax.set_xlabel(f"{what} per step")
        ax.set_ylabel("steps")
    c = a.convergence
    if c is not None:
        # Steps deciding at exactly n votes, as independent errors predict.
        pred = [(n, c.expected[n - 1] - c.expected[n]) for n in range(1, len(c.expected))]
        pred = [(n, e) for n, e in pred if e >= 0.05]
        right.plot(
            [n for n, _ in pred], [e for _, e in pred], "o", color="#b2182b", markersize=4, label="independent errors"
        )
    h = a.heterogeneity
    if h is not None and h.threshold is not None:
        # Always drawn, widening the axis if no step came near it: its distance is the finding.
        right.axvline(
            h.threshold - 0.5, color="#b2182b", linestyle="--", linewidth=1, label=f"outlier at ≥ {h.threshold} votes"
        )
        right.set_xlim(right=max(right.get_xlim()[1], h.threshold + 0.5))
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8)
    fig.suptitle(_title(a, "Rounds and votes per step"), fontsize=10)
    return fig


def _kmin_cost(a: Analysis) -> Any:
    e, v = a.vote_error, a.valid
    if not e.n or not v.hits or e.value >= 0.5:
        return None
    sizes = [10**x for x in range(1, 10)]
    priced = a.price is not None
    fig = _figure(8.0 if priced else 5.0, 3.8)
    # Without a price there is no cost to draw: one panel, and the title says why.
    left, right = fig.subplots(1, 2) if priced else (fig.add_subplot(), None)
    for q, style, label in (
        (e.value, "o-", f"error rate {100 * e.value:.3g}%"),
        (e.high, "s--", f"pessimistic {100 * e.high:.3g}%"),
    ):
        if q >= 0.5:
            continue
        ks = [k_min(1.0 - q, s) for s in sizes]
        left.plot(sizes, ks, style, label=label)
        costs = [_cost(a, q, s) for s in sizes] if right is not None else []
        if right is not None and all(c is not None and c > 0 for c in costs):
            right.plot(sizes, costs, style, label=label)
    for ax in (left, right):
        if ax is None:
            continue
        ax.set_xscale("log")
        ax.set_xlabel("steps")
        ax.axvline(max(a.decided, 1), color="grey", linestyle=":", linewidth=1, label=f"this run ({a.decided:,} steps)")
    left.yaxis.set_major_locator(_integers())
    left.set_ylabel("k_min (95% task success)")
    left.legend(fontsize=8)
    if right is not None:
        right.set_yscale("log")
        right.set_ylabel("expected cost at k_min (USD)")
        right.legend(fontsize=8)
    what = "k_min and cost" if priced else f"k_min (no price for {a.model}: no cost)"
    fig.suptitle(_title(a, f"{what} against the number of steps"), fontsize=10)
    return fig


def _cost(a: Analysis, q: float, steps: int) -> float | None:
    est = estimate(
        q,
        steps,
        valid_rate=a.valid.value,
        tokens_in=a.mean_tokens_in,
        tokens_out=a.mean_tokens_out,
        price=a.price,
        spread=0,
    )
    row = est.at_k_min
    return None if row is None else row.cost


def _error_vs_step(a: Analysis) -> Any:
    bins = [b for b in a.by_step if b.error.n]
    if not bins:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    mids = [(b.low + b.high) / 2 for b in bins]
    ys = [100 * b.error.value for b in bins]
    lo = [100 * (b.error.value - b.error.low) for b in bins]
    hi = [100 * (b.error.high - b.error.value) for b in bins]
    ax.errorbar(mids, ys, yerr=[lo, hi], fmt="o", color="#2166ac", capsize=3, label="first-vote error (95% CI)")
    overall = a.first_vote_error
    if overall.n:
        ax.axhline(100 * overall.value, color="#b2182b", linestyle="--", linewidth=1, label="whole run")
    ax.set_xlabel("step")
    ax.set_ylabel(f"error rate vs {a.reference} (%)")
    ax.set_ylim(bottom=0)
    drift = "" if a.drift_p_value is None else f" (drift test p = {a.drift_p_value:.2g})"
    ax.set_title(_title(a, f"Error rate along the run{drift}"), fontsize=10)
    ax.legend(fontsize=8)
    return fig
