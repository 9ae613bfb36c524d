"""Watching a run from its trace: what `maker watch` shows, computed from the trace alone.

A run that lasts days is started on a server and left alone; the way back
into it is its trace, which any other process (or machine that sees the
file) can read while the run appends to it. A `Watch` reads only the events
added since its last look, never takes the writer's lock, and keeps running
counts, so a snapshot of a million-step run costs what was added since the
last one. A sharded run's manifest is watched as the sum of its shards.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maker._pricing import Price, price_of
from maker.traces._follow import NewLines, new_events, writer_alive
from maker.traces._manifest import is_manifest, read_manifest
from maker.voting import expected_votes

_RATE_WINDOW = 60.0  # seconds of observations behind "steps/s over the last minute"
_RECENT = 1000  # decisions among which the hardest recent steps are found
FINISHED = ("solved", "failed", "measured")


@dataclass(slots=True)
class _Counts:
    """Running counts over one trace's events."""

    header: dict[str, Any] = field(default_factory=dict)
    decisions: int = 0
    samples: int = 0
    red_flags: int = 0
    late: int = 0
    votes: int = 0
    agreeing: int = 0  # valid samples that voted for their step's winner
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    throttled: int = 0
    throttle_s: float = 0.0
    wrong: int = 0
    scored: int = 0
    sessions: int = 0
    ended: dict[str, Any] | None = None
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_RECENT))

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "sample":
            self._sample(event)
        elif kind == "decision":
            self._decision(event)
        elif kind == "header":
            self.header, self.sessions = event, 1
        elif kind == "resume":
            self.ended, self.sessions = None, self.sessions + 1
        elif kind == "end":
            self.ended = event
        elif kind in ("throttle", "governor", "rate_limit"):
            self.throttled += 1
            self.throttle_s += _number(event.get("pause_s") or event.get("wait_s"))

    def _sample(self, e: dict[str, Any]) -> None:
        self.samples += 1
        self.tokens_in += int(_number(e.get("tokens_in")))
        self.tokens_out += int(_number(e.get("tokens_out")))
        self.retries += int(_number(e.get("retries")))
        if e.get("late"):
            self.late += 1
        elif e.get("flag"):
            self.red_flags += 1

    def _decision(self, e: dict[str, Any]) -> None:
        self.decisions += 1
        votes = e.get("votes")
        if isinstance(votes, dict):
            counted = [int(_number(n)) for n in votes.values()]
            self.votes += sum(counted)
            self.agreeing += int(_number(votes.get(e.get("winner"))))
        if e.get("correct") is not None:
            self.scored += 1
            self.wrong += e.get("correct") is False
        if e.get("kind") != "python":
            self.recent.append(
                {"step": e.get("step"), "rounds": e.get("rounds"), "samples": e.get("samples"), "votes": e.get("votes")}
            )


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class Watch:
    """Follows one trace, or a manifest's shards; `snapshot()` says where the run stands now."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = is_manifest(self.path)
        self._traces = self._shard_paths() if self.manifest else [self.path]
        self._lines = {p: NewLines(p) for p in self._traces}
        self._counts = {p: _Counts() for p in self._traces}
        self._seen: deque[tuple[float, int]] = deque()
        self._start = time.monotonic()
        self._first: int | None = None
        self._total: int | bool | None = False  # False: not worked out yet

    def _shard_paths(self) -> list[Path]:
        data = read_manifest(self.path)
        return [self.path.parent / Path(str(s["trace"])).name for s in data["shards"]]

    def poll(self) -> dict[str, Any]:
        """Read what was added, and return a snapshot (a plain dict, JSON-ready)."""
        for path, lines in self._lines.items():
            counts = self._counts[path]
            for event in new_events(lines):
                counts.add(event)
        return self._snapshot(time.monotonic())

    def _snapshot(self, now: float) -> dict[str, Any]:
        all_counts = list(self._counts.values())
        steps = sum(c.decisions for c in all_counts)
        if self._first is None:
            self._first = steps
        self._seen.append((now, steps))
        while len(self._seen) > 2 and now - self._seen[0][0] > _RATE_WINDOW:
            self._seen.popleft()
        header = next((c.header for c in all_counts if c.header), {})
        total = self._total_steps(header)
        rate_recent = _rate(self._seen)
        alive = [writer_alive(p) for p in self._traces if p.exists()]
        ended = [c.ended for c in all_counts]
        samples = sum(c.samples for c in all_counts)
        valid = sum(c.votes for c in all_counts)
        price = price_of(str(header.get("model", ""))) if header else None
        cost = _cost(price, all_counts)
        k = (header.get("voting") or {}).get("k") if isinstance(header.get("voting"), dict) else None
        p_hat = sum(c.agreeing for c in all_counts) / valid if valid else None
        return {
            "trace": str(self.path),
            "task": (header.get("task") or {}).get("name") if isinstance(header.get("task"), dict) else None,
            "model": header.get("model"),
            "mode": header.get("mode"),
            "steps": steps,
            "total_steps": total,
            "steps_per_s_recent": rate_recent,
            "steps_per_s_watched": _watched_rate(self._first, steps, now - self._start),
            "eta_s": (total - steps) / rate_recent if total and rate_recent else None,
            "samples": samples,
            "red_flags": sum(c.red_flags for c in all_counts),
            "red_flag_rate": sum(c.red_flags for c in all_counts) / samples if samples else None,
            "votes_per_step": valid / steps if steps else None,
            "votes_per_step_theory": _theory(p_hat, k),
            "p_agree": p_hat,
            "errors": sum(c.wrong for c in all_counts),
            "scored": sum(c.scored for c in all_counts),
            "tokens_in": sum(c.tokens_in for c in all_counts),
            "tokens_out": sum(c.tokens_out for c in all_counts),
            "cost_usd": cost,
            "cost_projected_usd": cost * total / steps if cost is not None and total and steps else None,
            "retries": sum(c.retries for c in all_counts),
            "throttled": sum(c.throttled for c in all_counts),
            "throttled_s": round(sum(c.throttle_s for c in all_counts), 3),
            "hardest_recent": _hardest(all_counts),
            "sessions": max((c.sessions for c in all_counts), default=0),
            "writer": _writer(alive, ended),
            "outcome": _outcome(ended),
            "shards": len(self._traces) if self.manifest else None,
        }

    def _total_steps(self, header: dict[str, Any]) -> int | None:
        if self._total is not False or not header:
            return self._total if self._total is not False else None
        self._total = _total_of(header, self.manifest, self._counts.values())
        return self._total

    @property
    def finished(self) -> bool:
        """Every trace has ended (its last session wrote an end event)."""
        return all(c.ended is not None for c in self._counts.values())


def _total_of(header: dict[str, Any], manifest: bool, counts: Any) -> int | None:
    """How many steps the whole run has: from the header, or from the task it names."""
    if header.get("mode") == "independent":
        if manifest:
            return sum(int(c.header.get("steps_evaluated") or 0) for c in counts) or None
        return int(header.get("steps_evaluated") or 0) or None
    try:
        from maker._history import task_of
        from maker.tasks._protocol import Chain

        plan = task_of(header).plan()
    except Exception:  # a custom DAG, or a task this install lacks: the total is unknown, not an error
        return None
    return plan.length if isinstance(plan, Chain) else plan.number_of_nodes()


def _rate(seen: deque[tuple[float, int]]) -> float | None:
    if len(seen) < 2 or seen[-1][0] <= seen[0][0]:
        return None
    return (seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0])


def _watched_rate(first: int | None, steps: int, elapsed: float) -> float | None:
    return (steps - (first or 0)) / elapsed if elapsed > 1.0 else None


def _theory(p: float | None, k: Any) -> float | None:
    if p is None or not isinstance(k, int) or not 0.0 < p <= 1.0:
        return None
    return expected_votes(p, k) if p != 0.5 else float(k * k)


def _cost(price: Price | None, counts: list[_Counts]) -> float | None:
    if price is None:
        return None
    return price.cost(sum(c.tokens_in for c in counts), sum(c.tokens_out for c in counts))


def _hardest(counts: list[_Counts], n: int = 5) -> list[dict[str, Any]]:
    recent = [d for c in counts for d in c.recent]
    return sorted(recent, key=lambda d: (_number(d.get("rounds")), _number(d.get("samples"))), reverse=True)[:n]


def _writer(alive: list[bool | None], ended: list[dict[str, Any] | None]) -> str:
    """running, ended, gone (no writer and no end: crashed or killed), or unknown."""
    if any(a is True for a in alive):
        return "running"
    if ended and all(e is not None for e in ended):
        return "ended"
    if alive and all(a is False for a in alive):
        return "gone"
    return "unknown"


def _outcome(ended: list[dict[str, Any] | None]) -> str | None:
    outcomes = {str(e.get("outcome")) for e in ended if e is not None}
    if not ended or any(e is None for e in ended):
        return None
    if len(outcomes) == 1:
        return outcomes.pop()
    unfinished = sorted(o for o in outcomes if o not in FINISHED)
    return unfinished[0] if unfinished else "failed"
