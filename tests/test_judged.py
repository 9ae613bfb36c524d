"""Judged votes: candidates collected, judges choose one by number, the usual rules decide.

Table-driven: first the pure pieces (the strict choice parser, the rules over
judges' votes, candidates), then whole judged votes run through the runtime
with a scripted model that states every candidate and every judge reply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _scripted import ScriptedBackend
from _toy_recursive import scripted, toy_problem

import maker
from maker._recursive import candidates_id, recursive_plan
from maker.traces import read_events, revote
from maker.voting import (
    NO_CANDIDATE,
    AheadByK,
    Candidates,
    Collect,
    Judged,
    Majority,
    ParseError,
    Single,
    Tally,
    Voting,
    decide_judged,
    parse_choice,
)


@pytest.mark.parametrize(
    ("text", "count", "choice"),
    [
        ("choice = 1", 3, 1),
        ("I compared them.\nchoice = 3", 3, 3),
        ("choice = 2\nOn second thought:\nchoice = 1", 2, 1),  # the last line is the answer
        ("choice=2", 2, 2),
    ],
)
def test_choice_parser_accepts(text: str, count: int, choice: int) -> None:
    assert parse_choice(text, count) == choice


@pytest.mark.parametrize(
    ("text", "count", "reason"),
    [
        ("choice = 0", 3, "1..3"),  # out of range, below
        ("choice = 4", 3, "1..3"),  # out of range, above: a judge naming a candidate that does not exist
        ("choice = 99999999999999999999", 3, "1..3"),
        ("choice = 02", 3, "leading zero"),
        ("candidate 2 is right", 3, "no 'choice"),
        ("choice = 2.5", 3, "no 'choice"),
        ("choice = ٢", 3, "no 'choice"),  # a non-ASCII digit is not a number here
        ("", 1, "no 'choice"),
    ],
)
def test_choice_parser_refuses(text: str, count: int, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_choice(text, count)


@pytest.mark.parametrize(
    ("rule", "choices", "winner"),
    [
        (AheadByK(2), ["1", "1"], "1"),
        (AheadByK(2), ["1", "2", "1", "2"], None),  # a tie never decides ahead-by-k
        (AheadByK(2), ["1", "2", "1", "2", "2", "2"], "2"),
        (AheadByK(2), ["1", None, None, "1"], "1"),  # red-flagged judges are not votes
        (Majority(3), ["2", "1", "3"], "2"),  # a three-way tie goes to the choice seen first
        (Majority(3), ["2", "1", "1"], "1"),
        (Majority(2), ["1", "2"], "1"),  # a tie at n goes to the first
        (Single(), [None, "3"], "3"),
        (AheadByK(1), [], None),
    ],
)
def test_rules_decide_judges_votes(rule: Any, choices: list[str | None], winner: str | None) -> None:
    assert decide_judged(rule, choices) == winner


@pytest.mark.parametrize(
    ("votes", "needed", "winner"),
    [([], 3, None), (["a"], 2, None), (["a", "a"], 1, None), (["b", "a", "a"], 0, "b")],
)
def test_collect_rule(votes: list[str], needed: int, winner: str | None) -> None:
    tally = Tally()
    for v in votes:
        tally.add(v)
    assert Collect(3).needed(tally) == needed
    assert Collect(3).winner(tally) == winner


@pytest.mark.parametrize(
    ("judged", "rule", "count"),
    [(Judged(), AheadByK(2), 3), (Judged(), AheadByK(3), 5), (Judged(), Majority(7), 7), (Judged(4), AheadByK(2), 4)],
)
def test_candidates_per_vote(judged: Judged, rule: Any, count: int) -> None:
    assert judged.count_for(rule) == count


def test_candidates_by_key_and_truth() -> None:
    c = Candidates.of({"7": 2, "8": 1}, {"7": 7, "8": 8})
    assert (len(c), c.lone, c.answer(2)) == (2, False, 8)
    assert c.choice_of("8") == "2" and c.choice_of("9") == NO_CANDIDATE
    assert c.truth(lambda a: a == 8) == "2"
    assert c.truth(lambda a: a == 9) == NO_CANDIDATE
    assert c.truth(lambda a: None) is None


# -- whole judged votes, through the runtime --------------------------------------------

SOLVE = "r:solve"
LIST = [4, 5]  # atomic: one solve step, judged


def _run(tmp_path: Path, candidates: list[str], judges: list[str], voting: Voting) -> tuple[Any, list[dict[str, Any]]]:
    dag = recursive_plan(toy_problem(judged=("solve",)), {"r": LIST})
    backend = ScriptedBackend(scripted({candidates_id(SOLVE): candidates, SOLVE: judges}))
    trace = tmp_path / "t.jsonl"
    result = maker.run(dag, backend=backend, voting=voting, trace=trace)
    return result, list(read_events(trace))


CASES = [
    # (name, candidate replies, judge replies, rule, answer, judge samples drawn, judges flagged)
    ("lone candidate", ["total = 9"] * 3, [], AheadByK(2), 9, 0, 0),
    ("equal keys are one candidate", ["total = 9", "total = 9", "total = 8"], ["choice = 1"] * 2, AheadByK(2), 9, 2, 0),
    ("judges pick the minority", ["total = 8", "total = 8", "total = 9"], ["choice = 2"] * 2, AheadByK(2), 9, 2, 0),
    (
        "a tie is broken by more judges",
        ["total = 8", "total = 9", "total = 9"],
        ["choice = 1", "choice = 2", "choice = 2", "choice = 2"],
        AheadByK(2),
        9,
        4,
        0,
    ),
    (
        "judges out of range are red flags",
        ["total = 8", "total = 9", "total = 9"],
        ["choice = 3", "choice = 0", "choice = 2", "choice = 2"],
        AheadByK(2),
        9,
        4,
        2,
    ),
    (
        "red-flagged candidates are replaced",
        ["garbage", "total = 9", "total = 8", "total = 9"],
        ["choice = 1"] * 2,
        AheadByK(2),
        9,
        2,
        0,
    ),
    (
        "majority of judges",
        ["total = 8", "total = 9", "total = 7"],
        ["choice = 2", "choice = 3", "choice = 2"],
        Majority(3),
        9,
        3,
        0,
    ),
]


@pytest.mark.parametrize(("name", "candidates", "judges", "rule", "answer", "drawn", "flagged"), CASES)
def test_judged_vote(
    tmp_path: Path,
    name: str,
    candidates: list[str],
    judges: list[str],
    rule: Any,
    answer: int,
    drawn: int,
    flagged: int,
) -> None:
    result, events = _run(tmp_path, candidates, judges, Voting(rule=rule))
    assert result.outcome == "solved", name
    assert result.outputs == {SOLVE: answer}
    judge_samples = [e for e in events if e["type"] == "sample" and e["step"] == SOLVE]
    assert len(judge_samples) == drawn
    assert sum(e["key"] is None for e in judge_samples) == flagged
    decisions = {e["step"]: e for e in events if e["type"] == "decision"}
    collected = decisions[candidates_id(SOLVE)]
    assert collected["kind"] == "candidates"
    assert 9 in collected["answer"]  # every distinct candidate is in the trace
    assert decisions[SOLVE]["answer"] == answer
    assert decisions[SOLVE]["correct"] is True  # scored: the chosen candidate is the right sum
    # Exact replay covers candidates and judges alike.
    report = maker.replay(
        tmp_path / "t.jsonl", task=recursive_plan(toy_problem(judged=("solve",)), {"r": LIST}), voting=Voting(rule=rule)
    )
    assert report.reproduced and report.outcome == "solved"


def test_no_right_candidate_is_scored_wrong(tmp_path: Path) -> None:
    result, events = _run(
        tmp_path, ["total = 8", "total = 7", "total = 8"], ["choice = 1"] * 2, Voting(rule=AheadByK(2))
    )
    decision = next(e for e in events if e["type"] == "decision" and e["step"] == SOLVE)
    assert decision["truth"] == NO_CANDIDATE and decision["correct"] is False
    assert result.outcome == "failed" and result.totals.errors == 1


def test_revote_covers_the_judges(tmp_path: Path) -> None:
    _run(
        tmp_path,
        ["total = 8", "total = 9", "total = 9"],
        ["choice = 1", "choice = 2", "choice = 2", "choice = 2"],
        Voting(rule=AheadByK(2)),
    )
    k1, k2 = revote(tmp_path / "t.jsonl", [AheadByK(1), AheadByK(2)])
    # The judges' step is re-voted (k=1 would have taken the first judge's wrong choice);
    # the collection is not a vote and is skipped; the decompose step is keyed.
    assert k1.different == 1 and k1.changed[0].step == SOLVE and k1.changed[0].winner == "1"
    assert k2.different == 0 and k2.needs_more == 0
    assert k2.steps == 2  # r:decompose (keyed) and r:solve (its judges)


def test_trace_lines_are_schema_valid(tmp_path: Path) -> None:
    _run(tmp_path, ["total = 8", "total = 9", "total = 9"], ["choice = 2"] * 2, Voting(rule=AheadByK(2)))
    for line in (tmp_path / "t.jsonl").read_text().splitlines():
        json.loads(line)
    # The strict reader validates every event (schema); reading it all is the check.
    assert sum(1 for _ in read_events(tmp_path / "t.jsonl")) > 5
