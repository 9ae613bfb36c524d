"""A run-wide budget that shards lease from, so one shard can use what another left unspent.

Split budgets (`maker._shards.split_budget`) are safe but rigid: a shard that
needs more than its equal share stops on its budget while another shard
finishes with money to spare. With the Ray executor, a `BudgetPool` actor
holds the run-wide limits and each shard's *claim* on them:

- every claim starts at the shard's share, so the claims add up to the budget;
- a shard that reaches its claim asks to `extend` it, by a quantum, from what no
  claim holds (at first nothing: room appears when a shard finishes and
  `release`s what it did not spend);
- a shard that finishes releases the rest of its claim.

The invariant is that the claims never add up to more than the budget, and a
shard never spends past its own claim. So if the actor is lost, each shard
simply keeps the claim it holds (its share at least, unless it released it)
and the run-wide budget still holds. The hot path stays local: the pool is
asked only when a claim runs out, once per quantum, not per request.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anyio

from maker._budget import Budget, Spending, _Usage
from maker.backends._protocol import Request
from maker.errors import BudgetExceeded

log = logging.getLogger("maker.budget")

LIMITS = ("max_samples", "max_tokens", "max_cost")
RATES = ("rpm", "tpm")
_WHOLE = ("max_samples", "max_tokens")
_QUANTUM = 0.25  # of a shard's share, per extension: few round trips, little held idle


class BudgetPool:
    """The run-wide budget and each shard's claim on it (a plain class; the Ray executor makes it an actor)."""

    def __init__(
        self,
        limits: dict[str, float | None],
        shares: list[dict[str, float | None]],
        rates: dict[str, float | None] | None = None,
    ) -> None:
        self.limits = {name: limits.get(name) for name in LIMITS}
        self.claims = [{name: share.get(name) for name in LIMITS} for share in shares]
        self.rates = {name: (rates or {}).get(name) for name in RATES}
        self.running = set(range(len(shares)))  # shards that may still send: the rates are split between them

    def rate_share(self, shard: int) -> dict[str, float | None]:
        """This shard's part of the hand-set rate limits: an equal part among the shards still running."""
        count = max(1, len(self.running | {shard}))
        return {name: (None if total is None else total / count) for name, total in self.rates.items()}

    def leave(self, shard: int) -> None:
        """A shard that is done: its part of the rate limits goes to the others at their next look."""
        self.running.discard(shard)

    def claim(self, shard: int) -> dict[str, float | None]:
        """What shard `shard` may spend in all (its share, plus what it was granted, less what it released)."""
        return dict(self.claims[shard])

    def extend(self, shard: int, limit: str, amount: float) -> float:
        """Grant up to `amount` more of `limit` from what no claim holds; 0 when there is none."""
        total = self.limits.get(limit)
        mine = self.claims[shard].get(limit)
        if total is None or mine is None or amount <= 0:
            return 0.0
        free = total - sum(c[limit] or 0 for c in self.claims)
        grant = max(0.0, min(float(amount), free))
        if limit in _WHOLE:
            grant = float(math.floor(grant))
        self.claims[shard][limit] = mine + grant
        return grant

    def release(self, shard: int, unused: dict[str, float]) -> None:
        """Give back what a finished shard did not spend (never more than it holds)."""
        for limit, amount in unused.items():
            mine = self.claims[shard].get(limit)
            if mine is not None and amount > 0:
                self.claims[shard][limit] = mine - min(amount, mine)

    def all_claims(self) -> list[dict[str, float | None]]:
        return [dict(c) for c in self.claims]


class Lease(Protocol):
    """How a shard reaches the pool: in-process, or a Ray actor handle behind `RayLease`."""

    def claim(self) -> dict[str, float | None] | None: ...
    def extend(self, limit: str, amount: float) -> float: ...
    def release(self, unused: dict[str, float]) -> None: ...
    def rate_share(self) -> dict[str, float | None] | None: ...
    def leave(self) -> None: ...


@dataclass(slots=True)
class LocalLease:
    """A lease on a pool in this process (one shard of it)."""

    pool: BudgetPool
    shard: int

    def claim(self) -> dict[str, float | None] | None:
        return self.pool.claim(self.shard)

    def extend(self, limit: str, amount: float) -> float:
        return self.pool.extend(self.shard, limit, amount)

    def release(self, unused: dict[str, float]) -> None:
        self.pool.release(self.shard, unused)

    def rate_share(self) -> dict[str, float | None] | None:
        return self.pool.rate_share(self.shard)

    def leave(self) -> None:
        self.pool.leave(self.shard)


@dataclass(slots=True)
class RayLease:
    """A lease on a `BudgetPool` Ray actor. A lost actor is not an error: the shard keeps the claim it holds."""

    actor: Any
    shard: int
    timeout: float = 30.0
    lost: bool = False

    def _call(self, method: str, *args: Any) -> Any:
        if self.lost:
            return None
        import ray

        try:
            return ray.get(getattr(self.actor, method).remote(self.shard, *args), timeout=self.timeout)
        except Exception as exc:  # the actor died or hangs: fall back to the claim held
            self.lost = True
            log.warning("the run-wide budget actor is lost (%s); this shard keeps its own share", type(exc).__name__)
            return None

    def claim(self) -> dict[str, float | None] | None:
        result: dict[str, float | None] | None = self._call("claim")
        return result

    def extend(self, limit: str, amount: float) -> float:
        return float(self._call("extend", limit, amount) or 0.0)

    def release(self, unused: dict[str, float]) -> None:
        self._call("release", unused)

    def rate_share(self) -> dict[str, float | None] | None:
        result: dict[str, float | None] | None = self._call("rate_share")
        return result

    def leave(self) -> None:
        self._call("leave")


@dataclass(frozen=True, slots=True)
class LeasedBudget(Budget):
    """A shard's budget that grows from a `BudgetPool` when it runs out (see the module docstring)."""

    lease: Lease | None = field(default=None, compare=False)
    spendings: list[LeasedSpending] = field(default_factory=list, compare=False)

    def guard(self, model: str, *, announce: bool = True) -> Spending:
        spending = Budget.guard(self, model, announce=announce)  # not super(): slots=True makes a new class
        if self.lease is None:
            return spending
        leased = LeasedSpending(spending.budget, spending.price, self.lease)
        self.spendings.append(leased)
        return leased

    def release(self) -> None:
        """At the shard's end: give the pool what its claim still holds and was not spent."""
        if self.lease is None:
            return
        for spending in self.spendings:
            self.lease.release(spending.unused())


class LeasedSpending(Spending):
    """A `Spending` that asks its lease for more before it refuses a request."""

    def __init__(self, budget: Budget, price: Any, lease: Lease) -> None:
        super().__init__(budget, price)
        self.lease = lease
        self.shares = {name: getattr(budget, name) for name in LIMITS}

    def _check(self, worst: _Usage, request: Request) -> None:
        while True:
            try:
                super()._check(worst, request)
                return
            except BudgetExceeded as exc:
                if not self._extend(exc.limit, worst):
                    raise

    def _extend(self, limit: str, worst: _Usage) -> bool:
        current = getattr(self.budget, limit)
        share = self.shares[limit]
        if current is None or share is None:
            return False
        need = {"max_samples": 1, "max_tokens": worst.tokens, "max_cost": worst.cost}[limit]
        grant = self.lease.extend(limit, max(float(need), share * _QUANTUM))
        if grant <= 0:
            return False
        grown = current + (int(grant) if limit in _WHOLE else grant)
        self.budget = replace(self.budget, **{limit: grown})
        return True

    def unused(self) -> dict[str, float]:
        """What this run's limits hold beyond what it spent (and still has in flight)."""
        used = {
            "max_samples": self.spent.samples + self.reserved.samples,
            "max_tokens": self.spent.tokens + self.reserved.tokens,
            "max_cost": self.spent.cost + self.reserved.cost,
        }
        out = {}
        for name in LIMITS:
            limit = getattr(self.budget, name)
            if limit is not None and not (name == "max_cost" and self.price is None):
                out[name] = max(0.0, float(limit) - used[name])
        return out


def leased(share: Budget, lease: Lease, *, claimed: bool = True) -> LeasedBudget:
    """A shard's budget that can grow through `lease`.

    claimed: take the limits from the pool's claim for this shard (a retried
    shard's claim may have grown past its share); its share if the pool cannot
    be reached. Otherwise `share`'s limits as they are.
    """
    claim = (lease.claim() or {}) if claimed else {}
    limits = {name: claim.get(name, getattr(share, name)) for name in LIMITS}
    return LeasedBudget(
        max_cost=limits["max_cost"],
        max_samples=_whole(limits["max_samples"]),
        max_tokens=_whole(limits["max_tokens"]),
        prices=share.prices,
        lease=lease,
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


async def follow_rates(lease: Lease, backend: Any, every: float = 5.0) -> None:
    """Keep the backend's governors at this shard's part of the hand-set rate limits, as shards finish.

    Runs beside the shard's run until cancelled. A lost pool leaves the part
    last given (the shards still running never hold more than the limit: a
    part grows only when another shard has left).
    """
    while True:
        share = await anyio.to_thread.run_sync(lease.rate_share)
        if share:
            for governor in governors_of(backend):
                governor.set_hand(share.get("rpm"), share.get("tpm"))
        await anyio.sleep(every)


def governors_of(backend: Any) -> list[Any]:
    """The rate governors behind a backend: its own, or each endpoint's in a fleet."""
    members = getattr(backend, "members", None)
    backends = [m.backend for m in members] if members else [backend]
    return [g for g in (getattr(b, "governor", None) for b in backends) if g is not None]


def pool_for(budget: Budget, shares: list[Budget | None]) -> BudgetPool:
    """The pool for a run-wide budget already split into `shares`."""
    return BudgetPool(budget.describe(), [s.describe() if s is not None else {} for s in shares])
