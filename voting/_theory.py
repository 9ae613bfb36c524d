"""The voting theory of method.md §4 (two-candidate worst case).

Shared by the runtime (sizing advice), `maker estimate` and trace analysis, so
the numbers a user sees before a run and after it come from one place.
"""

from __future__ import annotations

import math

from maker.errors import ConfigError


def _check_p(p: float) -> None:
    if not 0.0 < p <= 1.0:
        raise ConfigError(f"per-vote success p must be in (0, 1], got {p}")


def p_step(p: float, k: int) -> float:
    """Probability that ahead-by-k voting picks the right answer at one step."""
    _check_p(p)
    if p == 1.0:
        return 1.0
    return 1.0 / (1.0 + ((1.0 - p) / p) ** k)


def p_task(p: float, k: int, steps: int, m: int = 1) -> float:
    """Probability that every one of `steps` steps is right."""
    # math.pow, not **: float ** float is typed as possibly complex.
    return math.pow(p_step(p, k), steps / m)


def k_min(p: float, steps: int, target: float = 0.95, m: int = 1) -> int | None:
    """Smallest k reaching `target` whole-task success; None if voting cannot help (p <= 0.5)."""
    _check_p(p)
    if not 0.0 < target < 1.0:
        raise ConfigError(f"target must be in (0, 1), got {target}")
    if p <= 0.5:
        return None
    if p == 1.0:
        return 1
    # target^(-m/steps) - 1 as expm1: for 10^17 steps the power rounds to exactly 1.0, and log(0) fails.
    k = math.ceil(math.log(math.expm1(-(m / steps) * math.log(target))) / math.log((1.0 - p) / p))
    return max(1, k)


def expected_votes(p: float, k: int) -> float:
    """Expected votes per step to reach a k-lead (gambler's ruin)."""
    _check_p(p)
    if p == 0.5:
        return float(k * k)
    return k / (2.0 * p - 1.0) * (2.0 * p_step(p, k) - 1.0)


def expected_samples(p: float, k: int, valid_rate: float = 1.0) -> float:
    """Expected samples per step once red-flagged samples (1 - v) are counted."""
    if not 0.0 < valid_rate <= 1.0:
        raise ConfigError(f"valid rate must be in (0, 1], got {valid_rate}")
    return expected_votes(p, k) / valid_rate
