"""The microagent: how many samples each round launches, the per-step cap, the
temperature schedule and late samples.

A scripted model holds every request until the test releases it, so each test
says exactly which sample arrives when and looks at what was launched in
between. Replies are written one letter per sample index: a letter is a vote
for that word, `x` is a reply the strict parser rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from _scripted import GARBAGE, ScriptedBackend, one_step_graph, settle, vote

import maker
from maker.errors import ConfigError, VoteUndecided
from maker.tasks import build_task
from maker.traces import load_trace, read_events
from maker.voting import AheadByK, DecisionRule, Majority, Single, Tally, Voting


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Scripted, in-process tests: cheap enough to run on both of anyio's backends."""
    return str(request.param)


def script(letters: str) -> list[str]:
    return [GARBAGE if c == "x" else vote(c) for c in letters]


async def drive(
    backend: ScriptedBackend, voting: Voting, trace: Path, order: list[int] | None = None
) -> tuple[maker.RunResult, list[int]]:
    """Run one step, releasing samples one at a time; return the result and the launch batches.

    order: the sample indices in the order they arrive (default: oldest first).
    """
    done: dict[str, Any] = {}
    batches: list[int] = []
    released: list[int] = []

    async def run() -> None:
        done["result"] = await maker.arun(one_step_graph(), backend=backend, voting=voting, trace=trace)

    with anyio.fail_after(30):  # a runtime that stops reacting fails here, not at the suite's timeout
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await settle(lambda: len(backend.requests))
            while "result" not in done:
                launched = backend.launched()
                if len(launched) > sum(batches):
                    batches.append(len(launched) - sum(batches))
                waiting = [i for i in launched if i not in released]
                assert waiting, "the step is stuck: nothing in flight and no result"
                index = order[len(released)] if order else min(waiting)
                assert index in waiting, f"sample {index} was not launched yet (launched: {launched})"
                released.append(index)
                await backend.release(index)
                await settle(lambda: (len(backend.requests), "result" in done))
    return done["result"], batches


ROUNDS = [
    # why,                              rule,        replies, arrival order,   launch batches, samples, winner, late
    ("every vote agrees: k samples, one round", AheadByK(3), "AAA", None, [3], 3, "A", 0),
    ("one dissent costs two more", AheadByK(3), "ABAAA", None, [3, 2], 5, "A", 0),
    ("a red flag is replaced at once", AheadByK(3), "xAAA", None, [3, 1], 4, "A", 0),
    ("a lone candidate needs k votes", AheadByK(4), "AAAA", None, [4], 4, "A", 0),
    ("k = 1: one at a time until a valid vote", AheadByK(1), "xxA", None, [1, 1, 1], 3, "A", 0),
    ("the lead switches", AheadByK(2), "ABBB", None, [2, 2], 4, "B", 0),
    ("three candidates", AheadByK(2), "ABCAA", None, [2, 2, 1], 5, "A", 0),
    ("a tie needs k more", AheadByK(2), "ABAA", None, [2, 2], 4, "A", 0),
    ("arrival order decides the leader", AheadByK(3), "AABAA", [2, 0, 1, 3, 4], [3, 2], 5, "A", 0),
    ("majority launches n at once", Majority(5), "AAAAA", None, [5], 3, "A", 2),
    ("majority stops early, the rest arrive late", Majority(5), "AAABB", None, [5], 3, "A", 2),
    ("majority replaces a red flag", Majority(3), "xAAB", None, [3, 1], 3, "A", 1),
    ("majority needing every vote", Majority(3), "ABB", None, [3], 3, "B", 0),
    ("single: one sample, another per red flag", Single(), "xxB", None, [1, 1, 1], 3, "B", 0),
]
IDS = [row[0] for row in ROUNDS]


@pytest.mark.anyio
@pytest.mark.parametrize(("why", "rule", "letters", "order", "batches", "samples", "winner", "late"), ROUNDS, ids=IDS)
async def test_round_sizing(
    tmp_path: Path,
    why: str,
    rule: DecisionRule,
    letters: str,
    order: list[int] | None,
    batches: list[int],
    samples: int,
    winner: str,
    late: int,
) -> None:
    backend = ScriptedBackend(script(letters), gated=True)
    result, launched = await drive(backend, Voting(rule=rule), tmp_path / "t.jsonl", order)

    assert launched == batches
    assert result.solved
    (decision,) = load_trace(result.trace).decisions
    assert (decision["winner"], decision["samples"], decision["rounds"]) == (winner, samples, len(batches))
    assert sum(launched) == len(letters) == samples + late


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("why", "rule", "letters", "order", "batches", "samples", "winner", "late"),
    [row for row in ROUNDS if row[3] is None],
    ids=[row[0] for row in ROUNDS if row[3] is None],
)
async def test_in_order_sampling_decides_the_same(
    tmp_path: Path,
    why: str,
    rule: DecisionRule,
    letters: str,
    order: None,
    batches: list[int],
    samples: int,
    winner: str,
    late: int,
) -> None:
    # Backends that never wait (the in-process simulator) are sampled in order in
    # one task; the launches and the verdicts must be the same as with real waits.
    backend = ScriptedBackend(script(letters), instant=True)
    result = await maker.arun(one_step_graph(), backend=backend, voting=Voting(rule=rule), trace=tmp_path / "t.jsonl")

    trace = load_trace(result.trace)
    (decision,) = trace.decisions
    assert (decision["winner"], decision["samples"], decision["rounds"]) == (winner, samples, len(batches))
    assert backend.launched() == list(range(len(letters)))
    assert [s["late"] for s in trace.samples] == [False] * samples + [True] * late


@pytest.mark.anyio
async def test_the_sample_cap_ends_the_step_with_vote_undecided(tmp_path: Path) -> None:
    backend = ScriptedBackend(script("ABAB"), gated=True)
    voting = Voting(rule=AheadByK(3), max_samples_per_step=4)
    result, launched = await drive(backend, voting, tmp_path / "t.jsonl")

    assert launched == [3, 1]  # the second round is cut to what the cap leaves
    assert result.outcome == "undecided" and not result.solved
    error = result.error
    assert isinstance(error, VoteUndecided)
    assert (error.step, error.counts, error.samples, error.flagged) == ("s", {"A": 2, "B": 2}, 4, 0)
    assert str(error).startswith("step s undecided after 4 samples (0 red-flagged); votes: 2× A, 2× B")

    trace = load_trace(result.trace)
    (event,) = trace.errors
    assert event == {
        "type": "step_error",
        "step": "s",
        "error": "VoteUndecided",
        "message": str(error),
        "votes": {"A": 2, "B": 2},
        "samples": 4,
        "flagged": 0,
    }
    assert trace.decisions == []
    assert len(trace.samples) == 4
    assert trace.end is not None and trace.end["outcome"] == "undecided"


@pytest.mark.anyio
async def test_the_cap_counts_red_flagged_samples_too(tmp_path: Path) -> None:
    backend = ScriptedBackend(script("xxxxx"))
    with pytest.raises(VoteUndecided, match=r"after 5 samples \(5 red-flagged\); votes: none") as caught:
        (
            await maker.arun(
                one_step_graph(),
                backend=backend,
                voting=Voting(rule=AheadByK(2), max_samples_per_step=5),
                trace=tmp_path / "t.jsonl",
            )
        ).raise_for_outcome()
    assert caught.value.result is not None and caught.value.result.outcome == "undecided"
    assert len(backend.requests) == 5


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("voting", "temperatures"),
    [
        (Voting(rule=AheadByK(2)), [0.0, 0.1, 0.1, 0.1, 0.1]),
        (Voting(rule=AheadByK(2), first_temperature=0.3, temperature=0.7), [0.3, 0.7, 0.7, 0.7, 0.7]),
    ],
)
async def test_the_first_sample_is_greedy_and_the_rest_use_the_sampling_temperature(
    tmp_path: Path, voting: Voting, temperatures: list[float]
) -> None:
    backend = ScriptedBackend(script("ABxAA"))
    result = await maker.arun(one_step_graph(), backend=backend, voting=voting, trace=tmp_path / "t.jsonl")

    by_index = sorted(backend.requests, key=lambda r: r.sample)
    assert [r.temperature for r in by_index] == temperatures
    assert [s["temperature"] for s in sorted(load_trace(result.trace).samples, key=lambda s: s["i"])] == temperatures
    assert {r.max_tokens for r in by_index} == {750}


@pytest.mark.anyio
async def test_late_samples_are_recorded_with_their_tokens_and_change_nothing(tmp_path: Path) -> None:
    # Majority of 5 is decided by three As; the two Bs still in flight arrive late.
    replies: list[Any] = [*script("AAA"), vote("B"), vote("B")]
    backend = ScriptedBackend(replies, gated=True, tokens_out=40)
    result, launched = await drive(backend, Voting(rule=Majority(5)), tmp_path / "t.jsonl")

    assert launched == [5]
    trace = load_trace(result.trace)
    (decision,) = trace.decisions
    assert decision["winner"] == "A" and decision["votes"] == {"A": 3}
    late = [s for s in trace.samples if s["late"]]
    assert [(s["i"], s["key"], s["tokens_out"]) for s in late] == [(3, "B", 40), (4, "B", 40)]
    # They arrived after the decision was committed, and the trace keeps that order.
    order = [(e["type"], e.get("i")) for e in read_events(result.trace) if e["type"] in ("sample", "decision")]
    assert order == [("sample", 0), ("sample", 1), ("sample", 2), ("decision", None), ("sample", 3), ("sample", 4)]
    assert result.totals.late == 2 and result.totals.votes == 3
    assert result.totals.tokens_out == 5 * 40
    assert result.outputs["s"] == "A"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_samples_arriving_together_with_the_deciding_one_are_late(tmp_path: Path) -> None:
    # Everything answers at once (no gate): Majority(3) is decided by the first two As,
    # and the third sample, already answered, must be recorded as late, not counted.
    # asyncio only: "at once" lands in launch order there (its run queue is FIFO), while
    # trio deliberately randomises the order of tasks woken together.
    backend = ScriptedBackend(script("AAB"))
    result = await maker.arun(
        one_step_graph(), backend=backend, voting=Voting(rule=Majority(3)), trace=tmp_path / "t.jsonl"
    )
    trace = load_trace(result.trace)
    assert trace.decisions[0]["votes"] == {"A": 2}
    assert [(s["i"], s["late"]) for s in sorted(trace.samples, key=lambda s: s["i"])] == [
        (0, False),
        (1, False),
        (2, True),
    ]


def test_a_custom_rule_that_names_no_winner_but_wants_no_samples_stops_with_a_clear_error():
    # Without the check the step would wait forever for samples nobody launched.
    @dataclass(frozen=True)
    class Broken:
        name: str = "broken"

        def winner(self, tally: Tally) -> str | None:
            return None

        def needed(self, tally: Tally) -> int:
            return 0 if tally.counts else 1

        def describe(self) -> dict[str, object]:
            return {"rule": self.name}

    with pytest.raises(ConfigError, match="names no winner at step 0 yet asks for no more samples"):
        maker.run(build_task("hanoi", disks=3), voting=Voting(rule=Broken()), trace=False).raise_for_outcome()
