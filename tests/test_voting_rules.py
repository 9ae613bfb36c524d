"""The decision rules, read as a table: votes in, verdict and "how many more" out.

Each row lists the votes of one step in arrival order (one letter per vote) and
what the rule must say after the last of them: the winner (or None) and how
many further votes could still decide the step in the best case.
"""

from __future__ import annotations

import math

import pytest

from maker.errors import ConfigError
from maker.voting import (
    AheadByK,
    Majority,
    Single,
    Tally,
    Voting,
    expected_votes,
    k_min,
    p_step,
    p_task,
    rule_from_dict,
)


def tally(votes: str) -> Tally:
    t = Tally()
    for key in votes:
        t.add(key)
    return t


AHEAD_BY_K = [
    # k, votes,      winner, needed   why
    (3, "", None, 3),  # nothing yet: the best case is k agreeing votes
    (3, "A", None, 2),
    (3, "AA", None, 1),
    (3, "AAA", "A", 0),  # a lone candidate needs exactly k votes
    (1, "A", "A", 0),  # k = 1: the first vote decides
    (4, "AAA", None, 1),
    (4, "AAAA", "A", 0),
    (3, "AB", None, 3),  # a tie: no lead at all, k still needed
    (3, "ABAB", None, 3),
    (3, "ABA", None, 2),
    (3, "ABAAA", "A", 0),  # 4 to 1 is a lead of 3
    (3, "ABAA", None, 1),
    (3, "BAAAA", "A", 0),  # the leader does not have to be seen first
    (2, "ABB", None, 1),  # the lead switched to B
    (2, "ABBB", "B", 0),
    (2, "ABC", None, 2),  # three candidates, all tied
    (2, "ABCAA", "A", 0),  # 3 against 1 and 1: ahead of every other by 2
    (3, "AABBCC", None, 3),
    (2, "AAAABBB", None, 1),  # many votes, small lead: a lead counts, not a total
]


@pytest.mark.parametrize(("k", "votes", "winner", "needed"), AHEAD_BY_K)
def test_ahead_by_k(k: int, votes: str, winner: str | None, needed: int) -> None:
    rule = AheadByK(k)
    assert rule.winner(tally(votes)) == winner
    assert rule.needed(tally(votes)) == needed


def test_a_tie_is_led_by_the_candidate_seen_first() -> None:
    # Deterministic tie-breaking is what makes a replay reach the same verdict.
    assert tally("ABBA").leader() == ("A", 2, 2)
    assert tally("BAAB").leader() == ("B", 2, 2)
    assert tally("").leader() == (None, 0, 0)


MAJORITY = [
    # n, votes,    winner, needed   why
    (7, "", None, 7),
    (7, "AAA", None, 4),  # 3 to 0 with 4 left: the runner-up could still win
    (7, "AAAA", "A", 0),  # 4 to 0 with 3 left: nothing can catch A, decided early
    (7, "AAABBB", None, 1),
    (7, "AAABBBA", "A", 0),
    (7, "ABCABCD", "A", 0),  # the full n votes: most common wins, a tie goes to the first seen
    (3, "AB", None, 1),
    (3, "ABB", "B", 0),
    (1, "B", "B", 0),
    (5, "AAB", None, 2),  # 2 to 1 with 2 left: a clean sweep by B would win
    (5, "AAA", "A", 0),  # 3 to 0 with 2 left
]


@pytest.mark.parametrize(("n", "votes", "winner", "needed"), MAJORITY)
def test_majority(n: int, votes: str, winner: str | None, needed: int) -> None:
    rule = Majority(n)
    assert rule.winner(tally(votes)) == winner
    assert rule.needed(tally(votes)) == needed


@pytest.mark.parametrize(
    ("votes", "winner", "needed"),
    [("", None, 1), ("A", "A", 0), ("BA", "B", 0), ("AB", "A", 0)],
)
def test_single_takes_the_first_valid_vote(votes: str, winner: str | None, needed: int) -> None:
    assert Single().winner(tally(votes)) == winner
    assert Single().needed(tally(votes)) == needed


@pytest.mark.parametrize("n", [1, 3, 5, 7, 9])
def test_majority_never_decides_early_what_the_remaining_votes_could_change(n: int) -> None:
    # Late samples must never change a decided winner: for fixed-N majority that
    # is a property of the rule itself. Check every sequence of n votes over 3 keys.
    for code in range(3**n):
        votes = "".join("ABC"[code // 3**i % 3] for i in range(n))
        final = Majority(n).winner(tally(votes))
        for cut in range(n + 1):
            early = Majority(n).winner(tally(votes[:cut]))
            if early is not None:
                assert early == final, (votes, cut)
                break


def test_red_flagged_samples_are_not_votes() -> None:
    t = Tally()
    t.flagged += 5
    assert t.votes == 0
    assert AheadByK(2).needed(t) == 2
    assert Majority(3).needed(t) == 3


@pytest.mark.parametrize("rule", [AheadByK(1), AheadByK(5), Majority(7), Majority(1), Single()])
def test_rules_round_trip_through_their_trace_description(rule: object) -> None:
    assert rule_from_dict(rule.describe()) == rule  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AheadByK(0), "k must be >= 1"),
        (lambda: Majority(0), "n must be >= 1"),
        (lambda: rule_from_dict({"rule": "plurality"}), "unknown decision rule"),
        (lambda: Voting(max_samples_per_step=0), "max_samples_per_step"),
        (lambda: Voting(max_output_tokens=0), "max_output_tokens"),
        (lambda: Voting(temperature=2.5), "temperature"),
        (lambda: Voting(first_temperature=-0.1), "temperature"),
        (lambda: Voting(temperature=math.nan), "temperature"),
    ],
)
def test_bad_settings_fail_at_construction(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_voting_defaults_are_the_papers_settings() -> None:
    v = Voting()
    assert v.rule == AheadByK(3)
    assert [v.temperature_for(i) for i in range(4)] == [0.0, 0.1, 0.1, 0.1]
    assert v.max_output_tokens == 750
    assert Voting.from_dict(v.describe()) == v


# The worked figures of method.md §4 and the k_min column of §6 (t = 0.95, 20 disks).
MILLION = 2**20 - 1


@pytest.mark.parametrize(("k", "p_full"), [(2, 0.006), (3, 0.989), (4, 0.99998)])
def test_whole_task_success_matches_the_paper(k: int, p_full: float) -> None:
    assert p_task(0.9978, k, MILLION) == pytest.approx(p_full, abs=5e-4)


def test_expected_votes_matches_the_paper() -> None:
    assert expected_votes(0.9978, 3) == pytest.approx(3.013, abs=1e-3)
    assert expected_votes(1.0, 3) == pytest.approx(3.0)  # every vote agrees: exactly k


@pytest.mark.parametrize(
    ("error_rate", "k"),
    [
        (0.3571, 29),
        (0.0040, 4),
        (0.0022, 3),
        (0.0018, 3),
        (0.1839, 12),
        (0.0358, 6),
        (0.2342, 15),
        (0.0569, 6),
        (0.0393, 6),
    ],
)
def test_k_min_matches_the_paper_table(error_rate: float, k: int) -> None:
    assert k_min(1 - error_rate, MILLION, 0.95) == k


def test_voting_cannot_help_a_model_that_is_right_half_the_time_or_less() -> None:
    assert k_min(0.5, 100) is None
    assert p_step(0.6, 1) == pytest.approx(0.6)
    assert p_step(0.6, 5) > p_step(0.6, 3) > 0.6
