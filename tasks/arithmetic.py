"""Long addition of two n-digit numbers, one digit-level decision per step.

The plan has a wide part and a deep part, like long addition on paper:

    col0  col1  col2 …  col(n-1)        n column sums, all independent (wide)
      │     │     │        │
    carry0→carry1→carry2 … →carry(n-1)  the carry chain, one column at a time (deep)
      └─────┴─────┴────────┴──→ result  a plain Python step writes the digits out

A column step adds the two digits of one column. A carry step adds the carry
coming in to its column's (voted) sum and answers with the digit written down
and the carry going out. Only voted answers travel along the edges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from random import Random
from typing import Any

import networkx as nx

from maker.errors import ConfigError
from maker.tasks._protocol import Inputs, Messages, StepGraph
from maker.voting import ParseError

MAX_DIGITS = 20_000

_SYSTEM = """You are a careful calculator. A long addition is being done one small step at a time, like on paper, \
and you do exactly one step. Columns are numbered from the right: column 0 holds the ones digits.
Follow the answer format exactly and put nothing after it."""

_COLUMN = """Column {column} of a long addition.
Top digit: {a}
Bottom digit: {b}

Add the two digits. Answer with exactly one line in this format:
sum = <the sum of the two digits>"""

_CARRY = """Column {column} of a long addition.
Column sum: {total}
Carry in: {carry}

Add the carry in to the column sum. Write down the ones digit of that total and carry its tens digit to the next \
column. Answer with exactly two lines in this format:
digit = <0-9>
carry = <0 or 1>"""

# [0-9], not \d: a non-ASCII digit is a format error, not a number. The number must
# end there: "1.5" or "15abc" is not 1 or 15.
_END = r"(?![0-9A-Za-z_]|[.,][0-9])"
_SUM_RE = re.compile(r"(?<![A-Za-z_])sum\s*=\s*([0-9]+)" + _END)
_DIGIT_RE = re.compile(r"(?<![A-Za-z_])digit\s*=\s*([0-9]+)" + _END)
_CARRY_RE = re.compile(r"(?<![A-Za-z_])carry\s*=\s*([0-9]+)" + _END)
_COLUMN_PROMPT = re.compile(r"^Column (\d+) of a long addition\.\nTop digit: (\d)\nBottom digit: (\d)\n", re.M)
_CARRY_PROMPT = re.compile(r"^Column (\d+) of a long addition\.\nColumn sum: (\d+)\nCarry in: (\d+)\n", re.M)


def _last_int(regex: re.Pattern[str], text: str, what: str, high: int) -> int:
    found = regex.findall(text)
    if not found:
        raise ParseError(f"no '{what} = ...' line")
    raw = found[-1]
    if len(raw) > 1 and raw.startswith("0"):
        raise ParseError(f"{what} {raw!r} has a leading zero")
    if len(raw) > len(str(high)):  # checked before int(): past 4,300 digits int() raises, and it is slow anyway
        raise ParseError(f"{what} must be 0..{high}, got a number of {len(raw):,} digits")
    value = int(raw)
    if value > high:
        raise ParseError(f"{what} must be 0..{high}, got {value}")
    return value


def parse_column(text: str) -> int:
    """Strict: the last `sum = N` line, N in 0..18."""
    return _last_int(_SUM_RE, text, "sum", 18)


def parse_carry(text: str) -> dict[str, int]:
    """Strict: the last `digit = D` (0..9) and the last `carry = C` (0 or 1)."""
    return {"digit": _last_int(_DIGIT_RE, text, "digit", 9), "carry": _last_int(_CARRY_RE, text, "carry", 1)}


@dataclass(frozen=True, slots=True)
class ColumnStep:
    """Add the two digits of one column (inputs `column`, `a`, `b`: fixed args)."""

    inputs = frozenset({"column", "a", "b"})

    def prompt(self, inputs: Inputs) -> Messages:
        user = _COLUMN.format(column=inputs["column"], a=inputs["a"], b=inputs["b"])
        return ({"role": "system", "content": _SYSTEM}, {"role": "user", "content": user})

    def parse(self, text: str) -> int:
        return parse_column(text)

    def vote_key(self, answer: int) -> str:
        return str(answer)

    def expected(self, inputs: Inputs) -> int:
        a: int = inputs["a"]
        b: int = inputs["b"]
        return a + b


@dataclass(frozen=True, slots=True)
class CarryStep:
    """Digit and carry out of one column (inputs `column`, `sum`: its column's answer, `prev`: the carry step before)."""

    inputs = frozenset({"column", "sum", "prev"})

    def prompt(self, inputs: Inputs) -> Messages:
        user = _CARRY.format(column=inputs["column"], total=inputs["sum"], carry=inputs["prev"]["carry"])
        return ({"role": "system", "content": _SYSTEM}, {"role": "user", "content": user})

    def parse(self, text: str) -> dict[str, int]:
        return parse_carry(text)

    def vote_key(self, answer: Mapping[str, int]) -> str:
        return f"{answer['digit']},{answer['carry']}"

    def expected(self, inputs: Inputs) -> dict[str, int]:
        return _carry_out(inputs["sum"], inputs["prev"]["carry"])


def _carry_out(total: int, carry: int) -> dict[str, int]:
    value = total + carry
    return {"digit": value % 10, "carry": value // 10}


@dataclass(frozen=True, slots=True)
class WriteDigits:
    """The plain Python step at the end: the digits of the sum, most significant first."""

    def run(self, inputs: Inputs) -> str:
        columns = sorted((int(name[1:]), out) for name, out in inputs.items())
        digits = "".join(str(out["digit"]) for _, out in reversed(columns))
        final_carry = columns[-1][1]["carry"]
        return (str(final_carry) if final_carry else "") + digits


def operands(digits: int, instance: int) -> tuple[str, str]:
    """The two `digits`-digit numbers of instance `instance` (no leading zeros)."""
    rng = Random(f"arithmetic/{digits}/{instance}")

    def number() -> str:
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(digits - 1))

    return number(), number()


def add_decimal(a: str, b: str) -> str:
    """The exact sum of two decimal strings, column by column.

    Not int(a) + int(b): Python refuses to convert decimal strings of more than
    4,300 digits to int (a denial-of-service guard), and the ground truth must
    hold at every size the task allows.
    """
    width = max(len(a), len(b))
    digits, carry = [], 0
    for x, y in zip(reversed(a.rjust(width, "0")), reversed(b.rjust(width, "0")), strict=False):
        out = _carry_out(int(x) + int(y), carry)
        digits.append(str(out["digit"]))
        carry = out["carry"]
    return (str(carry) if carry else "") + "".join(reversed(digits))


@dataclass(frozen=True, slots=True)
class Addition:
    """Add two random `digits`-digit numbers in 2·digits voted steps (and one Python step)."""

    digits: int = 100
    instance: int = 0
    name: str = "arithmetic"

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= MAX_DIGITS:
            raise ConfigError(f"digits must be between 1 and {MAX_DIGITS:,}, got {self.digits}")
        if self.instance < 0:
            raise ConfigError(f"instance must be >= 0, got {self.instance}")

    @property
    def numbers(self) -> tuple[str, str]:
        return operands(self.digits, self.instance)

    def params(self) -> dict[str, Any]:
        return {"digits": self.digits, "instance": self.instance}

    def plan(self) -> StepGraph:
        a, b = self.numbers
        graph: StepGraph = nx.DiGraph()
        column, carry, write = ColumnStep(), CarryStep(), WriteDigits()
        graph.add_node("result", step=write)
        for i in range(self.digits):
            graph.add_node(f"col{i}", step=column, args={"column": i, "a": int(a[-1 - i]), "b": int(b[-1 - i])})
            first = {"prev": {"digit": 0, "carry": 0}} if i == 0 else {}
            graph.add_node(f"carry{i}", step=carry, args={"column": i, **first})
            graph.add_edge(f"col{i}", f"carry{i}", name="sum")
            if i:
                graph.add_edge(f"carry{i - 1}", f"carry{i}", name="prev")
            graph.add_edge(f"carry{i}", "result", name=f"d{i}")
        return graph

    def answer(self) -> str:
        return add_decimal(*self.numbers)

    def solved(self, outputs: Mapping[Any, Any], errors: int) -> bool:
        return errors == 0 and outputs.get("result") == self.answer()


class AdditionOracle:
    """The simulator's knowledge of long addition: read the digits off the prompt and add."""

    def solve(self, messages: Messages) -> Any | None:
        return _solve(messages[-1]["content"]) if messages else None

    def render(self, answer: Any) -> str:
        if isinstance(answer, int):
            return f"sum = {answer}"
        return f"digit = {answer['digit']}\ncarry = {answer['carry']}"

    def wrong(self, answer: Any, rng: Random) -> Any:
        if isinstance(answer, int):
            # Off by one (a slip) or off by ten (a lost carry): both plausible sums.
            options = [v for v in (answer - 1, answer + 1, answer + 10, answer - 10) if 0 <= v <= 18]
            return rng.choice(options)
        digit, carry = answer["digit"], answer["carry"]
        columns = [{"digit": (digit + d) % 10, "carry": carry} for d in (-1, 1)]
        columns.append({"digit": digit, "carry": 1 - carry})  # the carry forgotten, or invented
        return rng.choice(columns)


@lru_cache(maxsize=4096)
def _solve(user: str) -> Any | None:
    m = _COLUMN_PROMPT.search(user)
    if m:
        return int(m.group(2)) + int(m.group(3))
    m = _CARRY_PROMPT.search(user)
    if m:
        return _carry_out(int(m.group(2)), int(m.group(3)))
    return None
