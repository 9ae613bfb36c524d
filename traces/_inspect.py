"""A readable summary of a trace, read in one streaming pass (`maker trace show`).

What a user asks of a trace without writing code: what ran (the header), how
it went (counts, sessions, the outcome), which steps were hardest, and every
sample of one step.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maker.errors import MakerError, TraceError
from maker.traces._follow import writer_alive
from maker.traces._reader import read_events
from maker.traces._reader_lean import read_lean
from maker.traces._speculation import SpeculationStats

HARDEST = 5
CRASHED = "crashed"  # the last session wrote no end event: the process died (`maker resume` continues it)
RUNNING = "running"  # no end event yet, and a live process holds the writer's lock: it is still being written


@dataclass(slots=True)
class StepDetail:
    """Everything the trace holds about one step, in trace order."""

    step: Hashable
    samples: list[dict[str, Any]] = field(default_factory=list)
    decision: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class TraceSummary:
    """Header, counts and hardest steps of a trace; one step's detail if asked for."""

    path: Path
    header: dict[str, Any]
    events: int = 0
    decisions: int = 0
    llm_decisions: int = 0
    samples: int = 0
    red_flags: int = 0
    late: int = 0
    votes: int = 0
    scored: int = 0
    wrong: int = 0
    step_errors: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    hardest: list[dict[str, Any]] = field(default_factory=list)  # decisions, most rounds (then samples) first
    detail: StepDetail | None = None
    speculation: SpeculationStats = field(default_factory=SpeculationStats)

    outcome: str = ""  # the last session's outcome; "crashed" with no end event, "running" while being written

    def to_json(self) -> dict[str, Any]:
        data = {
            k: getattr(self, k)
            for k in (
                "header",
                "outcome",
                "events",
                "decisions",
                "llm_decisions",
                "samples",
                "red_flags",
                "late",
                "votes",
                "scored",
                "wrong",
                "step_errors",
                "resumes",
                "ends",
                "hardest",
            )
        }
        data["trace"] = str(self.path)
        data["speculation"] = self.speculation.to_json() if self.speculation.speculative else None
        if self.detail is not None:
            d = self.detail
            data["step"] = {"step": d.step, "samples": d.samples, "decision": d.decision, "errors": d.errors}
        return data


def summarize(trace: str | os.PathLike[str], *, step: Hashable | None = None, hardest: int = HARDEST) -> TraceSummary:
    """Read `trace` once and summarise it; with `step`, keep that step's every event too."""
    # Samples and decisions as lean events, which only count; a step's detail shows every field.
    events = read_lean(trace) if step is None else read_events(trace)
    summary = TraceSummary(Path(trace), next(events), events=1)
    detail = StepDetail(step) if step is not None else None
    heap: list[tuple[int, int, int, dict[str, Any]]] = []
    decided: set[Hashable] = set()
    for event in events:
        summary.events += 1
        kind = event["type"]
        summary.speculation.feed(event)
        if kind == "decision":
            if event["step"] in decided:
                raise TraceError(f"{trace}:{summary.events}: step {event['step']!r} is decided twice")
            decided.add(event["step"])
        elif kind == "end":
            _check_end(trace, summary, event, len(decided))
        if detail is not None and event.get("step") == step and kind in ("sample", "decision", "step_error"):
            _keep(detail, event)
        if kind == "sample":
            _count_sample(summary, event)
        elif kind == "decision":
            _count_decision(summary, event, heap, hardest)
        elif kind == "step_error":
            summary.step_errors.append(event)
        elif kind == "resume":
            summary.resumes.append(event)
        elif kind == "end":
            summary.ends.append(event)
        if kind in ("end", "resume"):
            summary.outcome = str(event.get("outcome")) if kind == "end" else ""
    summary.outcome = summary.outcome or (RUNNING if writer_alive(Path(trace)) else CRASHED)
    summary.hardest = [entry[3] for entry in sorted(heap, key=lambda e: e[:3], reverse=True)]
    summary.detail = detail
    return summary


def _check_end(trace: str | os.PathLike[str], summary: TraceSummary, end: dict[str, Any], decided: int) -> None:
    """An `end` line is believed only if the trace agrees with it (it may have been edited)."""
    where = f"{trace}:{summary.events}"
    steps = end["totals"].get("steps")
    if steps is not None and steps != decided:
        raise TraceError(f"{where}: the end line counts {steps} steps decided, the trace decides {decided}")
    outcome = end["outcome"]
    total = _plan_size(summary.header)
    if outcome in ("solved", "failed") and total is not None and decided != total:
        raise TraceError(f"{where}: the end line says {outcome!r}, but the trace decides {decided} of {total} steps")


def _plan_size(header: dict[str, Any]) -> int | None:
    """How many steps the header's task has, if it is a task maker can rebuild (else None)."""
    if header.get("mode", "sequential") != "sequential":
        return None
    task = header.get("task") or {}
    try:
        from maker.tasks._protocol import Chain
        from maker.tasks._registry import build_task

        plan = build_task(str(task.get("name")), **(task.get("params") or {})).plan()
    except (KeyError, ValueError, TypeError, MakerError):  # not rebuildable: nothing to check against
        return None
    return plan.length if isinstance(plan, Chain) else int(plan.number_of_nodes())


def _keep(detail: StepDetail, event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "sample":
        detail.samples.append(event)
    elif kind == "decision":
        detail.decision = event
    else:
        detail.errors.append(event)


def _count_sample(s: TraceSummary, event: dict[str, Any]) -> None:
    s.samples += 1
    if event.get("key") is None:
        s.red_flags += 1
    elif event.get("late"):
        s.late += 1
    else:
        s.votes += 1


def _count_decision(s: TraceSummary, event: dict[str, Any], heap: list[Any], keep: int) -> None:
    s.decisions += 1
    if event.get("kind", "llm") != "llm":
        return
    s.llm_decisions += 1
    if event.get("correct") is not None:
        s.scored += 1
        s.wrong += not event["correct"]
    # (rounds, samples, then earlier steps first) — a bounded heap keeps the top few.
    entry = (int(event.get("rounds", 0)), int(event.get("samples", 0)), -s.llm_decisions, _light(event))
    if len(heap) < keep:
        heapq.heappush(heap, entry)
    elif entry[:3] > heap[0][:3]:
        heapq.heapreplace(heap, entry)


def _light(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in ("step", "winner", "rounds", "samples", "flagged", "votes", "correct")}
