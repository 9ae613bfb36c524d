"""Recursive decomposition with voting at every level, against one call per problem (the paper's Appendix F).

For each size (5×5, 6×6, 10×10 digits; 200 problems each, drawn from a seed)
it runs, side by side on the same problems:

- single call: `--planner single --rule single`, one sample per product;
- single, k = 3: one voted call per product (voting without decomposition);
- recursive, k = 1: the model decomposes, but no decision is voted (one candidate, no judges);
- recursive, k = 2: the paper's setting (3 candidates per judged decision, first-to-2 judges);
- recursive, k = 3: 5 candidates, first-to-3 judges, ahead-by-3 atomic products.

and prints problems solved, their ratio to the single call's, samples and cost
per problem (cost at gpt-4.1-mini prices, from the simulated token counts).
A hostile profile shows where voting stops helping: its judges are wrong a
third of the time and a share of its mistakes repeat, so more votes buy less.

    python benchmarks/recursive.py                       # both profiles, 200 problems a size
    python benchmarks/recursive.py --problems 50 --profiles gpt-4.1-mini
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import maker
from maker._pricing import price_of
from maker.tasks import build_task
from maker.voting import AheadByK, Single, Voting

CONFIGS: dict[str, tuple[str, Any]] = {
    "single call": ("single", Single()),
    "single, k=3": ("single", AheadByK(3)),
    "recursive k=1": ("recursive", AheadByK(1)),
    "recursive k=2": ("recursive", AheadByK(2)),
    "recursive k=3": ("recursive", AheadByK(3)),
}
HOSTILE = {**CONFIGS, "recursive k=5": ("recursive", AheadByK(5))}
PRICE = price_of("gpt-4.1-mini")


def measure(profile: str, digits: int, problems: int, planner: str, rule: Any) -> dict[str, Any]:
    task = build_task("multiplication", digits=digits, problems=problems, planner=planner)
    start = time.perf_counter()
    result = maker.run(task, model=f"sim/{profile}", voting=Voting(rule=rule), trace=False)
    t = result.totals
    figures = task.figures(result.outputs, t.samples, PRICE.cost(t.tokens_in, t.tokens_out) if PRICE else None)
    return {**figures, "outcome": result.outcome, "error": result.error, "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--digits", type=int, nargs="+", default=[5, 6, 10])
    parser.add_argument("--profiles", nargs="+", default=["gpt-4.1-mini", "hostile"])
    parser.add_argument("--configs", nargs="+", default=None, help="only these rows (default: all)")
    args = parser.parse_args()
    for profile in args.profiles:
        configs = HOSTILE if profile == "hostile" else CONFIGS
        if args.configs:
            configs = {name: c for name, c in configs.items() if name in args.configs}
        print(f"\nsim/{profile}: {args.problems} problems per size (same problems in every row of a size)")
        print(
            f"{'size':>6}  {'planner':<14} {'solved':>9} {'RATIO vs single':>16} {'samples/problem':>16}"
            f" {'RATIO':>8} {'cost/problem':>13} {'tree nodes':>11}"
        )
        for digits in args.digits:
            base: dict[str, Any] | None = None
            for name, (planner, rule) in configs.items():
                m = measure(profile, digits, args.problems, planner, rule)
                base = base or m
                solved_ratio = m["solved_problems"] / max(1, base["solved_problems"])
                cost = m.get("cost_per_problem_usd")
                shown = f"${cost:.4f}" if cost is not None else "n/a"
                stop = f"  (stopped: {m['error']})" if m["error"] else ""
                print(
                    f"{digits:>2}×{digits:<3}  {name:<14} {m['solved_problems']:>4}/{m['problems']:<4}"
                    f" {solved_ratio:>16.2f} {m['samples_per_problem']:>16.1f}"
                    f" {m['samples_per_problem'] / base['samples_per_problem']:>8.1f}"
                    f" {shown:>13} {m['tree_nodes_mean']:>11.1f}{stop}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
