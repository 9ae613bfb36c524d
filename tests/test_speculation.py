"""Speculation is lossless: a speculative run decides every step exactly as a run without it.

The simulated model is a pure function of (seed, prompt, sample index), and its
latency of (seed, index, reply). Run on trio with a mock clock that jumps to the
next timer, a run with latency is also a pure function of its seed: virtual time
has no scheduling noise (and costs no real time), so which predictions were
wrong is as reproducible as the decisions, and the tests can require that
mispredictions happened. The run over real HTTP uses the wall clock and asserts
on decisions only.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from _http import run_maker
from test_resume import Kill, kill_all, maker_cli, run_cli
from trio.testing import MockClock

import maker
from maker import RunSettings
from maker.analysis import analyze
from maker.backends import Faults, SimServerConfig, serve_sim
from maker.backends._registry import open_backend
from maker.errors import BudgetExceeded
from maker.tasks import build_task
from maker.traces import read_events
from maker.voting import AheadByK, Voting

# Latency with a wide spread (so the first sample of a step lands well before its last),
# and a model wrong one time in ten, so that first samples often predict the wrong input.
MODEL = "sim/gpt-4.1-mini?latency=0.05&latency_sigma=1.0&error_rate=0.1"


def virtual(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `fn` on trio in virtual time (the mock clock jumps to the next timer when all tasks wait)."""
    return anyio.run(
        partial(fn, *args, **kwargs), backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )


def events(path: Path) -> list[dict[str, Any]]:
    return list(read_events(path))


def decided(path: Path) -> list[tuple[Any, Any]]:
    return [(e["step"], e["winner"]) for e in events(path) if e["type"] == "decision"]


def voted_only_decided_prompts(path: Path) -> None:
    """Every voted sample answered its step's decided prompt: discarded ones are the others."""
    evs = events(path)
    prompt = {json.dumps(e["step"]): e.get("prompt") for e in evs if e["type"] == "decision"}
    for e in evs:
        if e["type"] == "sample" and e.get("discarded"):
            assert e["basis"] != prompt.get(json.dumps(e["step"])), e


def run_pair(tmp_path: Path, task: Any, *, speculate: int = 8, **options: Any) -> tuple[Any, Any, Path, Path]:
    off, on = tmp_path / "off.jsonl", tmp_path / "on.jsonl"
    base = virtual(maker.arun, task, trace=off, settings=RunSettings(concurrency=64), **options)
    spec = virtual(maker.arun, task, trace=on, settings=RunSettings(concurrency=64, speculate=speculate), **options)
    return base, spec, off, on


@pytest.mark.timeout(60)
def test_a_speculative_chain_decides_every_step_as_a_plain_run_even_when_predictions_fail(tmp_path: Path) -> None:
    task = build_task("hanoi", disks=6)
    base, spec, off, on = run_pair(tmp_path, task, model=MODEL)
    assert spec.solved and spec.totals.errors == 0 and spec.totals.steps == 63
    assert decided(on) == decided(off)
    discards = [e for e in events(on) if e["type"] == "discard"]
    assert discards, "some first samples were wrong: their speculation was discarded"
    assert spec.totals.samples > base.totals.samples  # mispredictions are paid for
    voted_only_decided_prompts(on)
    # The speculation happened: decisions were voted by ballots started before their inputs were decided.
    stats = analyze(on).speculation
    assert stats is not None and stats.hits > 30 and stats.misses == len(discards)
    # Replay reproduces every decision, counting discarded samples only in the totals.
    report = maker.replay(on)
    assert report.reproduced and report.totals_match and report.steps == 63


@pytest.mark.timeout(60)
def test_speculation_is_lossless_on_a_wide_dag(tmp_path: Path) -> None:
    # 2·24 voted steps: independent column sums, and a carry chain each of whose steps
    # waits for its column and the previous carry; then a python step.
    task = build_task("arithmetic", digits=24)
    voting = Voting(rule=AheadByK(2))
    base, spec, off, on = run_pair(tmp_path, task, model=MODEL, voting=voting)
    assert spec.solved and spec.totals.errors == 0
    assert sorted(map(str, decided(on))) == sorted(map(str, decided(off)))
    assert spec.outputs == base.outputs
    carries = {e["step"] for e in events(on) if e["type"] == "sample" and e.get("spec")}
    assert any(str(s).startswith("carry") for s in carries), "carry steps started from a predicted carry"
    voted_only_decided_prompts(on)
    assert maker.replay(on).reproduced


@pytest.mark.timeout(60)
def test_a_speculative_trace_cut_anywhere_resumes_to_the_same_decisions_without_paying_twice(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    task = build_task("hanoi", disks=6)
    settings = RunSettings(concurrency=64, speculate=8)
    virtual(maker.arun, task, model=MODEL, trace=ref, settings=settings)
    want = decided(ref)
    raw = ref.read_bytes()
    rng = random.Random(11)
    reused = 0
    for n in range(8):  # a crash leaves a prefix of the trace: mid-step, mid-speculation, mid-line
        trace = tmp_path / f"cut{n}.jsonl"
        trace.write_bytes(raw[: rng.randrange(300, len(raw))])
        before = {(e["step"], e.get("basis"), e["i"]) for e in events(trace) if e["type"] == "sample"}
        result = virtual(maker.aresume, trace)
        assert result.solved and result.totals.errors == 0
        assert decided(trace) == want
        evs = events(trace)
        drawn = [(e["step"], e.get("basis"), e["i"]) for e in evs if e["type"] == "sample"]
        assert len(drawn) == len(set(drawn)), "a recorded sample of a prompt was drawn again"
        resumed_at = next(i for i, e in enumerate(evs) if e["type"] == "resume")
        later = {(e["step"], e.get("prompt")) for e in evs[resumed_at:] if e["type"] == "decision"}
        reused += sum(1 for step, basis, _ in before if (step, basis) in later)
        assert maker.replay(trace).reproduced
    assert reused > 0, "some decisions after a resume counted samples recorded before the crash"


def test_budgets_count_speculative_samples(tmp_path: Path) -> None:
    trace = tmp_path / "budget.jsonl"
    settings = RunSettings(concurrency=64, speculate=8)
    budget = maker.Budget(max_samples=60)
    result = virtual(
        maker.arun,
        build_task("hanoi", disks=6),
        model=MODEL,
        trace=trace,
        settings=settings,
        budget=budget,
    )
    assert isinstance(result.error, BudgetExceeded)
    assert sum(1 for e in events(trace) if e["type"] == "sample") <= 60


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_lossless_over_real_http_with_latency_and_faults(tmp_path: Path) -> None:
    # 10% of requests fail (rate limits, 5xx, dropped connections, bad JSON) and are retried.
    faults = Faults(rate_limit=0.025, server_error=0.025, drop=0.025, bad_json=0.025, retry_after=0.01)
    config = SimServerConfig(profile="gpt-4.1-mini?latency=0.02&latency_sigma=1.0&error_rate=0.05", faults=faults)
    task = build_task("hanoi", disks=5)
    traces = {}
    async with serve_sim(config) as server:
        for speculate in (0, 4):
            http = open_backend(
                "openai/gpt-4.1-mini?max_attempts=12&backoff=0.005&backoff_max=0.05&retry_after_max=0.2",
                base_url=server.base_url,
                api_key="sk-test",
            )
            traces[speculate] = tmp_path / f"http{speculate}.jsonl"
            try:
                result = await maker.arun(
                    task, backend=http, trace=traces[speculate], settings=RunSettings(speculate=speculate)
                )
            finally:
                await http.aclose()
            assert result.solved and result.totals.errors == 0
        assert server.stats.faults, "faults happened"
    assert decided(traces[4]) == decided(traces[0])
    assert any(e.get("spec") for e in events(traces[4]) if e["type"] == "sample")
    voted_only_decided_prompts(traces[4])
    assert (await maker.areplay(traces[4])).reproduced


def test_the_cli_takes_speculate_and_refuses_a_negative_depth(tmp_path: Path) -> None:
    model = "sim/gpt-4.1-mini?latency=0.001"
    done = run_maker("hanoi", "--disks", "3", "--model", model, "--speculate", "4", "--json", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["solved"] is True
    bad = run_maker("hanoi", "--disks", "3", "--speculate", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--speculate" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.timeout(180)
def test_sigkill_mid_speculation_at_ten_points_then_resume_decides_as_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["hanoi", "--disks", "6", "--model", MODEL.replace("0.05", "0.01", 1), "--seed", "3", "--speculate", "8"]
    args += ["--concurrency", "64", "--json", "--quiet"]
    done = run_cli(*args, "--trace", str(tmp_path / "ref.jsonl"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    want, wall = decided(tmp_path / "ref.jsonl"), json.loads(done.stdout)["wall_s"]
    rng = random.Random(5)
    plans: list[dict[str, Any]] = [{"decisions": d} for d in sorted(rng.sample(range(1, 60), 5))]
    plans += [{"seconds": rng.uniform(0.05, 0.9) * wall} for _ in range(5)]
    killed = mid = 0
    for batch in range(0, len(plans), 5):
        kills = []
        for n, plan in enumerate(plans[batch : batch + 5], start=batch):
            trace = tmp_path / f"kill{n}.jsonl"
            proc = maker_cli(*args, "--trace", str(trace), cwd=tmp_path, stdout=subprocess.DEVNULL)
            kills.append(Kill(trace, proc, **plan))
        kill_all(kills)
        kills = [k for k in kills if k.killed]  # a run that finished first was not a kill point
        killed += len(kills)
        for kill in kills:
            cut = events(kill.trace)
            done_steps = {e["step"] for e in cut if e["type"] == "decision"}
            mid += any(e["type"] == "sample" and e.get("spec") and e["step"] not in done_steps for e in cut)
            resumed = run_cli("resume", str(kill.trace), "--json", "--quiet", cwd=tmp_path)
            assert resumed.returncode == 0, resumed.stderr
            assert json.loads(resumed.stdout)["solved"] is True
            assert decided(kill.trace) == want
            drawn = [(e["step"], e.get("basis"), e["i"]) for e in events(kill.trace) if e["type"] == "sample"]
            assert len(drawn) == len(set(drawn)), "a recorded sample of a prompt was drawn again"
            assert maker.replay(kill.trace).reproduced
    assert killed >= 7
    assert mid > 0, "some kills landed while speculative ballots of undecided steps were out"
