"""Red flags: reasons to throw a sample away unread.

A red-flagged sample is never a vote. The built-in flags look only at the reply
itself (its length, how it ended, whether the strict parser accepts it); user
flags see the same thing. None of them may look at ground truth: a flag that
knows the right answer would turn voting into cheating.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol


class ParseError(ValueError):
    """Raised by a task's strict parser: the reply is not in the required format.

    Not a `maker.errors.MakerError`: it never escapes a run, it becomes a
    `format` red flag on the sample.
    """


class Reply(NamedTuple):
    """What a red flag may look at: the raw reply and how it ended.

    Reply and Verdict are NamedTuples: immutable, and cheap to build once per sample.
    """

    text: str
    finish_reason: str
    output_tokens: int


class RedFlag(Protocol):
    """A user flag: return a short reason to discard the sample, or None to keep it.

    It runs after the parser accepted the reply, so it also gets the parsed answer.
    """

    def __call__(self, reply: Reply, answer: Any) -> str | None: ...


def length_flag(reply: Reply, max_output_tokens: int) -> str | None:
    """The paper's strongest flag: long or cut-off replies are wrong far more often."""
    if reply.finish_reason == "length":
        return "length: cut off at the output cap"
    if reply.output_tokens > max_output_tokens:
        return f"length: {reply.output_tokens} output tokens > {max_output_tokens}"
    return None


class Verdict(NamedTuple):
    """One sample after red flags: either a vote (key and answer) or a flag reason."""

    key: str | None
    answer: Any = None
    flag: str | None = None


def judge(
    reply: Reply,
    parse: Callable[[str], Any],
    vote_key: Callable[[Any], str],
    *,
    max_output_tokens: int,
    extra_flags: tuple[RedFlag, ...] = (),
) -> Verdict:
    """Apply every red flag in order, then reduce a surviving reply to its vote key."""
    reason = length_flag(reply, max_output_tokens)
    if reason is not None:
        return Verdict(None, flag=reason)
    try:
        answer = parse(reply.text)
    except ParseError as exc:
        return Verdict(None, flag=f"format: {exc}")
    for flag in extra_flags:
        reason = flag(reply, answer)
        if reason:
            return Verdict(None, flag=f"user: {reason}")
    return Verdict(vote_key(answer), answer)
