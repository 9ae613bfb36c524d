"""Replay: the run again from its trace alone, and the same samples re-voted under other rules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from random import Random
from typing import Any

import pytest
from _cli import run_maker
from _scripted import WordStep
from hypothesis import given, settings
from hypothesis import strategies as st

import maker
import maker.tasks.hanoi as hanoi
from maker._microagent import _Ballot
from maker._recorder import Recorder
from maker.backends import Completion, _registry
from maker.errors import TraceMismatch, VoteUndecided
from maker.tasks import build_task
from maker.traces import read_events, revote
from maker.voting import AheadByK, Majority, Single, Voting

HOSTILE = "sim/hostile?latency=0.0002"  # red flags, contested steps, samples landing out of launch order


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_maker(*args, cwd=cwd)


@pytest.fixture(scope="module")
def ten_disks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "hanoi10.jsonl"
    maker.run(build_task("hanoi", disks=10), model=HOSTILE, voting=Voting(rule=AheadByK(3)), trace=path)
    return path


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to open or call a model fails the test."""
    calls: list[Any] = []

    class Guard:
        model = "guard/none"

        async def complete(self, request: Any) -> Completion:
            calls.append(request)
            raise AssertionError(f"replay called a model for step {request.step} sample {request.sample}")

        async def aclose(self) -> None:
            return None

    def refuse(name: Any, settings: Any) -> Guard:
        calls.append(name)
        return Guard()

    for provider in list(_registry._PROVIDERS):
        monkeypatch.setitem(_registry._PROVIDERS, provider, refuse)
    return calls


def edit(path: Path, out: Path, step: int, change: Any) -> None:
    """Copy a trace, applying `change(event)` to the first matching event of `step`."""
    lines, done = [], False
    for raw in path.read_text().splitlines():
        event = json.loads(raw)
        if not done and event.get("step") == step and change(event):
            raw, done = json.dumps(event), True
        lines.append(raw)
    assert done
    out.write_text("\n".join(lines) + "\n")


def test_replay_of_a_10_disk_trace_reproduces_every_decision_without_a_model(
    ten_disks: Path, no_model: list[Any]
) -> None:
    report = maker.replay(ten_disks)
    events = list(read_events(ten_disks))
    samples = [e for e in events if e["type"] == "sample"]
    assert report.reproduced and report.outcome == report.recorded_outcome == "solved"
    assert report.steps == report.total_steps == 1023
    assert report.samples == len(samples) and report.totals_match
    assert not no_model
    out_of_order = {
        e["step"] for n, e in enumerate(samples[1:]) if e["step"] == samples[n]["step"] and e["i"] < samples[n]["i"]
    }
    assert out_of_order, "the trace has steps whose samples landed out of launch order, and replay kept that order"


@pytest.mark.parametrize("what", ["sample vote key", "sample reply text", "decision winner"])
def test_a_trace_edited_at_one_step_stops_replay_at_that_step(ten_disks: Path, tmp_path: Path, what: str) -> None:
    step = 700
    edited = tmp_path / "edited.jsonl"

    def change(event: dict[str, Any]) -> bool:
        if what == "sample vote key" and event["type"] == "sample" and event["key"]:
            event["key"] = event["key"].replace("[", "[9, ", 1)
        elif what == "sample reply text" and event["type"] == "sample" and event["key"]:
            event["text"] = "I give up."  # the code now red-flags what the trace counted as a vote
        elif what == "decision winner" and event["type"] == "decision":
            event["winner"] = "[[9, 9, 9], []]"
        else:
            return False
        return True

    edit(ten_disks, edited, step, change)
    with pytest.raises(TraceMismatch) as caught:
        maker.replay(edited)
    assert caught.value.step == step  # every step before it was reproduced
    assert "trace recorded" in str(caught.value) and "code decided" in str(caught.value)

    done = run_cli("replay", str(edited), "--quiet", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"maker: error: step {step}:")


def test_cli_replay_says_every_decision_was_reproduced(ten_disks: Path, tmp_path: Path) -> None:
    done = run_cli("replay", str(ten_disks), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["reproduced"] and report["steps"] == 1023 and report["totals_match"]
    table = run_cli("replay", str(ten_disks), "--quiet", cwd=tmp_path)
    assert table.returncode == 0 and "reproduced every decision" in table.stdout


def test_replay_of_an_interrupted_trace_stops_where_its_history_ends(ten_disks: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl"
    raw = ten_disks.read_bytes()
    cut.write_bytes(raw[: len(raw) // 3])
    decided = [e["step"] for e in read_events(cut) if e["type"] == "decision"]
    report = maker.replay(cut)
    assert report.outcome == "history ends" and report.recorded_outcome is None
    assert report.steps == len(decided)
    # (the cut may leave a step with all its samples but not its decision: decided again, from them)
    assert report.stopped_at == len(decided) + report.unrecorded and report.unrecorded in (0, 1)


def test_replay_reproduces_majority_runs_and_their_late_samples(tmp_path: Path) -> None:
    path = tmp_path / "majority.jsonl"
    result = maker.run(build_task("hanoi", disks=6), model=HOSTILE, voting=Voting(rule=Majority(7)), trace=path)
    assert result.totals.late > 0
    report = maker.replay(path)
    assert report.reproduced and report.totals_match and report.steps == 63


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), error_rate=st.sampled_from([0.0, 0.05, 0.3]))
def test_any_recorded_run_replays_exactly(
    tmp_path_factory: pytest.TempPathFactory, seed: int, k: int, error_rate: float
) -> None:
    path = tmp_path_factory.mktemp("prop") / "t.jsonl"
    model = f"sim/hostile?error_rate={error_rate}&latency=0.0001"
    maker.run(
        build_task("hanoi", disks=4),
        model=model,
        voting=Voting(rule=AheadByK(k), max_samples_per_step=40),
        settings=maker.RunSettings(seed=seed),
        trace=path,
    )
    report = maker.replay(path)
    assert report.reproduced and report.outcome == report.recorded_outcome
    assert report.totals_match in (True, None)


# -- the arrival order of samples in flight together does not matter to ahead-by-k --------------------------------


def _decide(outcomes: list[str | None], k: int, order: Random | None) -> tuple[Any, ...]:
    """Vote `outcomes` (sample index → word, None for garbage) through the microagent's own ballot,
    the samples in flight landing in `order` (None: launch order)."""
    ballot = _Ballot("s", WordStep(), Voting(rule=AheadByK(k), max_samples_per_step=len(outcomes)), Recorder(None))
    pending: list[int] = []
    try:
        while True:
            pending.extend(ballot.launch())
            index = pending.pop(order.randrange(len(pending)) if order else 0)
            word = outcomes[index]
            winner = ballot.count(index, Completion(f"answer: {word}" if word else "no idea", "stop", 1, 1, 0.0))
            if winner is not None:
                d = ballot.close(winner)
                return d.winner, d.samples, d.rounds, d.flagged, tuple(sorted(d.votes.items()))
    except VoteUndecided as undecided:
        return "undecided", undecided.samples, undecided.flagged, tuple(sorted(undecided.counts.items()))


@settings(max_examples=150, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(["A", "A", "B", "C", None]), min_size=30, max_size=30),
    k=st.integers(1, 4),
    seeds=st.lists(st.integers(0, 2**32), min_size=3, max_size=3),
)
def test_ahead_by_k_decides_alike_whatever_order_samples_in_flight_land_in(
    outcomes: list[str | None], k: int, seeds: list[int]
) -> None:
    """Why a resumed run may be compared with an uninterrupted one on a busy machine: for
    ahead-by-k, winner, samples, rounds and vote counts do not depend on which of the samples
    in flight lands first (only the order candidates were first seen in does)."""
    decided = {_decide(outcomes, k, None)} | {_decide(outcomes, k, Random(s)) for s in seeds}
    assert len(decided) == 1


# -- counterfactual re-voting, on a trace small enough to work out by hand ----------------------------------------

HEADER = {
    "type": "header",
    "schema_version": 1,
    "run_id": "hand",
    "maker_version": "0.1.0",
    "created": "2026-01-01T00:00:00+00:00",
    "task": {"name": "hand", "params": {}},
    "model": "sim/none",
    "voting": {
        "rule": "ahead-by-k",
        "k": 3,
        "first_temperature": 0.0,
        "temperature": 0.1,
        "max_output_tokens": 750,
        "max_samples": 100,
        "red_flags": [],
    },
    "seed": 0,
    "settings": {"concurrency": 16, "max_steps": 16, "window": 64},
    "mode": "sequential",
}

# step: (votes in recorded order, "-" a red flag; recorded winner at k = 3; ground truth)
STEPS = {
    0: ("AAA", "A", "A"),  # unanimous (plus a late A, recorded after the decision)
    1: ("BAAAA", "A", "A"),  # a wrong first vote
    2: ("-ABBAAAA", "A", "A"),  # a red flag, then a tie broken late
    3: ("BBAAAAA", "A", "A"),  # two wrong votes first
    4: ("CCC", "C", "B"),  # every vote agrees on a wrong answer: the recorded run got it wrong
}


def hand_made_trace(path: Path) -> Path:
    lines = [HEADER]
    for step, (votes, winner, truth) in STEPS.items():
        for i, v in enumerate(votes):
            lines.append(
                {
                    "type": "sample",
                    "step": step,
                    "i": i,
                    "temperature": 0.1,
                    "text": v,
                    "finish": "stop",
                    "tokens_in": 1,
                    "tokens_out": 1,
                    "latency": 0.0,
                    "retries": 0,
                    "flag": "format: -" if v == "-" else None,
                    "key": None if v == "-" else v,
                    "late": False,
                }
            )
        counts: dict[str, int] = {}
        for v in votes.replace("-", ""):
            counts[v] = counts.get(v, 0) + 1
        lines.append(
            {
                "type": "decision",
                "step": step,
                "kind": "llm",
                "winner": winner,
                "answer": winner,
                "votes": counts,
                "samples": len(votes),
                "flagged": votes.count("-"),
                "rounds": 1,
                "truth": truth,
                "correct": winner == truth,
            }
        )
        if step == 0:
            lines.append({**lines[1], "i": 3, "late": True})
    lines.append(
        {
            "type": "decision",
            "step": "sum",
            "kind": "python",
            "winner": None,
            "answer": 5,
            "votes": {},
            "samples": 0,
            "flagged": 0,
            "rounds": 0,
            "truth": None,
            "correct": None,
        }
    )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# rule: (same, different, needs more, errors, scored, samples used of 27), worked out by hand from STEPS:
# k=1 takes the first vote: B at steps 1 and 3 (wrong); k=2: B,B wins step 3 (wrong); k=3 is what was
# recorded; k=4 only decides step 0, thanks to its late fourth A. Step 4's C is wrong at every k.
# Majority of 5 stops once the runner-up cannot catch up; majority of 9 decides only steps 2 and 3 (A5 B2).
EXPECTED = {
    AheadByK(1): (3, 2, 0, 3, 5, 1 + 1 + 2 + 1 + 1),
    AheadByK(2): (4, 1, 0, 2, 5, 2 + 4 + 7 + 2 + 2),
    AheadByK(3): (5, 0, 0, 1, 5, 3 + 5 + 8 + 7 + 3),
    AheadByK(4): (1, 0, 4, 0, 1, 4 + 5 + 8 + 7 + 3),
    Majority(5): (5, 0, 0, 1, 5, 3 + 4 + 6 + 5 + 3),
    Majority(9): (2, 0, 3, 0, 2, 27),
    Single(): (3, 2, 0, 3, 5, 6),
}


def test_counterfactual_revoting_matches_the_hand_worked_counts(tmp_path: Path) -> None:
    path = hand_made_trace(tmp_path / "hand.jsonl")
    results = revote(path, list(EXPECTED))
    for (rule, want), got in zip(EXPECTED.items(), results, strict=False):
        assert (got.same, got.different, got.needs_more, got.errors, got.scored, got.samples_used) == want, rule
        assert got.steps == 5 and got.samples_recorded == 27 and got.recorded_errors == 1
    k1 = results[0]
    assert [(c.step, c.outcome, c.winner) for c in k1.changed] == [(1, "different", "B"), (3, "different", "B")]


def test_cli_counterfactual_replay(tmp_path: Path) -> None:
    path = hand_made_trace(tmp_path / "hand.jsonl")
    done = run_cli("replay", str(path), "--k", "1,2,3", "--rule", "majority", "--n", "5", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rules = json.loads(done.stdout)["rules"]
    assert [(r["rule"], r["different"], r["needs_more"], r["errors"]) for r in rules] == [
        ({"rule": "ahead-by-k", "k": 1}, 2, 0, 3),
        ({"rule": "ahead-by-k", "k": 2}, 1, 0, 2),
        ({"rule": "ahead-by-k", "k": 3}, 0, 0, 1),
        ({"rule": "majority", "n": 5}, 0, 0, 1),
    ]
    table = run_cli("replay", str(path), "--k", "2", "--steps", cwd=tmp_path)
    assert table.returncode == 0 and "different" in table.stdout


def test_revoting_a_real_trace_at_its_own_k_changes_nothing(ten_disks: Path) -> None:
    at_k3, at_k2 = revote(ten_disks, [AheadByK(3), AheadByK(2)])
    assert at_k3.same == at_k3.steps == 1023 and at_k3.samples_used == at_k3.samples_recorded
    assert at_k2.needs_more == 0 and at_k2.samples_used < at_k3.samples_used


def test_replay_refuses_a_step_whose_prompt_the_code_now_builds_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recorded samples answered the recorded prompt; after a change to the
    # prompt template they prove nothing about the new one.
    path = tmp_path / "four.jsonl"
    maker.run(build_task("hanoi", disks=4), trace=path)
    monkeypatch.setattr(hanoi, "_USER", hanoi._USER.replace("Strategy for this puzzle:", "Strategy:"))
    with pytest.raises(TraceMismatch, match=r"step 0: .*prompt") as caught:
        maker.replay(path)
    assert caught.value.step == 0
