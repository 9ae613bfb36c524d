"""`maker analyze`: did the run's assumptions hold, and what would scaling it cost?

The theory behind voting assumes each vote is right with one fixed probability
p, independently of every other vote. A trace can check that: the per-vote error
rate with its interval, how it moves with response length and step index, how
fast steps converge compared with the independent-error prediction, whether the
first two votes of a step are wrong together more often than chance allows
(collisions), and which steps needed far more votes than the model predicts.

Every flag is a test with false-alarm rate ALPHA, so a clean run stays clean.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from maker._pricing import Price, load_prices, price_of
from maker._words import counted
from maker.analysis._accumulate import (
    FIRST_WRONG,
    FLAGGED,
    RIGHT,
    SAME_WRONG,
    SECOND_WRONG,
    WRONG,
    Scored,
    Table,
    accumulate,
)
from maker.analysis._estimate import Estimate, estimate
from maker.analysis._lockin import LockedIn, locked_in, locked_in_line
from maker.analysis._rates import RateStats
from maker.analysis._stats import Proportion, binom_cdf, binom_sf, chi2_sf, fisher_greater
from maker.analysis._walk import undecided
from maker.traces._speculation import SpeculationStats
from maker.voting._theory import expected_votes, k_min, p_step

ALPHA = 0.001  # false-alarm rate of each flag (heterogeneity, collisions, drift)
PROJECT_TO = (10**6, 10**9)
MAX_LISTED = 50  # outlier steps listed by name; the count covers all of them


@dataclass(frozen=True, slots=True)
class Bin:
    """A range [low, high) of response lengths or step positions and its errors."""

    low: int
    high: int
    count: int  # samples in a length bin, steps in a step bin
    flagged: int
    error: Proportion

    def to_json(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "count": self.count,
            "flagged": self.flagged,
            "error": self.error.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Convergence:
    """Steps still undecided after each vote, observed and as independent errors predict.

    The prediction is the two-candidate walk (method.md §4's worst case), so a
    run whose mistakes spread over several wrong answers converges *faster*;
    only slower convergence is evidence against independent errors.
    """

    k: int
    p: float
    steps: int
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    p_slower: float
    p_faster: float

    @property
    def slower(self) -> bool:
        return self.p_slower < ALPHA

    @property
    def faster(self) -> bool:
        return self.p_faster < ALPHA

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "p": self.p,
            "steps": self.steps,
            "observed": list(self.observed),
            "expected": [round(x, 6) for x in self.expected],
            "p_slower": self.p_slower,
            "p_faster": self.p_faster,
            "slower": self.slower,
            "faster": self.faster,
        }


@dataclass(frozen=True, slots=True)
class Collisions:
    """Steps whose first two votes were both wrong, against independence (Fisher's exact test)."""

    steps: int
    first_wrong: int
    second_wrong: int
    observed: int
    same_answer: int
    p_value: float

    @property
    def expected(self) -> float:
        return self.first_wrong * self.second_wrong / self.steps if self.steps else 0.0

    @property
    def excess(self) -> bool:
        return self.p_value < ALPHA

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "first_wrong": self.first_wrong,
            "second_wrong": self.second_wrong,
            "observed": self.observed,
            "same_answer": self.same_answer,
            "expected": round(self.expected, 4),
            "p_value": self.p_value,
            "excess": self.excess,
        }


@dataclass(frozen=True, slots=True)
class Outlier:
    """A step that needed far more votes than independent errors make plausible."""

    step: Hashable
    votes: int
    rounds: int
    samples: int
    tail: float  # P(a step needs this many votes or more) under the model
    undecided: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "votes": self.votes,
            "rounds": self.rounds,
            "samples": self.samples,
            "tail": self.tail,
            "undecided": self.undecided,
        }


@dataclass(frozen=True, slots=True)
class Heterogeneity:
    """Steps much harder than the rest: listed when P(this many votes) < ALPHA / steps."""

    threshold: int | None
    count: int
    outliers: tuple[Outlier, ...]
    slow_convergence: bool

    @property
    def flagged(self) -> bool:
        return self.count > 0 or self.slow_convergence

    def to_json(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "threshold_votes": self.threshold,
            "count": self.count,
            "slow_convergence": self.slow_convergence,
            "outliers": [o.to_json() for o in self.outliers],
        }


@dataclass(frozen=True, slots=True)
class Projection:
    """The same setup at another size: with the run's k, and with k_min for 95% success."""

    steps: int
    k: int | None
    p_task: float | None
    cost: float | None
    k_min: int | None
    k_min_cost: float | None
    k_min_pessimistic: int | None  # at the upper end of the error rate's interval

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything `maker analyze` reports about one trace."""

    path: Path
    header: dict[str, Any]
    outcome: str | None
    reference: str  # "ground truth" or "voted winner"
    decided: int
    python_steps: int
    undecided: int
    scored_steps: int
    samples: int
    late: int
    flags: dict[str, int]
    valid: Proportion
    vote_error: Proportion
    first_vote_error: Proportion
    wrong_steps: Proportion | None
    wrong_steps_expected: float | None  # decided wrong, as independent errors predict
    tokens_in: int
    tokens_out: int
    mean_votes: float
    expected_votes: float | None
    by_length: tuple[Bin, ...]
    by_step: tuple[Bin, ...]
    drift_p_value: float | None
    rounds: dict[int, int]
    votes: dict[int, int]
    convergence: Convergence | None
    collisions: Collisions | None
    heterogeneity: Heterogeneity | None
    price: Price | None
    cost: float | None
    projections: tuple[Projection, ...]
    notes: tuple[str, ...] = field(default=())
    speculation: SpeculationStats | None = None  # speculative runs only
    wasted_cost: float | None = None  # what the samples drawn on mispredictions cost
    rates: RateStats | None = None  # governor totals and cached tokens, where the trace has them
    wall_s: float | None = None  # the run's wall time, from its end event
    draft_cost: float | None = None  # what drafts cost (at the run model's prices), wasted or not
    wasted_draft_cost: float | None = None  # the share of it spent on drafted steps that were not confirmed
    locked_in: tuple[LockedIn, ...] = ()  # steps decided against most of their samples

    @property
    def extra_samples(self) -> float | None:
        """Samples wasted on mispredictions, as a share of the samples a run without speculation draws."""
        s = self.speculation
        voted = self.samples - s.wasted_samples if s is not None else 0
        return s.wasted_samples / voted if s is not None and voted > 0 else None

    @property
    def extra_cost(self) -> float | None:
        """Wasted samples and every draft, as a share of what a run without speculation pays."""
        if self.wasted_cost is None or self.cost is None or self.cost <= self.wasted_cost:
            return None
        return (self.wasted_cost + (self.draft_cost or 0.0)) / (self.cost - self.wasted_cost)

    @property
    def model(self) -> str:
        return str(self.header.get("model", "?"))

    @property
    def task(self) -> str:
        task = self.header.get("task") or {}
        params = ", ".join(f"{k}={v}" for k, v in (task.get("params") or {}).items())
        return f"{task.get('name', '?')}({params})"

    @property
    def mode(self) -> str:
        return str(self.header.get("mode", "sequential"))

    @property
    def rule(self) -> dict[str, Any]:
        return dict(self.header.get("voting") or {})

    @property
    def k(self) -> int | None:
        rule = self.rule
        return int(rule["k"]) if rule.get("rule") == "ahead-by-k" and "k" in rule else None

    @property
    def p(self) -> float:
        """Estimated probability that one vote is right."""
        return 1.0 - self.vote_error.value

    @property
    def wrong_steps_p_value(self) -> float | None:
        """One-sided: P(at least this many wrong decisions) if errors were independent at rate 1 − p."""
        w, e = self.wrong_steps, self.wrong_steps_expected
        if w is None or e is None or not w.n:
            return None
        return binom_sf(w.hits, w.n, e / w.n)

    @property
    def excess_wrong_steps(self) -> bool:
        p = self.wrong_steps_p_value
        return p is not None and p < ALPHA

    @property
    def drifts(self) -> bool:
        return self.drift_p_value is not None and self.drift_p_value < ALPHA

    @property
    def mean_tokens_in(self) -> float:
        return self.tokens_in / self.samples if self.samples else 0.0

    @property
    def mean_tokens_out(self) -> float:
        return self.tokens_out / self.samples if self.samples else 0.0

    def findings(self) -> list[str]:
        """The verdicts, one plain sentence each."""
        return _findings(self)

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)


def analyze(path: str | os.PathLike[str], *, prices: Mapping[str, Price] | None = None) -> Analysis:
    """Analyse one trace file (plain or gzip; sequential, independent or calibration)."""
    return replace(analyze_table(accumulate(path), Path(path), prices=prices), locked_in=locked_in(path))


def analyze_table(t: Table, path: Path, *, prices: Mapping[str, Price] | None = None) -> Analysis:
    """The analysis of an already accumulated trace (`analyze` reads the file first)."""
    ref_name, col = ("ground truth", t.truth) if t.has_truth else ("voted winner", t.winner)
    vote_error, first_error, wrong_steps = _error_rates(t, col)
    k = _k(t.header)
    p = 1.0 - vote_error.value if vote_error.n else math.nan
    # k where the theory applies (a known k and an observed vote error rate), else None.
    theory_k = k if k is not None and vote_error.n > 0 and p > 0 else None
    valid = Proportion(t.sample_count - sum(t.flags.values()), t.sample_count)
    convergence = _convergence(t, k, p)
    price = price_of(str(t.header.get("model", "")), prices if prices is not None else load_prices())
    by_step, drift = _by_step(t, col)
    spec = t.speculation if t.speculation.speculative else None
    return Analysis(
        path=path,
        header=t.header,
        outcome=None if t.end is None else t.end.get("outcome"),
        reference=ref_name,
        decided=len(t.ids),
        python_steps=t.python_steps,
        undecided=len(t.undecided),
        scored_steps=sum(1 for w in col.wrong_votes if w >= 0),
        samples=t.sample_count,
        late=t.late,
        flags=dict(t.flags),
        valid=valid,
        vote_error=vote_error,
        first_vote_error=first_error,
        wrong_steps=wrong_steps if ref_name == "ground truth" else None,
        wrong_steps_expected=wrong_steps.n * (1.0 - p_step(p, theory_k))
        if theory_k is not None and ref_name == "ground truth"
        else None,
        tokens_in=t.tokens_in,
        tokens_out=t.tokens_out,
        mean_votes=sum(t.votes) / len(t.votes) if t.votes else 0.0,
        expected_votes=expected_votes(p, theory_k) if theory_k is not None else None,
        by_length=_by_length(col),
        by_step=by_step,
        drift_p_value=drift,
        rounds=dict(sorted(Counter(t.rounds).items())),
        votes=dict(sorted(Counter(t.votes).items())),
        convergence=convergence,
        collisions=_collisions(col),
        heterogeneity=_heterogeneity(t, k, p, convergence),
        price=price,
        cost=None if price is None else price.cost(t.tokens_in, t.tokens_out, t.rates.cached),
        projections=_projections(vote_error, valid, k, t, price),
        notes=_notes(t, ref_name, k),
        speculation=spec,
        wasted_cost=None
        if spec is None or price is None
        else price.cost(spec.wasted_tokens_in, spec.wasted_tokens_out),
        rates=t.rates if t.rates.governed or t.rates.reported or t.rates.by_endpoint else None,
        wall_s=_wall(t.end),
        draft_cost=None
        if spec is None or price is None or not spec.drafts
        else price.cost(spec.draft_tokens_in, spec.draft_tokens_out),
        wasted_draft_cost=None
        if spec is None or price is None or not spec.drafts
        else price.cost(*(round(t) for t in spec.wasted_draft_tokens)),
    )


def _wall(end: dict[str, Any] | None) -> float | None:
    wall = None if end is None else end.get("wall_s")
    return float(wall) if isinstance(wall, int | float) else None


def _error_rates(t: Table, col: Scored) -> tuple[Proportion, Proportion, Proportion]:
    """Wrong votes among scored votes, wrong first votes among steps, steps decided wrong."""
    scored = [(n, w) for n, w in zip(t.votes, col.wrong_votes, strict=False) if w >= 0]
    first = [f for f in col.first_wrong if f >= 0]
    steps = [s for s in col.step_wrong if s >= 0]
    return (
        Proportion(sum(w for _, w in scored), sum(n for n, _ in scored)),
        Proportion(sum(first), len(first)),
        Proportion(sum(steps), len(steps)),
    )


def _notes(t: Table, reference: str, k: int | None) -> tuple[str, ...]:
    notes = []
    if reference == "voted winner":
        notes.append(
            "no ground truth in this trace: errors are counted against the voted winner, which understates them"
        )
    if k is None:
        notes.append(
            f"rule {(t.header.get('voting') or {}).get('rule')!r}: convergence and heterogeneity "
            "checks need ahead-by-k voting"
        )
    return tuple(notes)


def _k(header: dict[str, Any]) -> int | None:
    rule = header.get("voting") or {}
    return int(rule["k"]) if rule.get("rule") == "ahead-by-k" and "k" in rule else None


# --- error rate against response length and step position -----------------------------------------------------

_NICE = (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10_000, 20_000, 50_000, 100_000)


def _width(top: int, bins: int = 15) -> int:
    return next((w for w in _NICE if top / w <= bins), _NICE[-1])


def _by_length(col: Scored) -> tuple[Bin, ...]:
    if not col.by_length:
        return ()
    width = _width(max(out for out, _ in col.by_length) + 1)
    cells: dict[int, Counter[str]] = {}
    for (out, status), n in col.by_length.items():
        cells.setdefault(out // width, Counter())[status] += n
    return tuple(
        Bin(i * width, (i + 1) * width, sum(c.values()), c[FLAGGED], Proportion(c[WRONG], c[WRONG] + c[RIGHT]))
        for i, c in sorted(cells.items())
    )


def _by_step(t: Table, col: Scored, bins: int = 10) -> tuple[tuple[Bin, ...], float | None]:
    """First-vote error rate by step position (one independent draw per step) and a drift test.

    Each step's first vote, not all its votes: hard steps draw many votes, so
    pooling them would make one hard step look like a bad stretch of the run.
    """
    points = [(pos, f) for pos, f in zip(t.position, col.first_wrong, strict=False) if f >= 0]
    if not points:
        return (), None
    low = min(pos for pos, _ in points)
    span = max(pos for pos, _ in points) - low + 1
    bins = max(1, min(bins, len(points) // 20 or 1))
    width = math.ceil(span / bins)
    wrong, total = Counter[int](), Counter[int]()
    for pos, f in points:
        i = (pos - low) // width
        total[i] += 1
        wrong[i] += f
    out = tuple(
        Bin(low + i * width, low + (i + 1) * width, total[i], 0, Proportion(wrong[i], total[i])) for i in sorted(total)
    )
    return out, _drift(out)


def _drift(bins: tuple[Bin, ...]) -> float | None:
    """Chi-square test that every bin has the same error rate; None when too few errors to test."""
    hits = sum(b.error.hits for b in bins)
    n = sum(b.error.n for b in bins)
    if len(bins) < 2 or n == 0 or hits == 0 or hits == n:
        return None
    rate = hits / n
    if min(b.error.n * min(rate, 1 - rate) for b in bins) < 5:
        return None  # the chi-square approximation needs about 5 expected per cell
    stat = sum((b.error.hits - b.error.n * rate) ** 2 / (b.error.n * rate * (1 - rate)) for b in bins)
    return chi2_sf(stat, len(bins) - 1)


# --- convergence, collisions, heterogeneity ----------------------------------------------------------------------


def _convergence(t: Table, k: int | None, p: float) -> Convergence | None:
    if k is None or not t.votes or math.isnan(p) or p <= 0.5:
        return None
    stuck = [int(sum((e.get("votes") or {}).values())) for e in t.undecided]
    top = max([*t.votes, *stuck, k])
    n = len(t.votes) + len(stuck)
    needed = Counter(t.votes)
    observed, left = [], n
    for j in range(top + 1):
        observed.append(left)
        left -= needed.get(j + 1, 0)  # steps decided by vote j+1 stop being undecided after it
    theory = undecided(p, k, top)
    tested = range(k, top + 1)
    slower = min((binom_sf(observed[j], n, theory[j]) for j in tested), default=1.0) * len(tested)
    faster = min((binom_cdf(observed[j], n, theory[j]) for j in tested), default=1.0) * len(tested)
    return Convergence(k, p, n, tuple(observed), tuple(n * s for s in theory), min(1.0, slower), min(1.0, faster))


def _collisions(col: Scored) -> Collisions | None:
    pairs = [code for code in col.first_two if code >= 0]
    if not pairs:
        return None
    first = sum(1 for c in pairs if c & FIRST_WRONG)
    second = sum(1 for c in pairs if c & SECOND_WRONG)
    both = sum(1 for c in pairs if c & FIRST_WRONG and c & SECOND_WRONG)
    same = sum(1 for c in pairs if c & SAME_WRONG)
    return Collisions(len(pairs), first, second, both, same, fisher_greater(both, first, second, len(pairs)))


def _heterogeneity(t: Table, k: int | None, p: float, convergence: Convergence | None) -> Heterogeneity | None:
    if k is None or convergence is None:
        return None
    n = convergence.steps
    cap = int((t.header.get("voting") or {}).get("max_samples") or 0)
    curve = undecided(p, k, max(len(convergence.observed), cap) + 1)
    cut = ALPHA / n
    # A step is flagged when P(needing this many votes or more) < ALPHA / n, so a
    # run of independent errors flags any step at all with probability < ALPHA.
    threshold = next((j + 1 for j, s in enumerate(curve) if s < cut), None)
    found: list[Outlier] = []
    if threshold is not None:
        for step, votes, rounds, samples in zip(t.ids, t.votes, t.rounds, t.samples, strict=False):
            if votes >= threshold:
                found.append(Outlier(step, votes, rounds, samples, curve[votes - 1]))
    for e in t.undecided:
        votes = int(sum((e.get("votes") or {}).values()))
        tail = curve[votes] if votes < len(curve) else 0.0  # still undecided after all its votes
        if tail < cut:
            found.append(Outlier(e.get("step"), votes, 0, int(e.get("samples") or 0), tail, undecided=True))
    found.sort(key=lambda o: (o.tail, -o.votes))
    return Heterogeneity(threshold, len(found), tuple(found[:MAX_LISTED]), convergence.slower)


# --- cost ---------------------------------------------------------------------------------------------------------


def _projections(
    error: Proportion, valid: Proportion, k: int | None, t: Table, price: Price | None
) -> tuple[Projection, ...]:
    if not error.n or not valid.hits:
        return ()
    per_in = t.tokens_in / t.sample_count
    per_out = t.tokens_out / t.sample_count
    out = []
    for steps in PROJECT_TO:
        est = _estimate(error.value, steps, valid.value, per_in, per_out, price, k)
        pessimistic = k_min(1.0 - error.high, steps) if error.high < 0.5 else None
        same = next((r for r in est.rows if r.k == k), None)
        at_min = est.at_k_min
        out.append(
            Projection(
                steps,
                k,
                None if same is None else same.p_task,
                None if same is None else same.cost,
                est.k_min,
                None if at_min is None else at_min.cost,
                pessimistic,
            )
        )
    return tuple(out)


def _estimate(q: float, steps: int, v: float, tin: float, tout: float, price: Price | None, k: int | None) -> Estimate:
    kmin = k_min(1.0 - q, steps) if q < 0.5 else None
    ks = tuple(sorted({x for x in (k, kmin) if x is not None})) if q < 1.0 else ()
    return estimate(q, steps, valid_rate=v, tokens_in=tin, tokens_out=tout, price=price, ks=ks)


# --- words -------------------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.3g}%"


def _findings(a: Analysis) -> list[str]:
    out = []
    e = a.vote_error
    if e.n:
        out.append(
            f"per-vote error rate {_pct(e.value)} (95% CI {_pct(e.low)}–{_pct(e.high)}) against "
            f"{a.reference}, from {e.n:,} votes"
        )
    else:
        out.append("no scored votes: nothing to estimate an error rate from")
    h, c, conv = a.heterogeneity, a.collisions, a.convergence
    if a.undecided:
        out.append(f"{counted(a.undecided, 'step')} never decided: they hit the per-step sample cap")
    if h is not None and h.count:
        out.append(
            f"heterogeneous steps: {counted(h.count, 'step')} needed far more votes than independent errors "
            f"predict (at least {counted(h.threshold, 'vote')} each)"
            if h.threshold
            else f"heterogeneous steps: {counted(h.count, 'step')} never decided"
        )
    if conv is not None and conv.slower:
        out.append(f"convergence is slower than independent errors predict (p = {conv.p_slower:.2g})")
    elif conv is not None and conv.faster:
        out.append(
            "convergence is faster than the two-candidate worst case: mistakes spread over several wrong answers"
        )
    if c is not None and c.excess:
        out.append(
            f"excess collisions: {c.observed} steps had both first votes wrong, {c.expected:.1f} expected "
            f"if errors were independent (p = {c.p_value:.2g})"
        )
    if h is not None and not h.flagged and (c is None or not c.excess) and not a.excess_wrong_steps:
        out.append(
            "errors look independent: no step needed far more votes than predicted"
            + ("" if c is None else f", collisions as expected ({c.observed} vs {c.expected:.1f})")
        )
    if a.excess_wrong_steps:
        w = a.wrong_steps
        assert w is not None and a.wrong_steps_expected is not None
        out.append(
            f"more wrong decisions than independent errors predict: {w.hits} of {w.n:,} steps decided "
            f"wrong, {a.wrong_steps_expected:.2g} expected (p = {a.wrong_steps_p_value:.2g})"
        )
    if a.drifts:
        out.append(f"the error rate changes along the run (drift test p = {a.drift_p_value:.2g})")
    lock = locked_in_line(a.locked_in)
    if lock is not None:
        out.append(lock)
    if a.speculation is not None:
        out.append(speculation_line(a))
    return out


def speculation_line(a: Analysis) -> str:
    """Speculation in one sentence: how often the prediction held, and what the misses cost."""
    s = a.speculation
    assert s is not None
    rate = "no predictions" if s.hit_rate is None else f"hit rate {_pct(s.hit_rate)} ({s.hits:,} of {s.predictions:,})"
    extra = "" if a.extra_samples is None else f" (+{_pct(a.extra_samples)} samples"
    if extra and a.extra_cost is not None:
        extra += f", +{_pct(a.extra_cost)} cost"
    extra += ")" if extra else ""
    cost = "" if a.wasted_cost is None else f", ${a.wasted_cost:.4g}"
    line = (
        f"speculation: {rate}; {s.wasted_samples:,} samples, "
        f"{s.wasted_tokens_in + s.wasted_tokens_out:,} tokens{cost} wasted on mispredictions{extra}"
    )
    return line + draft_clause(s, a.draft_cost, a.wasted_draft_cost) if s.drafts else line


def draft_clause(s: SpeculationStats, cost: float | None, wasted: float | None) -> str:
    """Drafts in one clause: how many drafted steps the votes confirmed, and what drafts cost."""
    rate = "—" if s.draft_hit_rate is None else _pct(s.draft_hit_rate)
    tokens = s.draft_tokens_in + s.draft_tokens_out
    priced = "" if cost is None else f" (${cost:.4g}, ${wasted or 0:.4g} of it wasted)"
    return (
        f"; drafts: hit rate {rate} ({s.draft_hits:,} of {s.drafted_steps:,} drafted steps), "
        f"{s.drafts:,} drafts, {tokens:,} tokens{priced}, {round(sum(s.wasted_draft_tokens)):,} tokens wasted"
    )


def _to_json(a: Analysis) -> dict[str, Any]:
    return {
        "trace": str(a.path),
        "run_id": a.header.get("run_id"),
        "task": a.header.get("task"),
        "model": a.model,
        "mode": a.mode,
        "voting": a.rule,
        "outcome": a.outcome,
        "reference": a.reference,
        "decided_steps": a.decided,
        "python_steps": a.python_steps,
        "undecided_steps": a.undecided,
        "scored_steps": a.scored_steps,
        "samples": a.samples,
        "late_samples": a.late,
        "red_flags": a.flags,
        "valid": a.valid.to_json(),
        "vote_error": a.vote_error.to_json(),
        "p": None if math.isnan(a.p) else a.p,
        "first_vote_error": a.first_vote_error.to_json(),
        "wrong_steps": None if a.wrong_steps is None else a.wrong_steps.to_json(),
        "wrong_steps_expected": a.wrong_steps_expected,
        "wrong_steps_p_value": a.wrong_steps_p_value,
        "tokens_in": a.tokens_in,
        "tokens_out": a.tokens_out,
        "mean_votes_per_step": a.mean_votes,
        "expected_votes_per_step": a.expected_votes,
        "by_length": [b.to_json() for b in a.by_length],
        "by_step": [b.to_json() for b in a.by_step],
        "drift_p_value": a.drift_p_value,
        "rounds": a.rounds,
        "votes": a.votes,
        "convergence": None if a.convergence is None else a.convergence.to_json(),
        "collisions": None if a.collisions is None else a.collisions.to_json(),
        "heterogeneity": None if a.heterogeneity is None else a.heterogeneity.to_json(),
        "price": None if a.price is None else {"input": a.price.input, "output": a.price.output},
        "cost": a.cost,
        "projections": [p.to_json() for p in a.projections],
        "speculation": None
        if a.speculation is None
        else {
            **a.speculation.to_json(),
            "wasted_cost": a.wasted_cost,
            "draft_cost": a.draft_cost,
            "wasted_draft_cost": a.wasted_draft_cost,
            "extra_samples": a.extra_samples,
            "extra_cost": a.extra_cost,
        },
        "rates": None if a.rates is None else a.rates.to_json(),
        "locked_in": [x.to_json() for x in a.locked_in],
        "findings": a.findings(),
        "notes": list(a.notes),
    }
