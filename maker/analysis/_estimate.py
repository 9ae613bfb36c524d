"""`maker estimate`: what a run will need before anyone pays for it.

Everything here is method.md §4 applied to one setup: the per-step error rate,
the number of steps, the target success probability, and (for money) the mean
tokens of a call and a price. The numbers come from `voting._theory`, the same
functions the runtime and the trace analysis use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from maker._pricing import Price
from maker.analysis._rates import WideTime, wide_time
from maker.analysis._stats import binom_sf
from maker.errors import ConfigError
from maker.traces._size import TraceSize, trace_size
from maker.voting._theory import expected_samples, expected_votes, k_min, p_step

MAX_MAJORITY = 999  # fixed-majority sizes beyond this are reported as "more than"


@dataclass(frozen=True, slots=True)
class KRow:
    """One k: how reliable, how many samples, how much money."""

    k: int
    p_step: float
    p_task: float
    votes_per_step: float
    samples_per_step: float
    total_samples: float
    tokens_in: float | None
    tokens_out: float | None
    cost: float | None
    step_error: float = 0.0  # 1 - p_step, computed without cancellation (p_step rounds to 1.0 at k >= 8)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Estimate:
    """The estimate for one setup; `rows` holds k_min and the k around it.

    `voting_helps` is False when a vote is right half the time or less: then
    more votes make the wrong answer likelier to win, and no k reaches the
    target. `notes` says what the cost leaves out (unknown price, input tokens).
    """

    error_rate: float
    steps: int
    target: float
    valid_rate: float
    k_min: int | None
    rows: tuple[KRow, ...]
    price: Price | None
    price_source: str | None
    tokens_in: float | None
    tokens_out: float | None
    majority_n: int | None = None
    notes: tuple[str, ...] = field(default=())
    wall: WallTime | None = None  # with a per-call latency: how long a dependent chain takes
    wide: WideTime | None = None  # with rate limits: how long the same requests take as wide work

    @property
    def trace(self) -> TraceSize | None:
        """How big the run's trace will be, at k_min (see `maker.traces._size`)."""
        row = self.at_k_min
        return None if row is None else trace_size(row.total_samples, self.steps, self.tokens_out)

    @property
    def p(self) -> float:
        return 1.0 - self.error_rate

    @property
    def voting_helps(self) -> bool:
        return self.k_min is not None

    @property
    def at_k_min(self) -> KRow | None:
        return next((r for r in self.rows if r.k == self.k_min), None)

    @property
    def majority_savings(self) -> float | None:
        """Share of samples ahead-by-k_min saves against the fixed majority of the same per-step error."""
        row = self.at_k_min
        if row is None or self.majority_n is None:
            return None
        return 1.0 - row.votes_per_step / self.majority_n

    def to_json(self) -> dict[str, Any]:
        price = None if self.price is None else {"input": self.price.input, "output": self.price.output}
        return {
            "error_rate": self.error_rate,
            "p": self.p,
            "steps": self.steps,
            "target": self.target,
            "valid_rate": self.valid_rate,
            "k_min": self.k_min,
            "voting_helps": self.voting_helps,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "price": price,
            "price_source": self.price_source,
            "majority_n": self.majority_n,
            "majority_savings": self.majority_savings,
            "rows": [r.to_json() for r in self.rows],
            "wall_time": None if self.wall is None else self.wall.to_json(),
            "wide_time": None if self.wide is None else self.wide.to_json(),
            "trace": None if self.trace is None else self.trace.to_json(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class WallTime:
    """Wall time of a dependent chain of `steps` steps, each waiting for the one before.

    A chain is latency-bound, not rate-bound: step i+1's prompt needs step i's
    answer, so more concurrency, higher rate limits or batch APIs cannot
    shorten it. Without speculation a step takes at least one round of its k
    first samples, i.e. the slowest of k latencies; with speculation (and a
    first sample that is usually right) the next step starts at the fastest of
    them. Latencies are log-normal with mean `latency` and spread `sigma` (the
    simulated model's law); sigma = 0 means every call takes exactly `latency`,
    and speculation then saves nothing. Extra voting rounds add to both.
    """

    steps: int
    k: int
    latency: float
    sigma: float
    per_step_plain: float  # E[slowest of k] / latency
    per_step_speculative: float  # E[fastest of k] / latency
    draft: int = 16  # steps per draft, for `drafted_s`
    draft_accuracy: float = 0.99  # chance that a drafted step is right
    per_step_drafted: float = 1.0  # see `draft_per_step`

    @property
    def drafted_s(self) -> float:
        return self.steps * self.latency * self.per_step_drafted

    @property
    def plain_s(self) -> float:
        return self.steps * self.latency * self.per_step_plain

    @property
    def speculative_s(self) -> float:
        return self.steps * self.latency * self.per_step_speculative

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "k": self.k,
            "latency_s": self.latency,
            "latency_sigma": self.sigma,
            "s_times_latency_s": self.steps * self.latency,
            "plain_s": self.plain_s,
            "speculative_s": self.speculative_s,
            "draft": self.draft,
            "draft_accuracy": self.draft_accuracy,
            "drafted_s": self.drafted_s,
            "bound": "latency",
        }


def wall_time(
    steps: int, k: int, latency: float, sigma: float = 0.0, *, draft: int = 16, draft_accuracy: float = 0.99
) -> WallTime:
    """How long a chain takes at this per-call latency, without and with speculation or drafts (see `WallTime`)."""
    if not latency > 0 or not math.isfinite(latency):
        raise ConfigError(f"latency must be a positive number of seconds, got {latency}")
    if not 0 <= sigma <= 5:
        raise ConfigError(f"latency spread must be in [0, 5], got {sigma}")
    if draft < 1 or not 0 <= draft_accuracy <= 1:
        raise ConfigError(f"a draft needs >= 1 steps and an accuracy in [0, 1], got {draft} and {draft_accuracy}")
    plain = _order_mean(k, sigma, slowest=True)
    return WallTime(
        steps,
        k,
        latency,
        sigma,
        plain,
        _order_mean(k, sigma, slowest=False),
        draft,
        draft_accuracy,
        draft_per_step(draft, draft_accuracy, plain),
    )


DRAFT_FIRST_TOKEN = 0.11  # share of a call's latency before its first token (gpt-4.1-mini: 0.9 s of 7.9 s)
DRAFT_TOKENS = 40 / 538  # a drafted step's output tokens, against an ordinary reply's (Hanoi, gpt-4.1-mini)


def draft_latency(m: int) -> float:
    """A draft of `m` steps' latency, in ordinary calls: the first token, then m short answers."""
    return DRAFT_FIRST_TOKEN + (1 - DRAFT_FIRST_TOKEN) * m * DRAFT_TOKENS


def draft_per_step(m: int, accuracy: float, verify: float) -> float:
    """Wall time per step of a chain run with drafts of `m` steps, in model latencies.

    A draft is verified in one round of ballots, all in parallel (`verify`: the
    slowest of the k first samples). The first wrong drafted step is decided by
    its own vote, and the steps after it wait for a fresh draft from it: a
    draft with no wrong step costs max(draft, verify) (the next one is already
    asked for), one with a wrong step costs draft + verify. Steps gained: all
    m, or the ones up to and including the first wrong one.
    """
    a, d = accuracy, draft_latency(m)
    right = a**m
    gained = m * right + sum(j * a ** (j - 1) * (1 - a) for j in range(1, m + 1))
    spent = right * max(d, verify) + (1 - right) * (d + verify)
    return spent / gained


def _order_mean(k: int, sigma: float, *, slowest: bool) -> float:
    """E[max] (or E[min]) of k log-normal latencies of mean 1: a quadrature over the normal."""
    if sigma == 0 or k == 1:
        return 1.0
    n, lo, hi = 4000, -9.0, 9.0
    h = (hi - lo) / n
    total = 0.0
    for i in range(n + 1):
        z = lo + i * h
        cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
        pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        weight = k * pdf * (cdf if slowest else 1 - cdf) ** (k - 1)
        total += (0.5 if i in (0, n) else 1.0) * weight * math.exp(sigma * z - sigma * sigma / 2)
    return total * h


def estimate(
    error_rate: float,
    steps: int,
    *,
    target: float = 0.95,
    valid_rate: float = 1.0,
    tokens_in: float | None = None,
    tokens_out: float | None = None,
    price: Price | None = None,
    price_source: str | None = None,
    ks: tuple[int, ...] | None = None,
    spread: int = 2,
    latency: float | None = None,
    latency_sigma: float = 0.0,
    draft: int = 16,
    draft_accuracy: float = 0.99,
    rpm: float | None = None,
    tpm: float | None = None,
    max_tokens: float = 750.0,
) -> Estimate:
    """Estimate k_min and, for k_min ± `spread` (or the given `ks`), reliability, samples, tokens and cost.

    error_rate: 1 − p, the chance that one valid vote is wrong.
    valid_rate: v, the share of samples that pass the red flags.
    price: USD per million tokens; None means unknown, and the cost stays None
        (it is never invented). `price_source` names where it came from.
    latency / latency_sigma: seconds per call and their log-normal spread; with a
        latency the estimate says how long the steps take as one dependent chain
        (`WallTime`), without and with speculation, and with drafts of `draft`
        steps each right with probability `draft_accuracy`.
    rpm / tpm: the provider's limits; with either, the estimate also says how
        long the same requests take as wide work (`WideTime`: independent steps,
        calibration), where TPM counts `tokens_in` + `max_tokens` per request.
    """
    _validate(error_rate, steps, target, valid_rate, tokens_in, tokens_out)
    p = 1.0 - error_rate
    kmin = k_min(p, steps, target) if p > 0 else None
    if ks is None:
        ks = () if kmin is None else tuple(range(max(1, kmin - spread), kmin + spread + 1))
    elif p <= 0:
        ks = ()
    rows = tuple(_row(p, k, steps, valid_rate, tokens_in, tokens_out, price) for k in ks)
    return Estimate(
        error_rate,
        steps,
        target,
        valid_rate,
        kmin,
        rows,
        price,
        price_source,
        tokens_in,
        tokens_out,
        majority_equivalent(p, kmin) if kmin is not None else None,
        _notes(p, kmin, price, price_source, tokens_in, tokens_out),
        None
        if latency is None
        else wall_time(steps, kmin or 1, latency, latency_sigma, draft=draft, draft_accuracy=draft_accuracy),
        _wide(rows, kmin, rpm, tpm, (tokens_in or 0.0) + max_tokens, latency),
    )


def _wide(
    rows: tuple[KRow, ...], kmin: int | None, rpm: float | None, tpm: float | None, weight: float, latency: float | None
) -> WideTime | None:
    if rpm is None and tpm is None:
        return None
    row = next((r for r in rows if r.k == kmin), rows[0] if rows else None)
    return None if row is None else wide_time(row.total_samples, rpm, tpm, weight, latency)


def _validate(
    error_rate: float, steps: int, target: float, valid_rate: float, tokens_in: float | None, tokens_out: float | None
) -> None:
    if not 0.0 <= error_rate <= 1.0 or math.isnan(error_rate):
        raise ConfigError(f"error rate must be in [0, 1], got {error_rate}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target must be in (0, 1), got {target}")
    if not 0.0 < valid_rate <= 1.0:
        raise ConfigError(f"valid rate must be in (0, 1], got {valid_rate}")
    for name, value in (("tokens in", tokens_in), ("tokens out", tokens_out)):
        if value is not None and value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")


def _row(p: float, k: int, steps: int, v: float, tin: float | None, tout: float | None, price: Price | None) -> KRow:
    votes = expected_votes(p, k)
    samples = expected_samples(p, k, v)
    total = steps * samples
    t_in = None if tin is None else total * tin
    t_out = None if tout is None else total * tout
    cost = None
    if price is not None and t_out is not None:
        cost = price.cost(t_in or 0.0, t_out)  # type: ignore[arg-type]
    error = step_error(p, k)
    return KRow(k, p_step(p, k), task_success(error, steps), votes, samples, total, t_in, t_out, cost, error)


def step_error(p: float, k: int) -> float:
    """1 − p_step: r^k / (1 + r^k) with r = (1 − p)/p, which stays exact where 1 − p_step cancels to 0."""
    if p >= 1.0:
        return 0.0
    r = ((1.0 - p) / p) ** k
    return r / (1.0 + r)


def task_success(error: float, steps: float) -> float:
    """(1 − error)^steps through log1p: right for 10^17 steps of error 10^-16 (e^-10, not 1.0)."""
    return math.exp(steps * math.log1p(-error)) if error < 1.0 else 0.0


def majority_equivalent(p: float, k: int) -> int | None:
    """Smallest odd n whose fixed majority vote is as reliable per step as ahead-by-k.

    Two candidates, as in the theory: the majority is wrong when more than half
    of n votes are wrong. Method.md §4: at p = 0.9978 and k = 3 this is 7.
    """
    if p <= 0.5:
        return None
    q = 1.0 - p
    target_error = step_error(p, k)
    for n in range(1, MAX_MAJORITY + 1, 2):
        if binom_sf((n + 1) // 2, n, q) <= target_error:
            return n
    return None


def _notes(
    p: float, kmin: int | None, price: Price | None, source: str | None, tin: float | None, tout: float | None
) -> tuple[str, ...]:
    notes = []
    if kmin is None:
        notes.append(
            f"voting cannot help: a vote is right {p:.1%} of the time (≤ 50%), so more votes make a "
            "wrong answer likelier to win"
        )
    if price is None:
        what = f"no price for model {source!r}" if source else "no model or price given"
        notes.append(f"{what}: cost not estimated (give --price-in/--price-out or a price table)")
    elif tout is None:
        notes.append("no output tokens per call given (--tokens-out): cost not estimated")
    else:
        if price.input is None:
            notes.append("input price unknown: cost counts output tokens only")
        elif tin is None:
            notes.append("no input tokens per call given (--tokens-in): cost counts output tokens only")
    return tuple(notes)
