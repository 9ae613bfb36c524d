"""Counting: a chain of "add one" steps that a small real model can do, and where it cannot.

Step i receives the voted number of step i - 1 (`prev`) and answers prev + 1,
so a run from `start` of `length` steps visits the inputs start .. start +
length - 1 and ends at start + length. The prompt is a chat few-shot: a short
system message, worked examples as earlier turns, then the number. Replies
are one number and nothing else (strict full match), so a cap of 4 output
tokens is enough below 1,000 (Qwen's tokenizer writes one token per digit).

It exists to show both halves of voting on a real model: on most inputs the
errors are rare and varied (voting removes them), on a few the model copies
the input or jumps elsewhere most of the time (voting locks that in). See
docs/models.md for the measured rates with Qwen2.5-Coder-0.5B-Instruct.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random
from typing import Any

from maker.errors import ConfigError
from maker.tasks._protocol import Chain, Inputs, Messages
from maker.voting import ParseError

MAX_VALUE = 999_999
# Suggested output cap for this task's replies (Voting(max_output_tokens=...)).
REPLY_TOKENS = 4

_SYSTEM = "You add one to a number. Reply with the result only: digits, nothing else."
# Worked examples, as earlier chat turns. Chosen by measurement (docs/models.md):
# away from the inputs a demonstration visits, with carries shown.
_SHOTS: tuple[tuple[int, int], ...] = (
    (7, 8),
    (19, 20),
    (44, 45),
    (99, 100),
    (138, 139),
    (250, 251),
    (509, 510),
    (86, 87),
)
_NUMBER = re.compile(r"(0|[1-9][0-9]{0,5})")


def parse_number(text: str) -> int:
    """Strict: the whole reply (surrounding whitespace aside) is one non-negative integer without leading zeros."""
    m = _NUMBER.fullmatch(text.strip())
    if m is None:
        raise ParseError(f"not a bare number: {text.strip()[:40]!r}")
    return int(m.group(1))


def _turns(shots: tuple[tuple[int, int], ...]) -> Messages:
    out: list[dict[str, str]] = []
    for question, answer in shots:
        out += [{"role": "user", "content": str(question)}, {"role": "assistant", "content": str(answer)}]
    return tuple(out)


_PREFIX: Messages = ({"role": "system", "content": _SYSTEM}, *_turns(_SHOTS))


@dataclass(frozen=True, slots=True)
class CountStep:
    """prev → prev + 1."""

    def prompt(self, inputs: Inputs) -> Messages:
        return (*_PREFIX, {"role": "user", "content": str(inputs["prev"])})

    def parse(self, text: str) -> int:
        return parse_number(text)

    def vote_key(self, answer: int) -> str:
        return str(answer)

    def expected(self, inputs: Inputs) -> int:
        prev: int = inputs["prev"]
        return prev + 1


@dataclass(frozen=True, slots=True)
class Count:
    """Count from `start` in `length` voted steps of "add one"."""

    start: int = 30
    length: int = 100
    name: str = "count"

    def __post_init__(self) -> None:
        if self.start < 0 or self.length < 1 or self.start + self.length > MAX_VALUE:
            raise ConfigError(f"need start >= 0, length >= 1 and start + length <= {MAX_VALUE:,}")

    @property
    def steps(self) -> int:
        return self.length

    def params(self) -> dict[str, Any]:
        return {"start": self.start, "length": self.length}

    def plan(self) -> Chain:
        return Chain(step=CountStep(), length=self.length, first=self.start)

    def step_inputs(self, step: int) -> dict[str, Any]:
        """Ground truth: step `step` (0-based) receives start + step."""
        return {"prev": self.start + step}

    def solved(self, outputs: Mapping[Any, Any], errors: int) -> bool:
        last = list(outputs.values())
        return errors == 0 and bool(last) and last[-1] == self.start + self.length


class CountOracle:
    """The simulator's knowledge of counting: the number in the last message, plus one."""

    def solve(self, messages: Messages) -> int | None:
        if len(messages) < 2 or messages[0].get("content") != _SYSTEM:
            return None
        m = _NUMBER.fullmatch(messages[-1]["content"].strip())
        return int(m.group(1)) + 1 if m else None

    bare = True  # the simulator replies with the answer alone, as the strict parser requires

    def render(self, answer: int) -> str:
        return str(answer)

    def wrong(self, answer: int, rng: Random) -> int:
        # A real small model's slips: the input copied, a skipped number, a wrong carry.
        return rng.choice([answer - 1, answer + 1, answer + 9 if answer % 10 == 0 else answer + 10])
