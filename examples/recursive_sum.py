"""Decompose your own problem recursively: the model splits it, solves the pieces, puts them together.

The problem here is adding up long lists of numbers. You write three prompts
and three strict parsers (decompose, solve, compose); maker offers each list
to the decomposer, votes its proposal (by judges choosing among candidates),
solves the pieces recursively and in parallel, votes each composition, and
records everything in a trace that resume and replay read back.

    python examples/recursive_sum.py                 # offline, on the simulated model
    python examples/recursive_sum.py --k 1           # no voting: watch wrong splits and sums get through
    python examples/recursive_sum.py --model openai/gpt-4.1-mini   # a real model ($OPENAI_API_KEY)
"""

from __future__ import annotations

import argparse
import random
import re
from typing import Any

import maker
from maker.traces import read_events
from maker.voting import AheadByK, ParseError, Voting

SPLIT = """Numbers: {numbers}

If there are at most 3 numbers, answer with exactly one line: split = atomic
Otherwise split the list into two halves (the first half gets the extra number) and answer with one line:
split = <first half, comma-separated> | <second half, comma-separated>"""
ADD = "Numbers: {numbers}\n\nAdd them up. Answer with exactly one line: total = <the sum>"
COMBINE = "Partial totals: {answers}\n\nAdd them up. Answer with exactly one line: total = <the sum>"


def parse_split(text: str) -> dict[str, Any]:
    last = text.strip().splitlines()[-1] if text.strip() else ""
    if re.fullmatch(r"split = atomic", last):
        return maker.atomic()
    m = re.fullmatch(r"split = ([0-9]+(?:,[0-9]+)*) \| ([0-9]+(?:,[0-9]+)*)", last)
    if m is None:
        raise ParseError("no 'split = atomic' or 'split = A | B' last line")  # a red flag, never repaired
    return maker.split([[int(x) for x in half.split(",")] for half in m.groups()], rule="sum")


def parse_total(text: str) -> int:
    m = re.fullmatch(r"total = ([0-9]+)", text.strip().splitlines()[-1] if text.strip() else "")
    if m is None:
        raise ParseError("no 'total = N' last line")
    return int(m.group(1))


def show_split(d: dict[str, Any]) -> str:
    """A candidate as judges see it: in the decomposer's own reply format."""
    if d.get("atomic"):
        return "split = atomic"
    return "split = " + " | ".join(",".join(map(str, half)) for half in d["parts"])


def right_split(problem: list[int]) -> dict[str, Any]:
    """Ground truth: scores decisions after they are made, never steers them."""
    if len(problem) <= 3:
        return maker.atomic()
    half = (len(problem) + 1) // 2
    return maker.split([problem[:half], problem[half:]], rule="sum")


def _csv(values: list[int]) -> str:
    return ", ".join(map(str, values))


PROBLEM = maker.RecursiveProblem(
    decompose=maker.RecursiveRole(
        prompt=lambda problem: SPLIT.format(numbers=_csv(problem)),
        parse=parse_split,
        show=show_split,
        expected=right_split,
        judged=True,  # free-form proposals: judges pick one of 2k - 1 candidates
    ),
    solve=maker.RecursiveRole(
        prompt=lambda problem: ADD.format(numbers=_csv(problem)),
        parse=parse_total,
        key=str,
        expected=lambda problem: sum(problem),
    ),
    compose=maker.RecursiveRole(
        prompt=lambda problem, parts, rule, answers: COMBINE.format(answers=_csv(answers)),
        parse=parse_total,
        key=str,
        expected=lambda problem, parts, rule, answers: sum(answers),
    ),
    describe=lambda problem: f"the sum of {len(problem)} numbers",
    system="You are a careful assistant doing one small step of a bigger job. Follow the answer format exactly.",
)


# -- the simulated model: reads each prompt like a real model and answers in its format ------


def _numbers(text: str, label: str) -> list[int] | None:
    m = re.search(rf"^{label}: ([0-9, ]+)$", text, re.M)
    return [int(x) for x in m.group(1).split(", ")] if m else None


def solve(text: str) -> Any:
    question, judging, listing = text.partition("\n\nSeveral answers were proposed.")
    if judging:  # a judge: the first candidate that is the right split
        right = show_split(right_split(_numbers(question, "Numbers") or []))
        shown = re.findall(r"Candidate ([0-9]+):\n(.*)", listing)
        return ("choice", next((int(i) for i, s in shown if s == right), 1), len(shown))
    numbers = _numbers(text, "Numbers") or _numbers(text, "Partial totals")
    if numbers is None:
        return None
    if text.startswith("Numbers:") and "split =" in text:
        return ("split", right_split(numbers), 0)
    return ("total", sum(numbers), 0)


def render(answer: Any) -> str:
    kind, value, _ = answer
    if kind == "choice":
        return f"I checked each one.\nchoice = {value}"
    return "Let me see.\n" + show_split(value) if kind == "split" else f"Let me add.\ntotal = {value}"


def wrong(answer: Any, rng: random.Random) -> Any:
    kind, value, count = answer
    if kind == "choice":
        return (kind, rng.choice([i for i in range(1, count + 1) if i != value] or [count + 1]), count)
    if kind == "total":
        return (kind, value + rng.choice([-10, -1, 1, 10]), 0)
    if value.get("atomic"):
        return (kind, maker.split([[1], [2]], rule="sum"), 0)
    first, second = value["parts"]
    return (kind, maker.split([first[:-1] or first, second], rule="sum"), 0)  # a number lost


ORACLE = maker.sim_oracle(solve=solve, render=render, wrong=wrong)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim/gpt-4.1-mini?error_rate=0.1", help="provider/model")
    parser.add_argument("--k", type=int, default=3, help="ahead-by-k lead (judges and keyed votes)")
    parser.add_argument("--lists", type=int, default=5)
    parser.add_argument("--trace", default="recursive_sum.jsonl")
    args = parser.parse_args()

    rng = random.Random(7)
    lists = {f"list{i}": [rng.randint(1, 99) for _ in range(rng.randint(6, 20))] for i in range(args.lists)}
    plan = maker.recursive_plan(PROBLEM, lists, limits=maker.RecursiveLimits(max_depth=5))
    backend = maker.sim_backend(args.model, oracles=[ORACLE]) if args.model.startswith("sim/") else None
    voting = Voting(rule=AheadByK(args.k))
    result = maker.run(plan, model=args.model, backend=backend, voting=voting, trace=args.trace)

    if result.error is not None:
        print(f"stopped: {result.error}")
    assert plan.plan is not None  # the run's plan: the DAG it grew
    right = 0
    for name, numbers in lists.items():
        total = plan.plan.answer(name)
        right += total == sum(numbers)
        print(f"{name}: {len(numbers):>2} numbers → {total} ({'right' if total == sum(numbers) else 'WRONG'})")
    print(
        f"{right}/{len(lists)} right; {result.totals.samples} samples; DAG grew to {plan.plan.graph.number_of_nodes()} nodes"
    )
    tree = maker.decomposition_tree(read_events(args.trace), "list0")
    print(f"list0 was split into {len(tree.children)} parts at the top")
    if backend is not None:
        report = maker.replay(args.trace, task=maker.recursive_plan(PROBLEM, lists), voting=voting)
        print(f"replay from the trace alone: {'every decision reproduced' if report.reproduced else 'MISMATCH'}")


if __name__ == "__main__":
    main()
