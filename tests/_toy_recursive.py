"""A toy recursive problem for tests: sum a list of numbers by splitting it.

Small enough that a test states every reply, through a scripted backend that
answers from the prompt (a real `Backend`, as the runtime sees it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from maker import Completion, Request
from maker._recursive import RecursiveProblem, RecursiveRole, atomic, split
from maker.voting import ParseError

_LIST = re.compile(r"Numbers: \[([0-9, ]*)\]")


def numbers(text: str) -> list[int]:
    m = _LIST.search(text)
    assert m is not None, text
    return [int(x) for x in m.group(1).split(",") if x.strip()]


def parse_split(text: str) -> dict[str, Any]:
    last = text.strip().splitlines()[-1] if text.strip() else ""
    if last == "split = atomic":
        return atomic()
    m = re.fullmatch(r"split = ((?:[0-9]+(?:,[0-9]+)*)(?: \| [0-9]+(?:,[0-9]+)*)*)", last)
    if m is None:
        raise ParseError("no 'split = ...' last line")
    return split([[int(x) for x in part.split(",")] for part in m.group(1).split(" | ")], "sum")


def parse_total(text: str) -> int:
    m = re.fullmatch(r"total = ([0-9]+)", text.strip().splitlines()[-1] if text.strip() else "")
    if m is None:
        raise ParseError("no 'total = N' last line")
    return int(m.group(1))


def show_split(d: dict[str, Any]) -> str:
    if d.get("atomic"):
        return "split = atomic"
    return "split = " + " | ".join(",".join(map(str, p)) for p in d["parts"])


def expected_split(problem: list[int]) -> dict[str, Any]:
    if len(problem) <= 2:
        return atomic()
    half = (len(problem) + 1) // 2
    return split([problem[:half], problem[half:]], "sum")


def toy_problem(*, judged: Sequence[str] = ()) -> RecursiveProblem:
    return RecursiveProblem(
        decompose=RecursiveRole(
            prompt=lambda problem: f"Decompose. Numbers: {problem}",
            parse=parse_split,
            show=show_split,
            expected=expected_split,
            judged="decompose" in judged,
        ),
        solve=RecursiveRole(
            prompt=lambda problem: f"Solve. Numbers: {problem}",
            parse=parse_total,
            key=str,
            show=lambda a: f"total = {a}",
            expected=lambda problem: sum(problem),
            judged="solve" in judged,
        ),
        compose=RecursiveRole(
            prompt=lambda problem, parts, rule, answers: f"Compose. Numbers: {answers}",
            parse=parse_total,
            key=str,
            show=lambda a: f"total = {a}",
            expected=lambda problem, parts, rule, answers: sum(answers),
            judged="compose" in judged,
        ),
        describe=lambda problem: "sum of " + str(problem),
    )


def honest(request: Request) -> str:
    """A perfect toy model: splits lists longer than 2 in halves, adds, judges the right candidate."""
    text = request.messages[-1]["content"]
    if "Candidate 1:" in text:
        return _judge(text)
    values = numbers(text)
    if text.startswith("Decompose."):
        return show_split(expected_split(values))
    return f"total = {sum(values)}"


def _judge(text: str) -> str:
    question, _, listing = text.partition("Several answers were proposed.")
    shown = re.findall(r"Candidate [0-9]+:\n(.*)", listing)
    right = honest(Request(({"role": "user", "content": question.strip()},), 0.0, 100))
    return f"choice = {shown.index(right) + 1 if right in shown else 1}"


def scripted(overrides: dict[str, Callable[[Request], str] | Sequence[str]]) -> Callable[[Request], str]:
    """The honest model, except at the named steps (a reply function, or replies by sample index)."""

    def reply(request: Request) -> str:
        special = overrides.get(str(request.step))
        if special is None:
            return honest(request)
        if callable(special):
            return special(request)
        return special[request.sample]

    return reply


def completion(text: str) -> Completion:
    return Completion(text, "stop", 10, 10, 0.0)
