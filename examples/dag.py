"""Build and run a small DAG that mixes plain Python steps and voted LLM steps.

Splitting a restaurant bill: load the orders (Python), let the model add up each
person's items (one voted LLM step per person, all at once), collect the
subtotals (Python), let the model add those (voted, with a larger k since
everything depends on it), and print the bill (Python).

    orders ─┬─ subtotal:ana ─┐
            ├─ subtotal:ben ─┼─ collect ── grand ── bill
            └─ subtotal:cy  ─┘

    python examples/dag.py [--model sim/gpt-4.1-mini?error_rate=0.2] [--trace runs/bill.jsonl]
"""

from __future__ import annotations

import argparse
import re

import anyio
import anyio.lowlevel

import maker
from maker.voting import AheadByK, Voting


@maker.python_step
async def orders(table: int) -> dict[str, list[int]]:
    await anyio.lowlevel.checkpoint()  # an async step: a database or an API call would go here
    return {"ana": [12, 30, 7], "ben": [25, 25, 4, 9], "cy": [8, 19, 40]}


@maker.llm_step(
    parse=maker.parse_last(r"total\s*=\s*([0-9]+)\b", int, what="'total = N'"),
    expected=lambda numbers: sum(numbers),
)
def add_up(numbers: list[int]) -> str:
    return f"Add these numbers: {', '.join(map(str, numbers))}.\nEnd with one line: total = <the sum>"


@maker.python_step
def pick(orders: dict[str, list[int]], person: str) -> list[int]:
    return orders[person]


@maker.python_step
def collect(**subtotals: int) -> list[int]:
    return [subtotals[name] for name in sorted(subtotals)]


@maker.python_step
def bill(orders: dict[str, list[int]], grand: int) -> str:
    return f"{len(orders)} guests, total {grand}"


_PROMPT = re.compile(r"Add these numbers: ([0-9, ]+)\.")
oracle = maker.sim_oracle(
    solve=lambda text: (m := _PROMPT.search(text)) and sum(int(x) for x in m[1].split(", ")),
    render=lambda total: f"total = {total}",
    wrong=lambda total, rng: total + rng.choice([-10, -1, 1, 10]),
)


def build(people: list[str]) -> maker.DAG:
    dag = maker.DAG()
    dag.add_step("orders", orders, args={"table": 7})
    for person in people:
        # Two steps per person: pick the items (Python), add them up (voted).
        dag.add_step(f"items:{person}", pick, inputs={"orders": "orders"}, args={"person": person})
        dag.add_step(f"subtotal:{person}", add_up, inputs={"numbers": f"items:{person}"})
    dag.add_step("collect", collect, inputs={person: f"subtotal:{person}" for person in people})
    dag.add_step("grand", add_up, inputs={"numbers": "collect"}, voting=Voting(rule=AheadByK(5)))
    dag.add_step("bill", bill, inputs={"orders": "orders", "grand": "grand"})
    return dag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim/gpt-4.1-mini?error_rate=0.2")
    parser.add_argument("--trace", default=None, help="trace file (default: a new file under runs/)")
    args = parser.parse_args()

    dag = build(["ana", "ben", "cy"])
    result = maker.run(dag, backend=maker.sim_backend(args.model, oracles=[oracle]), trace=args.trace)
    for person in ("ana", "ben", "cy"):
        print(f"{person}: {result.outputs[f'subtotal:{person}']}")
    print(result.outputs["bill"])
    t = result.totals
    print(
        f"{result.outcome}: {t.steps} steps ({t.llm_steps} voted), {t.samples} samples, {t.errors} errors; "
        f"trace {result.trace}"
    )


if __name__ == "__main__":
    main()
