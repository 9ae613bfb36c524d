"""The few statistics the analysis needs, in plain Python (no scipy).

Every flag that `maker analyze` raises is a test with a stated false-alarm
rate, so a clean run is not "flagged" by noise and a flag means something.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True, slots=True)
class Proportion:
    """`hits` out of `n`, with a Wilson 95% interval.

    Wilson rather than the textbook normal interval: per-step error rates are
    tiny (0.2%), where the normal interval is too narrow and can go negative.
    """

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.hits, self.n)

    @property
    def low(self) -> float:
        return self.interval[0]

    @property
    def high(self) -> float:
        return self.interval[1]

    def covers(self, rate: float) -> bool:
        low, high = self.interval
        return low <= rate <= high

    def to_json(self) -> dict[str, float | int | None]:
        low, high = self.interval
        return {"hits": self.hits, "n": self.n, "rate": _num(self.value), "low": _num(low), "high": _num(high)}


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 8)


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) with no trials."""
    if n <= 0:
        return math.nan, math.nan
    phat = hits / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return low, high


def _log_pmf(x: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if x == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if x == n else -math.inf
    return math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * math.log(p) + (n - x) * math.log1p(-p)


def binom_sf(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), accurate far into either tail."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    return _upper(x, n, p) if x > n * p else max(0.0, 1.0 - _lower(x - 1, n, p))


def binom_cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p)."""
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    return _lower(x, n, p) if x < n * p else max(0.0, 1.0 - _upper(x + 1, n, p))


def _upper(x: int, n: int, p: float) -> float:
    # Terms fall from x upwards once x is past the mean: stop when they vanish.
    total = 0.0
    for i in range(x, n + 1):
        term = math.exp(_log_pmf(i, n, p))
        total += term
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def _lower(x: int, n: int, p: float) -> float:
    total = 0.0
    for i in range(x, -1, -1):
        term = math.exp(_log_pmf(i, n, p))
        total += term
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def binom_two_sided(x: int, n: int, p: float) -> float:
    """Two-sided p-value: twice the smaller tail, capped at 1."""
    return min(1.0, 2.0 * min(binom_sf(x, n, p), binom_cdf(x, n, p)))


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if x <= 0:
        return 1.0
    return _gamma_q(df / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    b = x + 1.0 - a
    c = 1.0 / 1e-300
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * h)


def fisher_greater(both: int, first: int, second: int, total: int) -> float:
    """One-sided Fisher exact test: P(at least `both` joint events | the margins).

    Used for collisions: of `total` steps, `first` had a wrong first vote and
    `second` a wrong second vote; independence predicts first·second/total
    with both wrong. Exact, so it holds with the handful of errors a good run has.
    """
    if total <= 0 or both <= 0:
        return 1.0
    top = min(first, second)
    if both > top:
        return 0.0

    def log_choose(n: int, r: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)

    base = log_choose(total, second)
    out = 0.0
    for x in range(both, top + 1):
        if second - x > total - first:
            continue
        out += math.exp(log_choose(first, x) + log_choose(total - first, second - x) - base)
    return min(1.0, out)
