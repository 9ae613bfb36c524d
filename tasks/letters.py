"""Next letter: a chain through the alphabet (wrapping after z), with the alphabet in the prompt.

Step i receives the voted letter of step i - 1 (`prev`) and answers the letter
after it. The alphabet is in the system message, so the step is a lookup, not
recall; its errors differ from counting's (a letter skipped or repeated, a
capital, a word instead of a letter), and a few letters are systematically
hard for a small model. Replies are one lowercase letter (strict full match),
one output token.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random
from typing import Any

from maker.errors import ConfigError
from maker.tasks._protocol import Chain, Inputs, Messages
from maker.voting import ParseError

ALPHABET = string.ascii_lowercase
REPLY_TOKENS = 2

_SYSTEM = (
    "The alphabet, in order: " + " ".join(ALPHABET) + ". After z comes a again.\n"
    "Reply with the letter that comes right after the given letter: one lowercase letter, nothing else."
)
_SHOTS: tuple[tuple[str, str], ...] = (("g", "h"), ("z", "a"), ("p", "q"))
_LETTER = re.compile(r"[a-z]")


def parse_letter(text: str) -> str:
    """Strict: the whole reply (surrounding whitespace aside) is one lowercase ASCII letter."""
    reply = text.strip()
    if _LETTER.fullmatch(reply) is None:
        raise ParseError(f"not one lowercase letter: {reply[:40]!r}")
    return reply


def next_letter(letter: str, steps: int = 1) -> str:
    return ALPHABET[(ALPHABET.index(letter) + steps) % len(ALPHABET)]


def _turns() -> Messages:
    out: list[dict[str, str]] = []
    for question, answer in _SHOTS:
        out += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return tuple(out)


_PREFIX: Messages = ({"role": "system", "content": _SYSTEM}, *_turns())


@dataclass(frozen=True, slots=True)
class LetterStep:
    """prev → the letter after it."""

    def prompt(self, inputs: Inputs) -> Messages:
        return (*_PREFIX, {"role": "user", "content": inputs["prev"]})

    def parse(self, text: str) -> str:
        return parse_letter(text)

    def vote_key(self, answer: str) -> str:
        return answer

    def expected(self, inputs: Inputs) -> str:
        return next_letter(inputs["prev"])


@dataclass(frozen=True, slots=True)
class Letters:
    """Walk the alphabet from `start` in `length` voted steps (z wraps to a)."""

    start: int = 0
    length: int = 52
    name: str = "letters"

    def __post_init__(self) -> None:
        if not 0 <= self.start < len(ALPHABET) or self.length < 1:
            raise ConfigError("need start in 0..25 (a..z) and length >= 1")

    @property
    def steps(self) -> int:
        return self.length

    def params(self) -> dict[str, Any]:
        return {"start": self.start, "length": self.length}

    def plan(self) -> Chain:
        return Chain(step=LetterStep(), length=self.length, first=ALPHABET[self.start])

    def step_inputs(self, step: int) -> dict[str, Any]:
        return {"prev": next_letter(ALPHABET[self.start], step)}

    def solved(self, outputs: Mapping[Any, Any], errors: int) -> bool:
        last = list(outputs.values())
        return errors == 0 and bool(last) and last[-1] == next_letter(ALPHABET[self.start], self.length)


class LettersOracle:
    """The simulator's knowledge of the alphabet."""

    def solve(self, messages: Messages) -> str | None:
        if len(messages) < 2 or messages[0].get("content") != _SYSTEM:
            return None
        letter = messages[-1]["content"].strip()
        return next_letter(letter) if _LETTER.fullmatch(letter) else None

    bare = True  # the simulator replies with the answer alone, as the strict parser requires

    def render(self, answer: str) -> str:
        return answer

    def wrong(self, answer: str, rng: Random) -> str:
        # The letter itself repeated, one skipped, or the one before.
        return next_letter(answer, rng.choice([-1, 1, -2]))
