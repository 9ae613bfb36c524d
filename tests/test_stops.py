"""When a run stops with requests out: every reply that lands is recorded, the rest are counted, and the real
error is the one reported.

- A budget stop lets the requests already sent land and be judged before the run ends: each is paid for, so
  each is a sample in the trace (the probe lost one or two per stop at high concurrency).
- A request cancelled while out (Ctrl-C, an error elsewhere) cannot be recorded; it is counted in the totals
  as `lost` (possibly paid for).
- A step that fails while another of its samples is landing reports its own error, and the landing sample is
  kept (the probe saw `anyio.ClosedResourceError` instead): as a plain sample, not a late one, since its step
  was never decided, so a resume reuses it and a replay counts it alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from _scripted import ScriptedBackend, WordStep, one_step_graph, settle, vote

import maker
from maker import Budget
from maker.backends import Completion, Request, SimServerConfig, open_backend, serve_sim
from maker.errors import BudgetExceeded, StepFailed
from maker.tasks import build_task
from maker.traces import load_trace
from maker.voting import AheadByK, Voting

pytestmark = pytest.mark.timeout(60)


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [97, 150, 201])
async def test_a_budget_stop_at_concurrency_64_records_every_request_it_sent(tmp_path: Path, limit: int):
    config = SimServerConfig(profile="gpt-4.1-mini?latency=0.004&latency_sigma=1.0", seed=limit)
    async with serve_sim(config) as server:
        http = open_backend("openai/gpt-4.1-mini", base_url=server.base_url, api_key="sk-test")
        try:
            result = await maker.arun(
                build_task("hanoi", disks=10),
                backend=http,
                voting=Voting(rule=AheadByK(6)),  # wide rounds: many samples of a step out at once
                settings=maker.RunSettings(concurrency=64),
                budget=Budget(max_samples=limit),
                trace=tmp_path / "t.jsonl",
            )
        finally:
            await http.aclose()
        sent = server.stats.chat_requests
    trace = load_trace(tmp_path / "t.jsonl")
    assert isinstance(result.error, BudgetExceeded)
    assert sent == len(trace.samples) == result.totals.samples == limit
    assert result.totals.lost == 0 and trace.end["totals"]["lost"] == 0


@pytest.mark.anyio
async def test_a_run_stopped_by_its_budget_with_samples_out_resumes_and_replays_exactly(tmp_path: Path):
    """Samples in flight at a budget stop land and are judged first; resume goes on from them, replay agrees."""
    config = SimServerConfig(profile="gpt-4.1-mini?latency=0.004&latency_sigma=1.0", seed=3)
    trace = tmp_path / "t.jsonl"
    async with serve_sim(config) as server:
        http = open_backend("openai/gpt-4.1-mini", base_url=server.base_url, api_key="sk-test")
        try:
            stopped = await maker.arun(
                build_task("hanoi", disks=5),
                backend=http,
                voting=Voting(rule=AheadByK(6)),
                settings=maker.RunSettings(concurrency=64),
                budget=Budget(max_samples=97),
                trace=trace,
            )
            assert isinstance(stopped.error, BudgetExceeded)
            resumed = await maker.aresume(trace, backend=http)
        finally:
            await http.aclose()
    assert resumed.solved and resumed.totals.steps == 31
    report = await maker.areplay(trace)
    assert report.reproduced and report.totals_match


@pytest.mark.anyio
async def test_requests_cancelled_in_flight_are_counted_as_lost(tmp_path: Path):
    backend = ScriptedBackend([vote("A")] * 3, gated=True)  # nothing answers until released: never here
    trace = tmp_path / "t.jsonl"
    with anyio.CancelScope() as scope:  # what Ctrl-C does to a run
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: maker.arun(one_step_graph(), backend=backend, voting=_k(3), trace=trace))
            await settle(lambda: len(backend.requests))
            assert len(backend.requests) == 3
            scope.cancel()
    end = load_trace(trace).end
    assert end["outcome"] == "interrupted" and end["totals"]["lost"] == 3 and end["totals"]["samples"] == 0


class _LandsAfterCtrlC(ScriptedBackend):
    """Sample 0 answers at once; sample 1 is on the wire (shielded) and lands only after the run is cancelled."""

    def __init__(self, cancelled: anyio.Event) -> None:
        super().__init__([vote("A")] * 3)
        self.cancelled = cancelled

    async def complete(self, request: Request) -> Completion:
        if request.sample == 1:
            with anyio.CancelScope(shield=True):
                await self.cancelled.wait()
        elif request.sample > 1:
            await anyio.sleep_forever()
        return self._completion(vote("A"))


@pytest.mark.anyio
async def test_a_sample_landing_after_ctrl_c_is_reused_by_resume_and_replays_exactly(tmp_path: Path):
    cancelled = anyio.Event()
    backend = _LandsAfterCtrlC(cancelled)
    trace = tmp_path / "t.jsonl"
    with anyio.CancelScope() as scope:  # what Ctrl-C does to a run
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: maker.arun(one_step_graph(), backend=backend, voting=_k(3), trace=trace))
            await settle(lambda: len(backend.requests) >= 3)
            scope.cancel()
            cancelled.set()
    landed = [s for s in load_trace(trace).samples if s["i"] == 1]
    assert [s["late"] for s in landed] == [False]  # no decision to be late after
    resumed = await maker.aresume(trace, backend=ScriptedBackend([vote("A")] * 6), task=one_step_graph())
    assert resumed.solved
    report = await maker.areplay(trace, task=one_step_graph())
    assert report.reproduced and report.totals_match


class _Breaks(WordStep):
    """A step whose parser has a bug: it raises a plain exception on the reply `boom`."""

    def __init__(self, judged: anyio.Event) -> None:
        super().__init__()
        self.judged = judged

    def parse(self, text: str) -> str:
        if text == "boom":
            self.judged.set()
            raise RuntimeError("parser bug")
        return super().parse(text)


class _Landing(ScriptedBackend):
    """Sample 0 answers `boom` at once; sample 1 lands only after it was judged, as the step fails.

    Sample 1 finishes its request whatever happens meanwhile (shielded), as a reply already on the wire does.
    """

    def __init__(self, judged: anyio.Event) -> None:
        super().__init__(["boom", vote("A"), vote("A")])
        self.judged = judged

    async def complete(self, request: Request) -> Completion:
        if request.sample == 1:
            with anyio.CancelScope(shield=True):
                await self.judged.wait()
        return await super().complete(request) if request.sample != 1 else self._completion(vote("A"))


@pytest.mark.anyio
async def test_a_step_failing_while_its_sample_lands_reports_its_own_error(tmp_path: Path):
    judged = anyio.Event()
    trace = tmp_path / "t.jsonl"
    with pytest.raises(StepFailed, match="parser bug"):
        (
            await maker.arun(one_step_graph(_Breaks(judged)), backend=_Landing(judged), voting=_k(2), trace=trace)
        ).raise_for_outcome()
    landed = [s for s in load_trace(trace).samples if s["i"] == 1]
    assert [s["late"] for s in landed] == [False]  # paid for and kept; not late: the step was never decided


def _k(k: int) -> Any:
    return Voting(rule=AheadByK(k))
