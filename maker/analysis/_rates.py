"""Where a run's time went at the endpoint, and what the prefix cache saved, from a trace in one pass.

A governed `openai/` backend writes `governor` events: limits learned, pauses
after a 429, ceiling moves, and running totals of how long the head of its
line waited and on what (a pause, the request bucket, the token bucket, the
in-flight ceiling). The last event of each endpoint holds its totals. Samples
carry `cached_tokens` where the server reported them; where it did not, the
hit rate is unknown, not zero.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RateStats:
    """Per-endpoint governor totals, 429 pauses by reason, and cached prompt tokens."""

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint → its last governor event
    limits: dict[str, dict[str, float]] = field(default_factory=dict)  # endpoint → {"rpm": …, "tpm": …}
    pauses: Counter[str] = field(default_factory=Counter)  # reason → 429s
    paused_s: float = 0.0  # pauses announced (they overlap when 429s come together)
    samples: int = 0
    reported: int = 0  # samples whose server reported cached tokens
    reported_in: int = 0  # their prompt tokens
    cached: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)  # samples per endpoint (several endpoints only)

    def feed(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "sample":
            self._sample(event)
        elif kind == "governor":
            self._governor(event)

    def _sample(self, e: dict[str, Any]) -> None:
        self.count_sample(e.get("cached_tokens"), int(e.get("tokens_in") or 0), e.get("endpoint"))

    def count_sample(self, cached: Any, tokens_in: int, endpoint: Any) -> None:
        """One sample's cache report and endpoint (also for the analysis's lean samples)."""
        self.samples += 1
        if type(cached) is int and cached >= 0:
            self.reported += 1
            self.reported_in += tokens_in
            self.cached += cached
        if isinstance(endpoint, str):
            self.by_endpoint[endpoint] += 1

    def _governor(self, e: dict[str, Any]) -> None:
        where = str(e.get("endpoint", ""))
        self.endpoints[where] = e
        if e.get("event") == "limits":
            for name in ("rpm", "tpm"):
                if isinstance(e.get(name), int | float):
                    self.limits.setdefault(where, {})[name] = float(e[name])
        elif e.get("event") == "pause":
            self.pauses[str(e.get("reason", "?"))] += 1
            seconds = e.get("seconds")
            self.paused_s += float(seconds) if isinstance(seconds, int | float) else 0.0

    @property
    def governed(self) -> bool:
        return bool(self.endpoints)

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of reported prompt tokens the cache served; None when no sample reported it."""
        return self.cached / self.reported_in if self.reported and self.reported_in else None

    def waited(self) -> dict[str, float]:
        """Seconds the endpoints' lines waited, by cause, summed over endpoints."""
        out: dict[str, float] = {}
        for e in self.endpoints.values():
            for cause, seconds in (e.get("waited") or {}).items():
                if isinstance(seconds, int | float):
                    out[cause] = out.get(cause, 0.0) + float(seconds)
            if isinstance(e.get("ceiling_waited"), int | float):
                out["ceiling"] = out.get("ceiling", 0.0) + float(e["ceiling_waited"])
        return out

    def throttled(self) -> int:
        return sum(int(e.get("throttled") or 0) for e in self.endpoints.values())

    def requests(self) -> int:
        return sum(int(e.get("requests") or 0) for e in self.endpoints.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "governed": self.governed,
            "endpoints": {
                where: {
                    "requests": e.get("requests"),
                    "throttled": e.get("throttled"),
                    "ceiling": e.get("ceiling"),
                    "waited": e.get("waited"),
                    "ceiling_waited": e.get("ceiling_waited"),
                    "limits": self.limits.get(where, {}),
                }
                for where, e in self.endpoints.items()
            },
            "pauses": dict(self.pauses),
            "paused_s": round(self.paused_s, 3),
            "waited": {k: round(v, 3) for k, v in self.waited().items()},
            "cached_tokens": self.cached if self.reported else None,
            "cache_reported_samples": self.reported,
            "cache_hit_rate": self.cache_hit_rate,
            "samples_by_endpoint": dict(self.by_endpoint),
        }


def rate_line(r: RateStats, wall: float | None) -> str:
    """Where the endpoint time went, in one sentence."""
    waited = r.waited()
    limited = waited.get("pause", 0.0) + waited.get("requests", 0.0) + waited.get("tokens", 0.0)
    share = f" of {wall:,.1f} s wall ({limited / wall:.0%})" if wall else ""
    parts = ", ".join(
        f"{name} {waited.get(key, 0.0):,.1f} s"
        for key, name in (("pause", "429 pauses"), ("requests", "RPM"), ("tokens", "TPM"), ("ceiling", "ceiling"))
    )
    limits = "; ".join(
        ", ".join(f"{v:,.0f} {k.upper()}" for k, v in sorted(found.items())) for found in r.limits.values() if found
    )
    learned = f"; limits {limits}" if limits else ""
    return (
        f"held back {limited:,.1f} s{share} ({parts}); {r.throttled():,} of {r.requests():,} requests "
        f"answered 429{learned}"
    )


def cache_line(r: RateStats) -> str:
    rate = r.cache_hit_rate
    if rate is None:
        return "unknown (the server reported no cached tokens)"
    partial = "" if r.reported == r.samples else f"; {r.reported:,} of {r.samples:,} samples reported it"
    return f"{rate:.1%} of prompt tokens ({r.cached:,} of {r.reported_in:,}{partial})"


@dataclass(frozen=True, slots=True)
class WideTime:
    """Wall time of wide work (independent steps, calibration, many problems) at a provider's rate limits.

    Wide work is rate-bound, not latency-bound: with enough requests in flight
    it runs at the limit, requests / RPM or (requests × tokens each) / TPM,
    whichever is longer. TPM counts each request's prompt plus its whole
    `max_tokens` reservation, not the tokens it ends up using. The in-flight
    requests this needs are rate × latency (Little's law); the governor finds
    them itself.
    """

    requests: float
    rpm: float | None
    tpm: float | None
    tokens_per_request: float  # prompt + max_tokens: what TPM counts
    latency: float | None = None

    @property
    def by_requests_s(self) -> float | None:
        return None if self.rpm is None else self.requests / self.rpm * 60.0

    @property
    def by_tokens_s(self) -> float | None:
        return None if self.tpm is None else self.requests * self.tokens_per_request / self.tpm * 60.0

    @property
    def seconds(self) -> float:
        return max(t for t in (self.by_requests_s, self.by_tokens_s, 0.0) if t is not None)

    @property
    def bound(self) -> str:
        r, t = self.by_requests_s or 0.0, self.by_tokens_s or 0.0
        return "RPM" if r >= t else "TPM"

    @property
    def in_flight(self) -> float | None:
        """Requests out at once to run at the limit: the request rate times the latency."""
        if self.latency is None or not self.seconds:
            return None
        return self.requests / self.seconds * self.latency

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "tokens_per_request": self.tokens_per_request,
            "by_requests_s": self.by_requests_s,
            "by_tokens_s": self.by_tokens_s,
            "wall_s": self.seconds,
            "bound": self.bound,
            "in_flight_needed": self.in_flight,
            "shape": "wide",
        }


def wide_time(
    requests: float, rpm: float | None, tpm: float | None, tokens_per_request: float, latency: float | None = None
) -> WideTime:
    from maker.errors import ConfigError

    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")
    if rpm is None and tpm is None:
        raise ConfigError("wide-work wall time needs --rpm or --tpm")
    return WideTime(requests, rpm, tpm, tokens_per_request, latency)


__all__ = ["RateStats", "WideTime", "cache_line", "rate_line", "wide_time"]
