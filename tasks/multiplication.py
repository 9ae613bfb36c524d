"""Multi-digit multiplication, decomposed by the model itself (the paper's Appendix F).

Nobody writes this task's plan by hand. Each problem (a × b) goes to a
decomposer, which either calls it atomic (both numbers have at most two
digits) or splits every longer number into a high and a low half and lists
the partial products with their shifts; the partial products are solved the
same way, recursively; a composer adds the shifted partial products. Every
one of those decisions is voted (`maker._recursive`); decompositions and
compositions by judges choosing among candidates, atomic products by their
keys. `--planner single` asks for each product in one voted call instead, the
baseline that shows why decomposition pays.

Problems are drawn deterministically from a seed: the paper's benchmark sizes
are 5×5, 6×6 and 10×10 digits, 200 problems each. Ground truth only scores.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from random import Random
from typing import TYPE_CHECKING, Any

import networkx as nx

from maker.errors import ConfigError
from maker.tasks._protocol import StepGraph
from maker.voting import ParseError

if TYPE_CHECKING:
    from maker._recursive import RecursiveProblem

MAX_DIGITS = 40
ATOMIC_DIGITS = 2  # a product of two numbers this short is done directly
PLANNERS = ("recursive", "single")

SYSTEM = (
    "You are a careful arithmetician. A long multiplication is being worked out one small decision at a time, "
    "and you make exactly one of them. Follow the answer format exactly and put nothing after it."
)

DECOMPOSE = """Multiplication to plan: {a} × {b}

If both numbers have at most 2 digits, the multiplication is small enough to do directly. Then answer with exactly \
one line:
split = atomic

Otherwise split it into partial products. Split every number that has more than 2 digits into a high part and a \
low part: the low part is its last ⌊n/2⌋ digits (n = its number of digits), the high part is the rest. A number \
with at most 2 digits is not split. Multiply every part of the first number by every part of the second, high \
parts first. The shift of a partial product is the number of digits in the low parts it leaves out: the low part \
of a split number counts when its high part is used. Write parts without leading zeros (07 is 7, 00 is 0). Answer \
with one line per partial product, in this format:
part = <digits> × <digits> << <shift>"""

SOLVE = """Multiply: {a} × {b}

Answer with exactly one line in this format:
product = <the product, digits only>"""

COMPOSE = """Combine the partial products of {a} × {b}.
Each line is a partial product and its shift; shift s means: append s zeros (multiply by 10^s).
{lines}

Add up the shifted partial products. Answer with exactly one line in this format:
product = <the sum, digits only>"""

_END = r"(?![0-9A-Za-z_]|[.,][0-9])"
_PRODUCT_RE = re.compile(r"(?<![A-Za-z_])product\s*=\s*([0-9]+)" + _END)
_PART_RE = re.compile(r"^\s*part\s*=\s*([0-9]+)\s*[×x*]\s*([0-9]+)\s*<<\s*([0-9]+)\s*$", re.M)
_ATOMIC_RE = re.compile(r"^\s*split\s*=\s*atomic\s*$", re.M)
DECOMPOSE_RE = re.compile(r"^Multiplication to plan: ([0-9]+) × ([0-9]+)$", re.M)
SOLVE_RE = re.compile(r"^Multiply: ([0-9]+) × ([0-9]+)$", re.M)
COMPOSE_RE = re.compile(r"^Combine the partial products of ([0-9]+) × ([0-9]+)\.$", re.M)
COMPOSE_LINE_RE = re.compile(r"^([0-9]+) << ([0-9]+)$", re.M)


def _number(raw: str, what: str, limit: int) -> str:
    if len(raw) > 1 and raw.startswith("0"):
        raise ParseError(f"{what} {raw[:20]!r} has a leading zero")
    if len(raw) > limit:
        raise ParseError(f"{what} has {len(raw)} digits, more than {limit}")
    return raw


def parse_product(text: str) -> str:
    """Strict: the last `product = N` line; N digits only, no leading zero (a string: products get long)."""
    found = _PRODUCT_RE.findall(text)
    if not found:
        raise ParseError("no 'product = ...' line")
    return _number(found[-1], "product", 2 * MAX_DIGITS)


def parse_decomposition(text: str) -> dict[str, Any]:
    """Strict: `split = atomic`, or one `part = A × B << S` line per partial product (not both)."""
    parts = _PART_RE.findall(text)
    atomic = bool(_ATOMIC_RE.search(text))
    if atomic and parts:
        raise ParseError("both 'split = atomic' and 'part = ...' lines")
    if atomic:
        return {"atomic": True}
    if not parts:
        raise ParseError("no 'split = atomic' line and no 'part = A × B << S' lines")
    if len(parts) > 16:
        raise ParseError(f"{len(parts)} partial products; a split has at most 4")
    problems = [[_number(a, "part", MAX_DIGITS), _number(b, "part", MAX_DIGITS)] for a, b, _ in parts]
    shifts = [int(_number(s, "shift", 3)) for _, _, s in parts]
    return {"parts": problems, "rule": shifts}


def render_decomposition(d: Mapping[str, Any]) -> str:
    if d.get("atomic"):
        return "split = atomic"
    return "\n".join(f"part = {a} × {b} << {s}" for (a, b), s in zip(d["parts"], d["rule"], strict=True))


def render_product(product: str) -> str:
    return f"product = {product}"


def _halves(x: str) -> list[tuple[str, int]]:
    """A number's parts with the shift each one carries: itself, or its high and low halves."""
    if len(x) <= ATOMIC_DIGITS:
        return [(x, 0)]
    low = len(x) // 2
    return [(str(int(x[:-low])), low), (str(int(x[-low:])), 0)]


def expected_decomposition(a: str, b: str) -> dict[str, Any]:
    """The split the prompt asks for (ground truth, for scoring)."""
    if len(a) <= ATOMIC_DIGITS and len(b) <= ATOMIC_DIGITS:
        return {"atomic": True}
    pairs = [((x, sx), (y, sy)) for x, sx in _halves(a) for y, sy in _halves(b)]
    return {"parts": [[x, y] for (x, _), (y, _) in pairs], "rule": [sx + sy for (_, sx), (_, sy) in pairs]}


def compose(answers: Sequence[str], shifts: Sequence[int]) -> str:
    """The sum of the shifted partial products (exact: Python integers)."""
    return str(sum(int(p) * 10**s for p, s in zip(answers, shifts, strict=True)))


def decompose_prompt(problem: Sequence[str]) -> str:
    return DECOMPOSE.format(a=problem[0], b=problem[1])


def solve_prompt(problem: Sequence[str]) -> str:
    return SOLVE.format(a=problem[0], b=problem[1])


def compose_prompt(problem: Sequence[str], parts: Sequence[Any], rule: Sequence[int], answers: Sequence[str]) -> str:
    lines = "\n".join(f"{p} << {s}" for p, s in zip(answers, rule, strict=True))
    return COMPOSE.format(a=problem[0], b=problem[1], lines=lines)


@lru_cache(maxsize=1)
def multiplication_problem() -> RecursiveProblem:
    """The task as a recursive problem: prompts, strict parsers, canonical keys, ground truth."""
    from maker._recursive import RecursiveProblem, RecursiveRole, canonical

    return RecursiveProblem(
        decompose=RecursiveRole(
            prompt=decompose_prompt,
            parse=parse_decomposition,
            key=canonical,
            show=render_decomposition,
            expected=lambda problem: expected_decomposition(*problem),
            judged=True,
        ),
        solve=RecursiveRole(
            prompt=solve_prompt,
            parse=parse_product,
            key=str,
            show=render_product,
            expected=lambda problem: str(int(problem[0]) * int(problem[1])),
        ),
        compose=RecursiveRole(
            prompt=compose_prompt,
            parse=parse_product,
            key=str,
            show=render_product,
            expected=lambda problem, parts, rule, answers: compose(answers, rule),
            judged=True,
        ),
        describe=lambda problem: f"{problem[0]} × {problem[1]}",
        system=SYSTEM,
    )


def operands(digits: int, index: int, seed: int = 0) -> tuple[str, str]:
    """Problem `index` of the `digits`×`digits` set: two numbers without leading zeros."""
    rng = Random(f"multiplication/{seed}/{digits}/{index}")

    def number() -> str:
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(digits - 1))

    return number(), number()


@dataclass(frozen=True, slots=True)
class Multiplication:
    """`problems` random `digits`×`digits` multiplications, decomposed recursively by the model (or not)."""

    digits: int = 5
    problems: int = 200
    planner: str = "recursive"
    problem_seed: int = 0
    max_depth: int = 5
    max_nodes: int = 1_000
    name: str = "multiplication"
    # The plan of the latest run, for its figures (not a parameter: compared and hashed by none).
    _latest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= MAX_DIGITS:
            raise ConfigError(f"digits must be between 1 and {MAX_DIGITS}, got {self.digits}")
        if self.problems < 1:
            raise ConfigError(f"problems must be >= 1, got {self.problems}")
        if self.planner not in PLANNERS:
            raise ConfigError(f"planner must be one of {', '.join(PLANNERS)}, got {self.planner!r}")

    def params(self) -> dict[str, Any]:
        return {
            "digits": self.digits,
            "problems": self.problems,
            "planner": self.planner,
            "problem_seed": self.problem_seed,
            "max_depth": self.max_depth,
            "max_nodes": self.max_nodes,
        }

    def pairs(self) -> dict[str, tuple[str, str]]:
        return {f"p{i}": operands(self.digits, i, self.problem_seed) for i in range(self.problems)}

    def plan(self) -> StepGraph:
        if self.planner == "single":
            return self._single()
        from maker._recursive import RecursiveLimits, recursive_plan

        limits = RecursiveLimits(max_depth=self.max_depth, max_nodes=self.max_nodes)
        dag = recursive_plan(multiplication_problem(), {k: list(v) for k, v in self.pairs().items()}, limits=limits)
        self._latest["dag"] = dag
        return dag

    def _single(self) -> StepGraph:
        from maker._recursive import SOLVE as ROLE
        from maker._recursive import RoleStep, node_id

        step = RoleStep(multiplication_problem(), ROLE)
        graph: StepGraph = nx.DiGraph()
        for root, pair in self.pairs().items():
            graph.add_node(node_id(root, ROLE), step=step, args={"problem": list(pair)})
        return graph

    def products(self, outputs: Mapping[Hashable, Any]) -> dict[str, str | None]:
        """Each problem's answer, from a run's outputs (None where it has none)."""
        found: dict[str, str | None] = dict.fromkeys(self.pairs())
        for node, answer in outputs.items():
            root, _, rest = str(node).partition(":")
            if root in found and "." not in root and rest in ("solve", "compose"):
                found[root] = answer
        return found

    def solve_rate(self, outputs: Mapping[Hashable, Any]) -> tuple[int, int]:
        """(problems answered right, problems)."""
        products = self.products(outputs)
        right = sum(products[root] == str(int(a) * int(b)) for root, (a, b) in self.pairs().items())
        return right, len(products)

    def solved(self, outputs: Mapping[Hashable, Any], errors: int) -> bool:
        right, total = self.solve_rate(outputs)
        return right == total

    def figures(self, outputs: Mapping[Hashable, Any], samples: int, cost: float | None = None) -> dict[str, Any]:
        """What `maker run multiplication` prints: solve rate, tree size and samples per problem."""
        right, total = self.solve_rate(outputs)
        dag = self._latest.get("dag")
        plan = getattr(dag, "plan", None)
        sizes = list(plan.sizes.values()) if plan is not None else [1] * total
        figures: dict[str, Any] = {
            "solve_rate": right / total,
            "solved_problems": right,
            "problems": total,
            "tree_nodes_mean": sum(sizes) / len(sizes),
            "tree_nodes_max": max(sizes),
            "samples_per_problem": samples / total,
        }
        if cost is not None:
            figures["cost_per_problem_usd"] = cost / total
        return figures
