"""Drafts are lossless: a run with drafts decides every step exactly as a run without them.

As in test_speculation, the simulated model (and the simulated drafter) is a
pure function of (seed, prompt, draw), and on trio's mock clock so is the
timing: which drafts were wrong is as reproducible as the decisions, so the
tests can require that wrong drafts happened. The runs over real HTTP and the
SIGKILL runs use the wall clock and assert on decisions only.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from _http import run_maker
from test_resume import Kill, kill_all, maker_cli, run_cli
from test_speculation import decided, events, virtual, voted_only_decided_prompts

import maker
from maker import RunSettings
from maker.backends import Faults, SimServerConfig, serve_sim
from maker.backends._registry import open_backend
from maker.errors import BudgetExceeded, ConfigError
from maker.tasks import build_task
from maker.tasks.hanoi import HanoiStep, initial_state, parse_draft
from maker.voting import ParseError

# Latency with a spread, a model wrong one time in twenty, and a drafter wrong one step in ten:
# plenty of drafts go wrong part-way, and first samples sometimes lead the wrong way.
MODEL = "sim/gpt-4.1-mini?latency=0.05&latency_sigma=0.5&error_rate=0.05&draft_accuracy=0.9"


def drafts(path: Path) -> list[dict[str, Any]]:
    return [e for e in events(path) if e["type"] == "draft"]


def drafted_hits(path: Path) -> int:
    """Decisions whose step a draft predicted right (its key is the decided winner)."""
    predicted = {(s, k) for d in drafts(path) for s, k in zip(d["steps"], d["keys"], strict=True)}
    return sum(1 for step, winner in decided(path) if (step, winner) in predicted)


def run_pair(tmp_path: Path, task: Any, *, draft: int = 8, **options: Any) -> tuple[Any, Any, Path, Path]:
    off, on = tmp_path / "off.jsonl", tmp_path / "on.jsonl"
    base = virtual(maker.arun, task, trace=off, settings=RunSettings(concurrency=64), **options)
    with_drafts = virtual(maker.arun, task, trace=on, settings=RunSettings(concurrency=64, draft=draft), **options)
    return base, with_drafts, off, on


def test_the_hanoi_draft_parser_is_strict() -> None:
    step = HanoiStep(3)
    prompt = step.draft_prompt({"prev": {"move": None, "state": initial_state(3)}}, 2)
    assert "find the next 2 moves" in prompt[-1]["content"]
    good = "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]\nmove = [2, 0, 1]\nnext_state = [[3], [2], [1]]"
    assert [a["move"] for a in parse_draft(good, 3, 2)] == [[1, 0, 2], [2, 0, 1]]
    for bad in (
        good.rsplit("\n", 2)[0],  # one pair short
        good + "\nmove = [1, 2, 1]\nnext_state = [[3], [2, 1], []]",  # one pair too many
        "\n".join(reversed(good.splitlines())),  # states before moves
        good.replace("[3], [2], [1]", "[3], [2], [2]"),  # a disk twice
    ):
        with pytest.raises(ParseError):
            parse_draft(bad, 3, 2)


@pytest.mark.timeout(60)
def test_a_chain_with_drafts_decides_every_step_as_a_plain_run_even_when_drafts_are_wrong(tmp_path: Path) -> None:
    task = build_task("hanoi", disks=6)
    base, run, off, on = run_pair(tmp_path, task, model=MODEL)
    assert run.solved and run.totals.errors == 0 and run.totals.steps == 63
    assert decided(on) == decided(off)
    recorded = drafts(on)
    assert run.totals.drafts == len(recorded) > 1
    assert run.totals.draft_tokens_out == sum(d["tokens_out"] for d in recorded)
    assert drafted_hits(on) > 30, "most steps were voted on prompts built from drafted answers"
    assert [e for e in events(on) if e["type"] == "discard"], "some drafted answers were wrong"
    assert run.totals.samples > base.totals.samples  # ballots on wrong drafts are paid for
    voted_only_decided_prompts(on)
    report = maker.replay(on)  # drafts decide nothing: replay needs only the samples
    assert report.reproduced and report.totals_match and report.steps == 63


def test_a_draft_model_of_its_own_drafts_and_the_run_model_votes(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    settings = RunSettings(draft=4, draft_model="sim/perfect?draft_accuracy=1")
    run_model = "sim/gpt-4.1-mini?draft_accuracy=0"  # would it draft, every drafted step would be wrong
    result = maker.run(build_task("hanoi", disks=4), model=run_model, trace=trace, settings=settings)
    assert result.solved
    recorded = drafts(trace)
    assert recorded and {d["model"] for d in recorded} == {"sim/perfect"}
    assert all(d["flag"] is None for d in recorded)  # the perfect drafter's replies parse
    assert not [e for e in events(trace) if e["type"] == "discard"], "no drafted answer was wrong"


@pytest.mark.timeout(60)
def test_drafts_and_first_sample_speculation_together_are_lossless(tmp_path: Path) -> None:
    task = build_task("hanoi", disks=5)
    off, on = tmp_path / "off.jsonl", tmp_path / "on.jsonl"
    virtual(maker.arun, task, model=MODEL, trace=off, settings=RunSettings(concurrency=64))
    settings = RunSettings(concurrency=64, draft=4, speculate=4)
    result = virtual(maker.arun, task, model=MODEL, trace=on, settings=settings)
    assert result.solved and decided(on) == decided(off)
    assert maker.replay(on).reproduced


def wide_dag(chains: int = 4, disks: int = 4) -> nx.DiGraph[Any]:
    """`chains` Hanoi chains side by side, joined at the end by a Python step that checks all of them."""
    graph: nx.DiGraph[Any] = nx.DiGraph()
    step, length = HanoiStep(disks), 2**disks - 1
    for c in range(chains):
        graph.add_node(f"c{c}-0", step=step, args={"prev": {"move": None, "state": initial_state(disks)}})
        for i in range(1, length):
            graph.add_node(f"c{c}-{i}", step=step)
            graph.add_edge(f"c{c}-{i - 1}", f"c{c}-{i}", name="prev")
    graph.add_node("all", step=Solved())
    for c in range(chains):
        graph.add_edge(f"c{c}-{length - 1}", "all", name=f"c{c}")
    return graph


class Solved:
    """A Python step: how many chains ended with every disk on the last peg."""

    def run(self, inputs: dict[str, Any]) -> int:
        return sum(1 for answer in inputs.values() if not answer["state"][0] and not answer["state"][1])


@pytest.mark.timeout(60)
def test_drafts_are_lossless_on_a_wide_dag(tmp_path: Path) -> None:
    base, run, off, on = run_pair(tmp_path, wide_dag(), model=MODEL, draft=6)
    assert run.solved and run.totals.errors == 0
    assert sorted(map(str, decided(on))) == sorted(map(str, decided(off)))
    assert run.outputs == base.outputs and run.outputs["all"] == 4
    started = {d["step"].split("-")[0] for d in drafts(on)}
    assert started == {"c0", "c1", "c2", "c3"}, "every chain of the DAG was drafted"
    assert drafted_hits(on) > 20
    voted_only_decided_prompts(on)
    assert maker.replay(on, task=wide_dag()).reproduced


def test_a_task_without_a_draft_prompt_refuses_drafts_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no draft prompt"):
        maker.run(build_task("arithmetic", digits=4), trace=False, settings=RunSettings(draft=4))
    bad = run_maker("run", "arithmetic", "--digits", "4", "--draft", "4", "--no-trace", cwd=tmp_path)
    assert bad.returncode == 2 and "no draft prompt" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(ConfigError):
        RunSettings(draft=-1)
    with pytest.raises(ConfigError, match="credentials"):
        RunSettings(draft=4, draft_model="openai/x?base_url=http://user:key@127.0.0.1:9/v1")


@pytest.mark.parametrize("limit", [{"max_samples": 40}, {"max_tokens": 30_000}])
def test_budgets_count_drafts(tmp_path: Path, limit: dict[str, int]) -> None:
    trace = tmp_path / "budget.jsonl"
    result = virtual(
        maker.arun,
        build_task("hanoi", disks=6),
        model=MODEL,
        trace=trace,
        settings=RunSettings(concurrency=64, draft=16),
        budget=maker.Budget(**limit),
    )
    assert isinstance(result.error, BudgetExceeded)
    evs = events(trace)
    paid = [e for e in evs if e["type"] in ("sample", "draft")]
    assert any(e["type"] == "draft" for e in paid)
    if "max_samples" in limit:
        assert len(paid) <= limit["max_samples"]
    else:
        assert sum(e["tokens_in"] + e["tokens_out"] for e in paid) <= limit["max_tokens"]


@pytest.mark.timeout(60)
def test_a_trace_with_drafts_cut_anywhere_resumes_to_the_same_decisions_without_paying_twice(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    task = build_task("hanoi", disks=6)
    virtual(maker.arun, task, model=MODEL, trace=ref, settings=RunSettings(concurrency=64, draft=8))
    want = decided(ref)
    raw = ref.read_bytes()
    rng = random.Random(7)
    served = 0
    for n in range(6):
        trace = tmp_path / f"cut{n}.jsonl"
        trace.write_bytes(raw[: rng.randrange(300, len(raw))])
        cut = events(trace)
        committed = {e["step"] for e in cut if e["type"] == "decision"}
        before = {(d["step"], d["basis"]) for d in drafts(trace) if d["step"] not in committed}
        result = virtual(maker.aresume, trace)
        assert result.solved and result.totals.errors == 0
        assert decided(trace) == want
        asked = [(d["step"], d["basis"]) for d in drafts(trace)]
        assert len(asked) == len(set(asked)), "a recorded draft was asked for again"
        drawn = [(e["step"], e.get("basis"), e["i"]) for e in events(trace) if e["type"] == "sample"]
        assert len(drawn) == len(set(drawn)), "a recorded sample of a prompt was drawn again"
        later = events(trace)[len(cut) :]
        decided_later = {(e["step"], e.get("prompt")) for e in later if e["type"] == "decision"}
        served += sum(1 for pair in before if pair in decided_later)  # its anchor decided on that prompt
        report = maker.replay(trace)
        assert report.reproduced and report.totals_match
    assert served > 0, "some drafts recorded before a cut were used again after the resume"


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_drafts_are_lossless_over_real_http_with_latency_and_faults(tmp_path: Path) -> None:
    faults = Faults(rate_limit=0.025, server_error=0.025, drop=0.025, bad_json=0.025, retry_after=0.01)
    profile = "gpt-4.1-mini?latency=0.02&latency_sigma=0.5&error_rate=0.05&draft_accuracy=0.9"
    task = build_task("hanoi", disks=5)
    traces = {}
    async with serve_sim(SimServerConfig(profile=profile, faults=faults)) as server:
        for draft in (0, 8):
            http = open_backend(
                "openai/gpt-4.1-mini?max_attempts=12&backoff=0.005&backoff_max=0.05&retry_after_max=0.2",
                base_url=server.base_url,
                api_key="sk-test",
            )
            traces[draft] = tmp_path / f"http{draft}.jsonl"
            try:
                result = await maker.arun(task, backend=http, trace=traces[draft], settings=RunSettings(draft=draft))
            finally:
                await http.aclose()
            assert result.solved and result.totals.errors == 0
        assert server.stats.faults, "faults happened"
    assert decided(traces[8]) == decided(traces[0])
    assert drafts(traces[8]) and drafted_hits(traces[8]) > 0
    voted_only_decided_prompts(traces[8])
    assert (await maker.areplay(traces[8])).reproduced


@pytest.mark.timeout(180)
def test_sigkill_mid_draft_run_then_resume_decides_as_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["hanoi", "--disks", "6", "--model", MODEL.replace("0.05", "0.01", 1), "--seed", "3", "--draft", "8"]
    args += ["--concurrency", "64", "--json", "--quiet"]
    done = run_cli(*args, "--trace", str(tmp_path / "ref.jsonl"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    want, wall = decided(tmp_path / "ref.jsonl"), json.loads(done.stdout)["wall_s"]
    rng = random.Random(9)
    plans: list[dict[str, Any]] = [{"decisions": d} for d in sorted(rng.sample(range(1, 60), 3))]
    plans += [{"seconds": rng.uniform(0.05, 0.9) * wall} for _ in range(3)]
    kills = []
    for n, plan in enumerate(plans):
        trace = tmp_path / f"kill{n}.jsonl"
        proc = maker_cli(*args, "--trace", str(trace), cwd=tmp_path, stdout=subprocess.DEVNULL)
        kills.append(Kill(trace, proc, **plan))
    kill_all(kills)
    kills = [k for k in kills if k.killed]  # a run that finished first was not a kill point
    assert len(kills) >= 4
    for kill in kills:
        resumed = run_cli("resume", str(kill.trace), "--json", "--quiet", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["solved"] is True
        assert decided(kill.trace) == want
        asked = [(d["step"], d["basis"]) for d in drafts(kill.trace)]
        assert len(asked) == len(set(asked)), "a recorded draft was asked for again"
        report = maker.replay(kill.trace)
        assert report.reproduced and report.totals_match


def test_the_simulated_drafter_is_right_as_often_as_told_and_slower_for_longer_drafts() -> None:
    from random import Random

    from maker.backends._sim import PROFILES, SimModel
    from maker.tasks.hanoi import HanoiOracle

    step = HanoiStep(10)
    inputs = {"prev": {"move": None, "state": initial_state(10)}}
    right = HanoiOracle().solve_draft(step.draft_prompt(inputs, 64))
    assert right is not None and len(right) == 64
    model = SimModel(PROFILES["gpt-4.1-mini"].with_options({"draft_accuracy": "0.9", "latency": "1"}))
    hits = total = 0
    for draw in range(20):
        text, finish, tokens = model.reply(step.draft_prompt(inputs, 64), 0.0, 10**5, draw)
        assert finish == "stop" and tokens == 64 * 40
        got = step.parse_draft(text, 64)
        hits += sum(g == r for g, r in zip(got, right, strict=True))
        total += 64
    assert 0.85 < hits / total < 0.95
    short = model.latency(Random(1), step.draft_prompt(inputs, 4))
    long = model.latency(Random(1), step.draft_prompt(inputs, 64))
    assert short < model.latency(Random(1)) < long  # the same draw: only the length differs


def test_analyze_and_trace_show_report_the_draft_hit_rate_and_what_drafts_cost(tmp_path: Path) -> None:
    from maker.analysis import analyze

    trace = tmp_path / "run.jsonl"
    result = virtual(maker.arun, build_task("hanoi", disks=5), model=MODEL, trace=trace, settings=RunSettings(draft=8))
    a = analyze(trace)
    s = a.speculation
    assert s is not None and s.drafts == result.totals.drafts
    assert s.draft_tokens_out == result.totals.draft_tokens_out
    assert s.draft_hit_rate is not None and 0.5 < s.draft_hit_rate < 1
    assert a.draft_cost is not None and a.draft_cost > 0 and a.extra_cost is not None
    shown = run_maker("trace", "show", str(trace), cwd=tmp_path)
    assert shown.returncode == 0 and "draft hit rate" in shown.stdout + shown.stderr
    analysed = run_maker("analyze", str(trace), "--json", cwd=tmp_path)
    assert json.loads(analysed.stdout)["speculation"]["drafts"] == result.totals.drafts


def test_estimate_gives_the_wall_time_with_drafts(tmp_path: Path) -> None:
    from maker.analysis._estimate import wall_time

    w = wall_time(1_048_575, 3, 7.9, 0.5, draft=16, draft_accuracy=0.99)
    assert w.drafted_s < w.speculative_s < w.plain_s
    assert wall_time(1000, 3, 1.0, 0.5, draft=16, draft_accuracy=0.5).drafted_s > w.per_step_drafted * 1000
    done = run_maker(
        "estimate", "--error-rate", "0.0022", "--steps", "1048575", "--latency", "7.9", "--draft", "32", cwd=tmp_path
    )
    assert done.returncode == 0 and "--draft 32" in " ".join(done.stdout.split())
