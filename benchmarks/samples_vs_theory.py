"""Mean votes and samples per step against the gambler's-ruin expectation (method.md §4).

The simulator is set to the theory's own model: independent errors, and every
wrong vote at a step for the same wrong answer (correlated=1: two candidates).
Red-flagged samples are counted separately, so samples/step is compared with
E[votes] / v where v is the observed valid rate.

Steps run in independent mode (each from its ground-truth state): in a
sequential chain, one wrong step sends the rest off the optimal path, where
states repeat and the simulator's answers for a repeated prompt repeat too, so
those steps are no longer independent trials.

    python benchmarks/samples_vs_theory.py            # 14 disks (16,383 steps) at three error rates
"""

from __future__ import annotations

import argparse

import maker
from maker.tasks import build_task
from maker.voting import AheadByK, Voting, expected_votes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=14)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--error-rates", type=float, nargs="+", default=[0.0022, 0.05, 0.15])
    args = parser.parse_args()
    for err in args.error_rates:
        model = f"sim/gpt-4.1-mini?error_rate={err}&correlated=1"
        task = build_task("hanoi", disks=args.disks)
        r = maker.run(
            task,
            model=model,
            voting=Voting(rule=AheadByK(args.k)),
            trace=False,
            independent=range(task.steps),
        )
        t = r.totals
        steps = t.llm_steps
        theory = expected_votes(1 - err, args.k)
        valid = t.votes / (t.samples - t.late) if t.samples else 1.0
        votes = t.votes / steps
        samples = t.samples / steps
        print(
            f"1-p={err:<7} k={args.k} steps={steps:,}  votes/step {votes:.4f} vs E[votes] {theory:.4f}"
            f"  RATIO {votes / theory:.4f}   samples/step {samples:.4f} vs E[votes]/v {theory / valid:.4f}"
            f"  RATIO {samples / (theory / valid):.4f}  (v={valid:.4f}; target within 2%)"
        )


if __name__ == "__main__":
    main()
