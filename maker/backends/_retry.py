"""The one transport-retry layer (tenacity), for every HTTP model backend.

What is retried: connection errors, timeouts, unreadable response bodies, and
HTTP 408, 409, 429 and 5xx. Waits grow exponentially with jitter up to a cap;
a server that says how long to wait (`retry-after-ms`, then `Retry-After` in
seconds or as an HTTP date) is obeyed, up to `retry_after_max`. Everything
else (400, 401, 403, 404, 422 ...) fails at once: a bad key or a wrong model
name must stop a run on its first request, not after a million retries.

Transport retries are not resampling: a red-flagged reply is a fine transport
result, and voting decides whether to draw another sample.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from random import Random
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from maker.errors import ConfigError

T = TypeVar("T")

# Statuses worth another try: the server is busy, overloaded, or restarting.
RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transport failures are retried.

    max_attempts: tries per request in all (1 = never retry).
    backoff / backoff_max: first wait and the cap of the exponential waits (s).
    jitter: share of each exponential wait that is random (0 = none, 1 = full).
    retry_after_max: the longest server-requested wait obeyed (s); longer
        requests are shortened to it rather than refused.
    """

    max_attempts: int = 8
    backoff: float = 0.5
    backoff_max: float = 20.0
    jitter: float = 0.5
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("backoff", "backoff_max", "retry_after_max"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be in [0, 1], got {self.jitter}")

    def backoff_wait(self, retry: int, rng: Random) -> float:
        """The wait before retry number `retry` (1-based) when the server gave no hint."""
        base = min(self.backoff_max, self.backoff * 2.0 ** min(retry - 1, 60))
        return base * (1 - self.jitter) + base * self.jitter * rng.random()

    def wait_for(self, retry: int, hint: float | None, rng: Random) -> float:
        """The wait before retry `retry`: the server's hint (capped) if it gave one."""
        if hint is not None:
            return min(max(hint, 0.0), self.retry_after_max)
        return self.backoff_wait(retry, rng)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to happen: which attempt failed, why, and how long we wait."""

    attempt: int
    reason: str
    wait: float
    retry_after: float | None


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None (absent, garbage, or in the past)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = lower.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except ValueError:
            continue
        return value if math.isfinite(value) and value >= 0 else None
    raw = lower.get("retry-after")
    parsed = email.utils.parsedate_tz(raw) if raw else None
    if parsed is None:
        return None
    delta = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
    return delta if delta >= 0 else None


def status_is_transient(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


Classify = Callable[[BaseException], "tuple[bool, str, float | None]"]


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    classify: Classify,
    *,
    rng: Random | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
) -> tuple[T, int]:
    """Run `call` under `policy`; return its result and the retries it took.

    `classify(exc)` says (transient?, short reason, server's Retry-After or
    None). A permanent error is re-raised at once; a transient one after the
    last attempt. Sleeping goes through anyio, so cancellation works.
    """
    rng = rng or Random()

    def retryable(exc: BaseException) -> bool:
        return classify(exc)[0]

    def hint_of(state: RetryCallState) -> tuple[str, float | None]:
        exc = state.outcome.exception() if state.outcome else None
        return classify(exc)[1:] if exc else ("unknown", None)

    def wait(state: RetryCallState) -> float:
        return policy.wait_for(state.attempt_number, hint_of(state)[1], rng)

    def before_sleep(state: RetryCallState) -> None:
        # Called only when a retry will really happen (after the stop check).
        if on_retry is not None:
            reason, hint = hint_of(state)
            on_retry(RetryEvent(state.attempt_number, reason, state.upcoming_sleep, hint))

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception(retryable),
        sleep=anyio.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    async for attempt in retrying:
        with attempt:
            attempts = attempt.retry_state.attempt_number
            result = await call()
    return result, attempts - 1


__all__ = ["RetryEvent", "RetryPolicy", "call_with_retries", "parse_retry_after", "status_is_transient"]
