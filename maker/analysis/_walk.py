"""How many votes a step needs if errors are independent: the two-candidate walk.

With one right answer (probability p per vote) and one wrong answer that every
mistake agrees on, the right answer's lead over the wrong one is a random walk
that stops at +k or -k. That is method.md §4's worst case: spreading mistakes
over several wrong answers only makes steps finish sooner. Its exact
distribution gives the paper's convergence curve (steps still undecided after
each vote) and says how surprising a step that needed many votes is.
"""

from __future__ import annotations

from maker.errors import ConfigError


def undecided(p: float, k: int, votes: int) -> list[float]:
    """P(a step is still undecided after j votes), for j = 0..votes."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"p must be in [0, 1], got {p}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    q = 1.0 - p
    # mass[d + k] = P(lead d and still undecided); leads run over -(k-1)..k-1.
    mass = [0.0] * (2 * k + 1)
    mass[k] = 1.0
    out = [1.0]
    for _ in range(votes):
        nxt = [0.0] * (2 * k + 1)
        for i in range(1, 2 * k):
            m = mass[i]
            if m:
                nxt[i + 1] += m * p
                nxt[i - 1] += m * q
        nxt[0] = nxt[2 * k] = 0.0  # absorbed: decided
        mass = nxt
        out.append(sum(mass))
    return out


def tail(p: float, k: int, votes: int) -> float:
    """P(a step needs at least `votes` votes) = P(undecided after votes - 1)."""
    if votes <= 1:
        return 1.0
    return undecided(p, k, votes - 1)[-1]
