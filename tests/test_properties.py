"""Invariants checked on generated inputs (hypothesis).

- The Hanoi parser never raises anything but `ParseError`, on any text and on
  valid replies with random damage, and whatever it accepts is well formed.
- A decided step never changes its winner: it is decided at the first vote
  that decides it, whatever order the samples arrive in, and late votes do not
  change it.
- Ahead-by-k asks for exactly the leader's deficit: no more, no fewer.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from _scripted import GARBAGE, ScriptedBackend, one_step_graph, settle, vote
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maker
from maker.tasks.hanoi import Hanoi, HanoiOracle, HanoiStep, parse_reply
from maker.traces import load_trace
from maker.voting import AheadByK, DecisionRule, Majority, ParseError, Single, Tally, Voting

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---------------------------------------------------------------------------
# The parser


def parses_or_flags(text: str, n: int) -> None:
    try:
        answer = parse_reply(text, n)
    except ParseError:
        return
    move, state = answer["move"], answer["state"]
    assert len(move) == 3 and all(type(x) is int for x in move)
    assert len(state) == 3 and all(type(d) is int for peg in state for d in peg)
    assert sorted(d for peg in state for d in peg) == list(range(1, n + 1))


@FAST
@given(text=st.text(), n=st.integers(1, 6))
def test_the_parser_only_ever_raises_parse_error_on_any_text(text: str, n: int) -> None:
    parses_or_flags(text, n)


ANSWER_LIKE = st.text(alphabet="moven_sta=[], 0123456789-.\n\"'eE+xNaIfinty", max_size=80)


@FAST
@given(body=ANSWER_LIKE, n=st.integers(1, 4))
def test_the_parser_survives_text_made_of_answer_pieces(body: str, n: int) -> None:
    parses_or_flags("move = [" + body, n)
    parses_or_flags(body + "next_state = [[" + body, n)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(move=JSONISH, state=JSONISH, n=st.integers(1, 5), python=st.booleans())
def test_the_parser_survives_any_literal_in_either_slot(move: Any, state: Any, n: int, python: bool) -> None:
    write = repr if python else (lambda v: json.dumps(v, allow_nan=True))
    parses_or_flags(f"move = {write(move)}\nnext_state = {write(state)}", n)


@st.composite
def damaged_replies(draw: st.DrawFn) -> tuple[str, int]:
    n = draw(st.integers(1, 6))
    task, step = Hanoi(n), HanoiStep(n)
    right = step.expected(task.step_inputs(draw(st.integers(0, task.steps - 1))))
    text = list("Following the strategy:\n" + HanoiOracle().render(right))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        char = draw(st.characters() | st.sampled_from(list("[],0123456789 \n-=")))
        if how == "insert" or not text:
            text.insert(at, char)
        elif how == "delete":
            del text[min(at, len(text) - 1)]
        elif how == "replace":
            text[min(at, len(text) - 1)] = char
        else:
            text[at:at] = text[at : at + draw(st.integers(1, 20))]
    return "".join(text), n


@FAST
@given(damaged_replies())
def test_the_parser_only_ever_raises_parse_error_on_damaged_valid_replies(case: tuple[str, int]) -> None:
    parses_or_flags(*case)


# ---------------------------------------------------------------------------
# Decisions

RULES = st.one_of(
    st.integers(1, 4).map(AheadByK),
    st.integers(1, 7).map(Majority),
    st.just(Single()),
)
REPLIES = st.text(alphabet="AABBCx", min_size=1, max_size=30)  # x: a reply the parser rejects


def check_decision(rule: DecisionRule, trace_path: Any, outcome: str) -> None:
    """The recorded decision is the first moment the rule decided, and late votes did not move it."""
    trace = load_trace(trace_path)
    on_time = [s["key"] for s in trace.samples if not s["late"] and s["key"] is not None]
    late = [s["key"] for s in trace.samples if s["late"] and s["key"] is not None]
    tally = Tally()
    for key in on_time[:-1]:
        tally.add(key)
        assert rule.winner(tally) is None, "the step should have been decided earlier"
    if on_time:
        tally.add(on_time[-1])
    if outcome == "undecided":
        assert trace.decisions == [] and rule.winner(tally) is None and not late
        return
    (decision,) = trace.decisions
    assert rule.winner(tally) == decision["winner"]
    assert decision["votes"] == tally.counts
    if isinstance(rule, Majority):
        # Everything that arrives after the decision belongs to the same n votes,
        # and cannot overturn it.
        for key in late:
            tally.add(key)
        assert tally.votes <= rule.n
        assert rule.winner(tally) == decision["winner"]
    else:
        assert late == []  # ahead-by-k and single never have a vote out when they decide


@FAST
@given(rule=RULES, letters=REPLIES)
def test_a_decision_is_made_once_and_never_changes_in_order(
    tmp_path_factory: Any, rule: DecisionRule, letters: str
) -> None:
    path = tmp_path_factory.mktemp("p") / "t.jsonl"
    replies = [GARBAGE if c == "x" else vote(c) for c in letters]
    backend = ScriptedBackend(replies, instant=True)
    voting = Voting(rule=rule, max_samples_per_step=len(replies))
    result = anyio.run(lambda: maker.arun(one_step_graph(), backend=backend, voting=voting, trace=path))
    assert result.outcome in ("solved", "undecided")
    check_decision(rule, path, result.outcome)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=RULES, letters=REPLIES, data=st.data())
def test_a_decision_is_made_once_and_never_changes_in_any_arrival_order(
    tmp_path_factory: Any, rule: DecisionRule, letters: str, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("p") / "t.jsonl"
    replies = [GARBAGE if c == "x" else vote(c) for c in letters]
    backend = ScriptedBackend(replies, gated=True)
    voting = Voting(rule=rule, max_samples_per_step=len(replies))
    done: dict[str, Any] = {}

    async def main() -> None:
        async def run() -> None:
            done["result"] = await maker.arun(one_step_graph(), backend=backend, voting=voting, trace=path)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                released: set[int] = set()
                await settle(lambda: len(backend.requests))
                while "result" not in done:
                    waiting = sorted(set(backend.launched()) - released)
                    index = data.draw(st.sampled_from(waiting), label="next to arrive")
                    released.add(index)
                    await backend.release(index)
                    await settle(lambda: (len(backend.requests), "result" in done))

    anyio.run(main)
    assert done["result"].outcome in ("solved", "undecided")
    check_decision(rule, path, done["result"].outcome)


# ---------------------------------------------------------------------------
# Round sizing


@FAST
@given(k=st.integers(1, 6), letters=st.text(alphabet="ABCD", max_size=25))
def test_ahead_by_k_needs_exactly_the_leaders_deficit(k: int, letters: str) -> None:
    tally = Tally()
    for key in letters:
        tally.add(key)
    counts = [*sorted(tally.counts.values(), reverse=True), 0, 0]
    deficit = max(0, k - (counts[0] - counts[1]))
    rule = AheadByK(k)
    assert rule.needed(tally) == deficit
    assert (rule.winner(tally) is not None) == (deficit == 0)
    if deficit:
        leader = tally.leader()[0] or "A"
        for _ in range(deficit - 1):
            tally.add(leader)
        assert rule.winner(tally) is None  # one fewer is not enough, even in the best case
        tally.add(leader)
        assert rule.winner(tally) == leader  # and the deficit is enough
