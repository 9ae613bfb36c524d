"""Sorting a list with a sorting network: one compare-exchange per step, in parallel layers.

Batcher's odd–even merge sort is a fixed network of comparators: each takes
the values on two positions ("wires") and puts the smaller on the lower
position. Comparators that touch different wires are independent, so the plan
is wide (about n/2 steps per layer) and shallow (log² n layers): 64 numbers
take 543 comparators in 21 layers. Each comparator is one voted step; a plain
Python step reads the sorted list off the wires at the end.

A step's inputs are the outputs of the comparators that last wrote its two
wires (or the initial values); node args say which side of each output
(low or high) is its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from random import Random
from typing import Any

import networkx as nx

from maker.errors import ConfigError
from maker.tasks._protocol import Inputs, Messages, StepGraph
from maker.voting import ParseError

MAX_LENGTH = 2048
MAX_VALUE = 999

_SYSTEM = """You are one comparator in a sorting network. A long list is being sorted by many small \
compare-exchange steps; you do exactly one. Follow the answer format exactly and put nothing after it."""

_USER = """Compare-exchange positions {i} and {j} of the list.
Value at position {i}: {a}
Value at position {j}: {b}

Put the smaller value first. Answer with exactly two lines in this format:
low = <the smaller value>
high = <the larger value>"""

_END = r"(?![0-9A-Za-z_]|[.,][0-9])"  # "1.5" or "15abc" is not a whole number
_LOW_RE = re.compile(r"(?<![A-Za-z_])low\s*=\s*([0-9]+)" + _END)
_HIGH_RE = re.compile(r"(?<![A-Za-z_])high\s*=\s*([0-9]+)" + _END)
_PROMPT = re.compile(r"^Value at position \d+: (\d+)\nValue at position \d+: (\d+)\n", re.M)


def _last_value(regex: re.Pattern[str], text: str, what: str) -> int:
    found = regex.findall(text)
    if not found:
        raise ParseError(f"no '{what} = ...' line")
    raw = found[-1]
    if len(raw) > 1 and raw.startswith("0"):
        raise ParseError(f"{what} {raw!r} has a leading zero")
    if len(raw) > len(str(MAX_VALUE)):
        raise ParseError(f"{what} {raw[:12]!r} is out of range 0..{MAX_VALUE}")
    return int(raw)


def parse_pair(text: str) -> list[int]:
    """Strict: the last `low = A` and the last `high = B`, and A <= B (the format asks for order)."""
    low, high = _last_value(_LOW_RE, text, "low"), _last_value(_HIGH_RE, text, "high")
    if low > high:
        raise ParseError(f"low {low} is larger than high {high}")
    return [low, high]


def _side(value: Any, side: str | None) -> int:
    """A wire's value: an initial number, or one side of a comparator's [low, high]."""
    # Answers are JSON values: an int, or a comparator's [low, high] of ints.
    wire: int = value if side is None else value[0 if side == "low" else 1]
    return wire


@dataclass(frozen=True, slots=True)
class CompareStep:
    """One comparator. Inputs `a`, `b` (values or comparator outputs), args `i`, `j`, `a_side`, `b_side`."""

    inputs = frozenset({"i", "j", "a", "b"})

    def values(self, inputs: Inputs) -> tuple[int, int]:
        return _side(inputs["a"], inputs.get("a_side")), _side(inputs["b"], inputs.get("b_side"))

    def prompt(self, inputs: Inputs) -> Messages:
        a, b = self.values(inputs)
        user = _USER.format(i=inputs["i"], j=inputs["j"], a=a, b=b)
        return ({"role": "system", "content": _SYSTEM}, {"role": "user", "content": user})

    def parse(self, text: str) -> list[int]:
        return parse_pair(text)

    def vote_key(self, answer: list[int]) -> str:
        return f"{answer[0]},{answer[1]}"

    def expected(self, inputs: Inputs) -> list[int]:
        return sorted(self.values(inputs))


@dataclass(frozen=True, slots=True)
class ReadWires:
    """The plain Python step at the end: wire values in position order (inputs `w0`…, args `sides`)."""

    def run(self, inputs: Inputs) -> list[int]:
        sides = inputs["sides"]
        return [_side(inputs[f"w{i}"], sides[i]) for i in range(len(sides))]


def batcher_pairs(n: int) -> Iterator[tuple[int, int]]:
    """Comparators of Batcher's odd–even merge sort for n wires, in layer order.

    Built for the next power of two; comparators that touch a wire >= n are
    dropped (those wires would hold +infinity, which no comparator moves), so
    the network still sorts any n values.
    """
    size = 1
    while size < n:
        size *= 2
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    lo, hi = i + j, i + j + k
                    if (lo // (2 * p)) == (hi // (2 * p)) and hi < n:
                        yield lo, hi
            k //= 2
        p *= 2


def values(length: int, instance: int) -> list[int]:
    """The list to sort for instance `instance` (duplicates allowed)."""
    rng = Random(f"sorting/{length}/{instance}")
    return [rng.randint(0, MAX_VALUE) for _ in range(length)]


@dataclass(frozen=True, slots=True)
class Sorting:
    """Sort `length` random numbers (0..999) with Batcher's network, one voted step per comparator."""

    length: int = 64
    instance: int = 0
    name: str = "sorting"

    def __post_init__(self) -> None:
        if not 2 <= self.length <= MAX_LENGTH:
            raise ConfigError(f"length must be between 2 and {MAX_LENGTH:,}, got {self.length}")
        if self.instance < 0:
            raise ConfigError(f"instance must be >= 0, got {self.instance}")

    @property
    def values(self) -> list[int]:
        return values(self.length, self.instance)

    def params(self) -> dict[str, Any]:
        return {"length": self.length, "instance": self.instance}

    def plan(self) -> StepGraph:
        graph: StepGraph = nx.DiGraph()
        initial = self.values
        # Who last wrote each wire: (node, side), or (None, None) for the initial value.
        writer: list[tuple[str | None, str | None]] = [(None, None)] * self.length
        compare = CompareStep()
        for number, (i, j) in enumerate(batcher_pairs(self.length)):
            node = f"c{number}"
            args: dict[str, Any] = {"i": i, "j": j}
            for name, wire in (("a", i), ("b", j)):
                source, side = writer[wire]
                if source is None:
                    args[name] = initial[wire]
                else:
                    args[f"{name}_side"] = side
            graph.add_node(node, step=compare, args=args)
            for name, wire in (("a", i), ("b", j)):
                source, _ = writer[wire]
                if source is not None:
                    _feed(graph, source, node, name)
            writer[i], writer[j] = (node, "low"), (node, "high")
        graph.add_node("result", step=ReadWires(), args={"sides": [side for _, side in writer]})
        for wire, (source, _) in enumerate(writer):
            if source is None:
                raise AssertionError(f"wire {wire} is never compared")  # impossible for length >= 2
            _feed(graph, source, "result", f"w{wire}")
        return graph

    def answer(self) -> list[int]:
        return sorted(self.values)

    def solved(self, outputs: Mapping[Any, Any], errors: int) -> bool:
        return errors == 0 and outputs.get("result") == self.answer()


def _feed(graph: StepGraph, source: str, target: str, name: str) -> None:
    # One edge per pair in a DiGraph: a comparator whose both outputs feed the
    # same step carries a tuple of input names on its one edge.
    if graph.has_edge(source, target):
        old = graph.edges[source, target]["name"]
        graph.edges[source, target]["name"] = (*(old if isinstance(old, tuple) else (old,)), name)
    else:
        graph.add_edge(source, target, name=name)


class SortingOracle:
    """The simulator's knowledge of compare-exchange: read the two values, order them."""

    def solve(self, messages: Messages) -> list[int] | None:
        return _solve(messages[-1]["content"]) if messages else None

    def render(self, answer: list[int]) -> str:
        return f"low = {answer[0]}\nhigh = {answer[1]}"

    def wrong(self, answer: list[int], rng: Random) -> list[int]:
        low, high = answer
        options: list[list[int]] = []
        if low != high:
            options.append([high, low])  # not exchanged: the strict parser flags it
        # A misread digit: one of the values slips by one, ten or a hundred.
        for delta in (1, 10, 100):
            for slipped in ([low - delta, high], [low, high + delta], [low + delta, high], [low, high - delta]):
                if 0 <= slipped[0] <= slipped[1] <= MAX_VALUE and slipped != answer:
                    options.append(slipped)
        return rng.choice(options)


@lru_cache(maxsize=4096)
def _solve(user: str) -> list[int] | None:
    m = _PROMPT.search(user)
    if m is None:
        return None
    return sorted((int(m.group(1)), int(m.group(2))))
