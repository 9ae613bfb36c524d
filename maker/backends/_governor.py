"""A rate governor per endpoint: send at the provider's limit, not into it.

Providers limit requests and tokens a minute. A client that ignores that
sends at its in-flight limit, meets 429s, and backs off blindly per request
(a third of all requests were 429s in the measurement that prompted this).
The governor holds every request of one endpoint in one line (first come,
first served) and lets the head go when

- the endpoint is not paused (a 429 pauses all of it, not just one request),
- fewer requests than the in-flight ceiling are out, and
- the request bucket has one request and the token bucket the request's
  weight (its input estimate plus `max_tokens`, which is what providers count).

Buckets refill continuously at `limit / window` (window: 60 s). Their sizes
come from `x-ratelimit-limit-*` when the server sends them (or from `rpm` /
`tpm` given by hand, which cap what headers say), and their levels follow
`x-ratelimit-remaining-*` (taken only when lower than our own count, so a
stale header never lets more through). `x-ratelimit-reset-*` is the time until
the bucket is full again, not a wait, and is only recorded.

A 429 pauses the endpoint for Retry-After / retry-after-ms, else for the
"try again in 289ms" hint in the body, else by exponential backoff (none when
there is a bucket: rate headers on the 429, or a 429 against a hand-set
limit, empty it, and the empty bucket then paces the line).
It also halves the in-flight ceiling, at most once per round of requests sent;
the ceiling then grows back by one per ceiling's worth of successes (AIMD),
after starting by doubling each round (slow start) until the first throttle.

Every change worth knowing (limits learned, pauses, ceiling moves) goes to an
`emit` callback as a `governor` trace event, with running totals of where the
head of the line waited; replay ignores them and `maker analyze` sums them.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from random import Random
from typing import Any

import anyio

Emit = Callable[[dict[str, Any]], None]

DEFAULT_WINDOW = 60.0  # seconds a provider's limits are counted over
DEFAULT_START = 16  # in-flight ceiling before anything is known (maker's old fixed default)
DEFAULT_MOST = 4096  # the ceiling's roof, and the connection pool's size (Tier 5 at 7.9 s a call needs about 4,000)
_SUMMARY_EVERY = 5.0  # seconds between running-total events while nothing else happens

# -- parsing what servers say ----------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_GO_DURATION = re.compile(rf"(?:{_GO_PART})+")
_GO_PARTS = re.compile(_GO_PART)
_HINTS = (
    re.compile(r"try again in\s+((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)", re.IGNORECASE),
    re.compile(r"try again in\s+(\d+(?:\.\d+)?)\s*(milliseconds?|seconds?|minutes?)", re.IGNORECASE),
)
_WORD_UNITS = {"millisecond": 1e-3, "second": 1.0, "minute": 60.0}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go-style duration (`6m0s`, `12ms`, `1h2m3.5s`) or a plain number of seconds; None if not one."""
    if text is None:
        return None
    raw = text.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        if not _GO_DURATION.fullmatch(raw):
            return None
        value = sum(float(number) * _UNITS[unit] for number, unit in _GO_PARTS.findall(raw))
    return value if math.isfinite(value) and value >= 0 else None


def body_hint(text: str | None) -> float | None:
    """The wait in an error body's "Please try again in 289ms" / "in 1.5s" / "in 20 seconds", or None."""
    if not text:
        return None
    found = _HINTS[0].search(text)
    if found:
        return parse_duration(found.group(1))
    found = _HINTS[1].search(text)
    if found:
        unit = found.group(2).lower().rstrip("s")
        return float(found.group(1)) * _WORD_UNITS[unit]
    return None


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """The `x-ratelimit-*` headers of one reply; a field is None where absent or garbage."""

    limit_requests: float | None = None
    limit_tokens: float | None = None
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests: float | None = None  # seconds until the bucket is full again
    reset_tokens: float | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__slots__)


def parse_rate_headers(headers: Mapping[str, str] | None) -> RateHeaders:
    """The rate-limit headers in `headers` (names in any case)."""
    if not headers:
        return RateHeaders()
    lower = {k.lower(): v for k, v in headers.items()}
    return RateHeaders(
        limit_requests=_number(lower.get("x-ratelimit-limit-requests")),
        limit_tokens=_number(lower.get("x-ratelimit-limit-tokens")),
        remaining_requests=_number(lower.get("x-ratelimit-remaining-requests")),
        remaining_tokens=_number(lower.get("x-ratelimit-remaining-tokens")),
        reset_requests=parse_duration(lower.get("x-ratelimit-reset-requests")),
        reset_tokens=parse_duration(lower.get("x-ratelimit-reset-tokens")),
    )


def go_duration(seconds: float) -> str:
    """`seconds` the way OpenAI writes durations: `12ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"


# -- buckets ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Bucket:
    """`capacity` units refilling at `rate` a second; the level may go below zero (debt) but never above."""

    capacity: float
    rate: float
    level: float
    stamp: float

    @classmethod
    def full(cls, limit: float, window: float, now: float) -> Bucket:
        return cls(limit, limit / window, limit, now)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def wait(self, amount: float, now: float) -> float:
        """Seconds until `amount` (at most a full bucket) is there."""
        self.refill(now)
        short = min(amount, self.capacity) - self.level
        return 0.0 if short <= 0 else short / self.rate

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= min(amount, self.capacity)

    def give_back(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level = min(self.capacity, self.level + min(amount, self.capacity))

    def resize(self, limit: float, window: float, now: float) -> None:
        self.refill(now)
        self.level = min(limit, self.level + max(0.0, limit - self.capacity))
        self.capacity, self.rate = limit, limit / window

    def observe(self, remaining: float, now: float) -> None:
        """The server's count, taken only when lower than ours (a stale header never lets more through)."""
        self.refill(now)
        self.level = min(self.level, remaining)


# -- the governor ----------------------------------------------------------------------------


@dataclass(slots=True)
class Ticket:
    """One request's pass through the line: when it went, and in which round of the ceiling."""

    waited: float
    generation: int
    tokens: int
    sent_at: float = 0.0
    sent_before: tuple[int, int] = (0, 0)  # requests and tokens let through before it (for stale headers)


@dataclass(slots=True)
class GovernorStats:
    """Running totals: requests let through, throttles met, and where the head of the line waited (s)."""

    requests: int = 0
    throttled: int = 0
    waited: dict[str, float] = field(default_factory=lambda: {"pause": 0.0, "requests": 0.0, "tokens": 0.0})
    ceiling_waited: float = 0.0


class Governor:
    """The line in front of one endpoint. `async with governor.slot(tokens) as ticket:` around each attempt.

    rpm / tpm: limits by hand (for servers that send no headers; they cap header limits).
    window: seconds limits are counted over (60 for every provider; shorter only for quick tests).
    start / most: the in-flight ceiling before anything is known, and its roof.
    fixed: keep the ceiling at `most`, no AIMD.
    backoff / backoff_max: the pause after a 429 that says nothing, doubling per 429 in a row.
    pause_max: the longest pause a server's hint can ask for.
    """

    def __init__(
        self,
        where: str = "",
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        window: float = DEFAULT_WINDOW,
        start: int = DEFAULT_START,
        most: int = DEFAULT_MOST,
        fixed: bool = False,
        backoff: float = 0.25,
        backoff_max: float = 20.0,
        pause_max: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {window}")
        self.where = where
        self.window = window
        self.most = max(1, most)
        self.fixed = fixed
        self.ceiling = float(self.most if fixed else min(max(1, start), self.most))
        self.in_flight = 0
        self.paused_until = 0.0
        self.stats = GovernorStats()
        self._clock = clock
        self._t0 = clock()
        self._hand = {"requests": rpm, "tokens": tpm}
        self.buckets: dict[str, Bucket] = {}
        for kind, limit in self._hand.items():
            if limit is not None:
                if limit <= 0:
                    raise ValueError(f"{'rpm' if kind == 'requests' else 'tpm'} must be > 0, got {limit}")
                self.buckets[kind] = Bucket.full(limit, window, self._t0)
        self._line = anyio.Lock()
        self._freed = anyio.Event()
        self._generation = 0
        self._slow_start = not fixed
        self._strikes = 0
        self._backoff, self._backoff_max, self._pause_max = backoff, backoff_max, pause_max
        self._rng = Random(seed)
        self._emit: Emit | None = None
        self._last_event = self._t0
        self._learned: dict[str, float] = {}
        self._tokens_sent = 0

    # -- events -----------------------------------------------------------------------------

    def watch(self, emit: Emit | None) -> None:
        """Send events to `emit` from now on; `None` sends a last running total and stops."""
        if emit is None and self._emit is not None:
            self._event("totals")
        self._emit = emit
        if emit is not None:
            self._event("start", rpm=self._hand["requests"], tpm=self._hand["tokens"], window=self.window)

    def _event(self, kind: str, **fields: Any) -> None:
        now = self._clock()
        self._last_event = now
        if self._emit is None:
            return
        s = self.stats
        self._emit(
            {
                "type": "governor",
                "event": kind,
                "endpoint": self.where,
                "t": round(now - self._t0, 3),
                "ceiling": int(self.ceiling),
                "in_flight": self.in_flight,
                "requests": s.requests,
                "throttled": s.throttled,
                "waited": {k: round(v, 3) for k, v in s.waited.items()},
                "ceiling_waited": round(s.ceiling_waited, 3),
                **fields,
            }
        )

    # -- the line ---------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[Ticket]:
        """Wait for this request's turn; held while it is out."""
        start = self._clock()
        async with self._line:
            await self._wait_turn(tokens)
            now = self._clock()
            before = (self.stats.requests, self._tokens_sent)
            self._tokens_sent += tokens
            self.in_flight += 1
            self.stats.requests += 1
            for kind, amount in (("requests", 1), ("tokens", tokens)):
                if kind in self.buckets:
                    self.buckets[kind].take(amount, now)
        ticket = Ticket(now - start, self._generation, tokens, now, before)
        try:
            yield ticket
        finally:
            self.in_flight -= 1
            self._freed.set()
            if self._clock() - self._last_event > _SUMMARY_EVERY:
                self._event("totals")

    async def _wait_turn(self, tokens: int) -> None:
        while True:
            now = self._clock()
            reason, delay = "pause", self.paused_until - now
            for kind, amount in (("requests", 1), ("tokens", tokens)):
                bucket = self.buckets.get(kind)
                wait = bucket.wait(amount, now) if bucket else 0.0
                if wait > delay:
                    reason, delay = kind, wait
            if delay > 0:
                await anyio.sleep(delay)
                self.stats.waited[reason] += self._clock() - now
                continue
            if self.in_flight >= max(1, int(self.ceiling)):
                self._freed = anyio.Event()
                await self._freed.wait()
                self.stats.ceiling_waited += self._clock() - now
                continue
            return

    # -- what came back ---------------------------------------------------------------------

    def observe(self, headers: Mapping[str, str] | None, ticket: Ticket | None = None) -> RateHeaders:
        """Take the rate-limit headers of any reply (200 or not) into the buckets.

        With the reply's `ticket`, `remaining` is read as of when its request was
        sent, not now: the server counted it somewhere in between, it has refilled
        since, and it may not yet count what we sent after. Read as of now, every
        reply would shave a little off the bucket, and a paced run would fall
        behind its limit. Without a ticket (a 429) it is taken as it stands.
        """
        seen = parse_rate_headers(headers)
        if not seen.any:
            return seen
        now = self._clock()
        for kind, limit, remaining in (
            ("requests", seen.limit_requests, seen.remaining_requests),
            ("tokens", seen.limit_tokens, seen.remaining_tokens),
        ):
            if limit is not None and limit > 0:
                self._learn(kind, limit, now)
            bucket = self.buckets.get(kind)
            if remaining is None or bucket is None:
                continue
            if ticket is not None:
                sent = (self.stats.requests, self._tokens_sent)
                since = sent[0] - ticket.sent_before[0] - 1 if kind == "requests" else sent[1] - ticket.sent_before[1]
                since -= ticket.tokens if kind == "tokens" else 0
                remaining += 1 + bucket.rate * max(0.0, now - ticket.sent_at) - max(0, since)
            bucket.observe(remaining, now)
        return seen

    def set_hand(self, rpm: float | None, tpm: float | None) -> None:
        """New hand-set limits (a shard whose share of the endpoint's limits changed); None keeps one as it is."""
        now = self._clock()
        for kind, limit in (("requests", rpm), ("tokens", tpm)):
            if limit is None or limit <= 0 or limit == self._hand[kind]:
                continue
            self._hand[kind] = limit
            learned = self._learned.get(kind)
            wanted = min(limit, learned) if learned is not None else limit
            bucket = self.buckets.get(kind)
            if bucket is None:
                self.buckets[kind] = Bucket.full(wanted, self.window, now)
            else:
                bucket.resize(wanted, self.window, now)
            self._event("limits", **{"rpm" if kind == "requests" else "tpm": wanted})

    def _learn(self, kind: str, limit: float, now: float) -> None:
        hand = self._hand[kind]
        limit = min(limit, hand) if hand is not None else limit
        if self._learned.get(kind) == limit:
            return
        self._learned[kind] = limit
        bucket = self.buckets.get(kind)
        if bucket is None:
            self.buckets[kind] = Bucket.full(limit, self.window, now)
        else:
            bucket.resize(limit, self.window, now)
        self._event("limits", **{"rpm" if kind == "requests" else "tpm": limit})

    def succeeded(self, ticket: Ticket) -> None:
        """A reply: the backoff resets, and a ceiling that was reached grows."""
        self._strikes = 0
        if self.fixed or self.in_flight + 1 < int(self.ceiling):
            return
        before = int(self.ceiling)
        step = 1.0 if self._slow_start else 1.0 / max(1.0, self.ceiling)
        self.ceiling = min(float(self.most), self.ceiling + step)
        if int(self.ceiling) != before and (int(self.ceiling) & (int(self.ceiling) - 1) == 0 or not self._slow_start):
            self._event("ceiling", reason="grow")

    def throttled(self, ticket: Ticket, headers: Mapping[str, str] | None, hint: float | None) -> float:
        """A 429: pause the endpoint, halve the ceiling once per round; returns the pause (s).

        The pause is the server's hint if it gave one. Otherwise rate headers on
        the 429 have emptied the bucket, which paces the line; failing those, a
        bucket set by hand is emptied (the server counts less than we thought);
        with no bucket at all, the pause backs off, doubling each round of 429s.
        """
        now = self._clock()
        self.stats.throttled += 1
        seen = self.observe(headers)
        fresh = ticket.generation == self._generation  # the first 429 of requests sent since the last
        if fresh:
            self._generation += 1
            self._strikes += 1
            self._slow_start = False
            if not self.fixed:
                self.ceiling = max(1.0, self.ceiling / 2)
        if hint is not None:
            pause, reason = min(max(0.0, hint), self._pause_max), "retry-after"
        elif seen.any:
            pause, reason = 0.0, "headers"
        elif self.buckets:
            for bucket in self.buckets.values():
                bucket.observe(0.0, now)
            pause, reason = 0.0, "bucket"
        else:
            base = min(self._backoff_max, self._backoff * 2.0 ** min(max(0, self._strikes - 1), 30))
            pause, reason = base * (0.5 + 0.5 * self._rng.random()), "backoff"
        if now + pause > self.paused_until:
            self.paused_until = now + pause
        self._event("pause", seconds=round(pause, 3), reason=reason)
        return pause

    def congested(self, ticket: Ticket) -> None:
        """An overloaded server (503, a timeout): halve the ceiling once per round, no pause."""
        if ticket.generation == self._generation:
            self._generation += 1
            self._slow_start = False
            if not self.fixed:
                self.ceiling = max(1.0, self.ceiling / 2)
                self._event("ceiling", reason="congested")

    def refund(self, ticket: Ticket) -> None:
        """A request the server never counted (refused before it arrived): its units go back."""
        now = self._clock()
        for kind, amount in (("requests", 1), ("tokens", ticket.tokens)):
            if kind in self.buckets:
                self.buckets[kind].give_back(amount, now)


__all__ = [
    "Bucket",
    "Governor",
    "GovernorStats",
    "RateHeaders",
    "Ticket",
    "body_hint",
    "go_duration",
    "parse_duration",
    "parse_rate_headers",
]
