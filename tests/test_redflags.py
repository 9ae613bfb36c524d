"""Every red flag, as a table: which replies are thrown away unread, and why.

A red-flagged sample is never a vote. The flags run in a fixed order (length,
then format, then the user's own), so each row also pins which reason wins when
a reply has several things wrong with it.
"""

from __future__ import annotations

from typing import Any

import pytest
from _scripted import GARBAGE, ScriptedBackend, WordStep, cut_off, long_reply, one_step_graph, vote

import maker
from maker.tasks.hanoi import parse_reply
from maker.traces import load_trace
from maker.voting import AheadByK, ParseError, Reply, Voting, judge, length_flag

STEP = WordStep()


def no_b(reply: Reply, answer: Any) -> str | None:
    """A user flag: this caller knows B is never a sensible answer here."""
    return "B is not allowed" if answer == "B" else None


def too_chatty(reply: Reply, answer: Any) -> str | None:
    return "more than 40 characters" if len(reply.text) > 40 else None


def never(reply: Reply, answer: Any) -> str | None:
    return ""  # an empty reason is no reason: the sample stays a vote


JUDGE = [
    # reply text,                   finish,   tokens, cap, user flags,        key,  flag starts with
    (vote("A"), "stop", 100, 750, (), "A", None),
    (vote("A"), "length", 100, 750, (), None, "length: cut off"),  # cut off, however good it looks
    (vote("A"), "stop", 751, 750, (), None, "length: 751 output tokens > 750"),
    (vote("A"), "stop", 750, 750, (), "A", None),  # at the threshold is still fine
    (vote("A"), "stop", 101, 100, (), None, "length: 101 output tokens > 100"),  # a custom threshold
    (GARBAGE, "stop", 100, 750, (), None, "format: no 'answer: WORD'"),
    ("", "stop", 0, 750, (), None, "format:"),
    ("answer: A!", "stop", 100, 750, (), None, "format:"),  # never repaired
    (GARBAGE, "length", 900, 750, (), None, "length:"),  # length is checked before format
    (vote("B"), "stop", 100, 750, (no_b,), None, "user: B is not allowed"),
    (vote("A"), "stop", 100, 750, (no_b,), "A", None),
    (vote("B"), "stop", 100, 750, (too_chatty, no_b), None, "user: B is not allowed"),  # first flag that fires
    (
        vote("Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        "stop",
        100,
        750,
        (too_chatty, no_b),
        None,
        "user: more than 40 characters",
    ),
    (GARBAGE, "stop", 100, 750, (no_b,), None, "format:"),  # user flags only see parsed answers
    (vote("A"), "stop", 100, 750, (never,), "A", None),
]


@pytest.mark.parametrize(("text", "finish", "tokens", "cap", "flags", "key", "flag"), JUDGE)
def test_judge(
    text: str, finish: str, tokens: int, cap: int, flags: tuple[Any, ...], key: str | None, flag: str | None
) -> None:
    verdict = judge(Reply(text, finish, tokens), STEP.parse, STEP.vote_key, max_output_tokens=cap, extra_flags=flags)
    assert verdict.key == key
    if flag is None:
        assert verdict.flag is None
        assert verdict.answer == key
    else:
        assert verdict.flag is not None and verdict.flag.startswith(flag)
        assert verdict.answer is None


def test_the_length_flag_alone() -> None:
    assert length_flag(Reply("x", "stop", 750), 750) is None
    assert length_flag(Reply("x", "stop", 751), 750) is not None
    assert length_flag(Reply("x", "length", 3), 750) is not None


def test_user_flags_see_the_reply_and_the_parsed_answer() -> None:
    seen: list[tuple[Reply, Any]] = []

    def spy(reply: Reply, answer: Any) -> None:
        seen.append((reply, answer))
        return None

    reply = Reply(vote("A"), "stop", 12)
    judge(reply, STEP.parse, STEP.vote_key, max_output_tokens=750, extra_flags=(spy,))
    assert seen == [(reply, "A")]


def test_a_parse_error_is_a_format_flag_for_the_hanoi_parser_too() -> None:
    verdict = judge(Reply("move = [1, 0, 2]", "stop", 10), lambda t: parse_reply(t, 3), str, max_output_tokens=750)
    assert verdict.key is None
    assert verdict.flag is not None and verdict.flag.startswith("format: no 'next_state")


def test_a_bug_in_a_parser_is_not_hidden_as_a_red_flag() -> None:
    # Only ParseError means "bad format"; anything else is a bug and must surface.
    def buggy(text: str) -> str:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        judge(Reply(vote("A"), "stop", 10), buggy, str, max_output_tokens=750)
    assert issubclass(ParseError, ValueError)


@pytest.mark.anyio
async def test_in_a_run_flagged_samples_are_recorded_but_never_counted(tmp_path: Any) -> None:
    # Samples: a cut-off A, an overlong A, garbage, a B the user flag rejects, then three As.
    script = [cut_off("A"), long_reply("A", 800), GARBAGE, vote("B"), vote("A"), vote("A"), vote("A")]
    backend = ScriptedBackend(script)
    voting = Voting(rule=AheadByK(3), red_flags=(no_b,))
    result = await maker.arun(one_step_graph(), backend=backend, voting=voting, trace=tmp_path / "t.jsonl")

    trace = load_trace(result.trace)
    flags = [s["flag"].split(":")[0] if s["flag"] else None for s in trace.samples]
    assert flags == ["length", "length", "format", "user", None, None, None]
    assert [s["key"] for s in trace.samples] == [None, None, None, None, "A", "A", "A"]
    (decision,) = trace.decisions
    assert decision["votes"] == {"A": 3}  # B was never a vote
    assert decision["flagged"] == 4
    assert result.totals.red_flags == 4 and result.totals.votes == 3
    assert trace.header["voting"]["red_flags"] == ["no_b"]
