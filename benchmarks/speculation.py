"""Speculative chains: wall time of a dependent chain against s·L, without and with `--speculate` and `--draft`.

A chain of s steps waits for each step's decision before the next can start,
so it takes about s·L, L the mean model latency, and more when latencies
spread (each step waits for the slowest of its k first samples). With
speculation a step starts from its predecessor's first valid sample. The
simulated model sleeps a log-normal latency with mean L and spread S
(`sim/gpt-4.1-mini?latency=L&latency_sigma=S`); both runs of a row use the
same seed and are run side by side in this one command.

    python benchmarks/speculation.py                    # 8 disks, L = 50 ms, S = 0, 0.5, 1.0
    python benchmarks/speculation.py --disks 6 --sigma 1.0
    python benchmarks/speculation.py --table            # and speed-up vs draft accuracy x M, vs theory

With drafts (`--draft M`, default 16) the simulated drafter is right with
probability `--draft-accuracy` per step (default 0.99), and a draft takes as
long as its M short answers (`maker.backends._sim_draft`). `--table` runs the
grid of draft accuracy (0.9, 0.99, 0.999) x M (4, 16, 64) in virtual time and
prints each speed-up over the plain run next to what `draft_per_step` predicts.

Each row is measured twice: on the wall clock (asyncio; on a loaded machine
the event loop's own delays add to every step), and in virtual time (trio's
MockClock, `pip install trio`: time jumps to the next timer, so the ratio is
what the scheduling itself achieves, free of CPU noise).

Prints, per S: wall / (s·L) off, speculating and drafting, the floor (the mean of the fastest of
the k first-round latencies, which is what a perfectly pipelined chain pays per
step), the extra samples and the extra cost (gpt-4.1-mini prices) of the
speculative and drafting runs over the plain one (drafts' own tokens included),
and whether every decision was identical.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import maker
from maker._pricing import Price, price_of
from maker.analysis._estimate import draft_per_step, wall_time
from maker.tasks import build_task
from maker.traces import read_events

TARGETS = {0.5: 0.75, 1.0: 0.5}
DRAFT_TARGETS = {0.5: 0.25}


def floor(sigma: float, k: int = 3, draws: int = 200_000) -> float:
    """E[min of k log-normal latencies] / L, by simulation (the sim's own latency law)."""
    rng = random.Random(0)
    total = 0.0
    for _ in range(draws):
        total += min(math.exp(rng.gauss(0.0, sigma) - sigma * sigma / 2) for _ in range(k))
    return total / draws


def run_once(task: Any, model: str, trace: Path, settings: maker.RunSettings, clock: str) -> tuple[Any, float]:
    """One run and its duration: wall seconds, or virtual seconds under trio's mock clock."""
    if clock == "wall":
        result = maker.run(task, model=model, trace=trace, settings=settings)
        return result, result.wall_s
    import anyio
    import trio
    from trio.testing import MockClock

    async def timed() -> tuple[Any, float]:
        start = trio.current_time()
        result = await maker.arun(task, model=model, trace=trace, settings=settings)
        return result, trio.current_time() - start

    return anyio.run(timed, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})


def decisions(path: Path) -> list[tuple[object, object]]:
    return [(e["step"], e["winner"]) for e in read_events(path) if e["type"] == "decision"]


def cost(price: Price, result: Any) -> float:
    """What a run paid: its samples and its drafts."""
    t = result.totals
    return price.cost(t.tokens_in + t.draft_tokens_in, t.tokens_out + t.draft_tokens_out)


def measure(
    disks: int, model: str, settings: maker.RunSettings, trace: Path, clock: str
) -> tuple[Any, float, list[tuple[object, object]]]:
    result, seconds = run_once(build_task("hanoi", disks=disks), model, trace, settings, clock)
    return result, seconds, decisions(trace)


def rows(args: argparse.Namespace, tmp: str, price: Price) -> None:
    clocks = ("wall", "virtual") if args.clock == "both" else (args.clock,)
    steps, latency = 2**args.disks - 1, args.latency_ms / 1000
    for sigma, clock in ((s, c) for s in args.sigma for c in clocks):
        model = f"sim/gpt-4.1-mini?latency={latency}&latency_sigma={sigma}&draft_accuracy={args.draft_accuracy}"
        modes = {
            "off": maker.RunSettings(concurrency=64, seed=args.seed),
            "speculate": maker.RunSettings(concurrency=64, speculate=args.speculate, seed=args.seed),
            "draft": maker.RunSettings(concurrency=64, draft=args.draft, seed=args.seed),
        }
        runs = {
            name: measure(args.disks, model, settings, Path(tmp) / f"s{sigma}-{name}-{clock}.jsonl", clock)
            for name, settings in modes.items()
        }
        (off, off_s, want) = runs["off"]
        line = f"S={sigma:3.1f} {clock:>7} clock  RATIO time/(s·L): off {off_s / (steps * latency):.3f}"
        for name, targets, cheap in (("speculate", TARGETS, 5), ("draft", DRAFT_TARGETS, 15)):
            result, seconds, got = runs[name]
            target = targets.get(sigma)
            line += (
                f" | {name} {seconds / (steps * latency):.3f}"
                + (f" (target <= {target})" if target else "")
                + f" extra samples {100 * (result.totals.samples / off.totals.samples - 1):+.2f}%"
                f" extra cost {100 * (cost(price, result) / cost(price, off) - 1):+.2f}% (target <= {cheap}%)"
                f" errors {result.totals.errors} identical {got == want}"
            )
        print(line + f" | floor {floor(sigma):.3f}")


def table(args: argparse.Namespace, tmp: str, price: Price) -> None:
    """Speed-up over the plain run against draft accuracy and M, measured in virtual time, next to theory."""
    sigma, latency = args.table_sigma, args.latency_ms / 1000
    verify = wall_time(2**args.disks - 1, 3, latency, sigma).per_step_plain
    print(f"\nspeed-up (plain time / time with --draft M), S = {sigma}, virtual time; theory: draft_per_step")
    print(f"{'accuracy':>9} {'M':>4} {'measured':>9} {'theory':>7} {'time/(s·L)':>10} {'extra cost':>10} identical")
    base_model = f"sim/gpt-4.1-mini?latency={latency}&latency_sigma={sigma}"
    off, off_s, want = measure(
        args.disks, base_model, maker.RunSettings(concurrency=64, seed=args.seed), Path(tmp) / "t-off.jsonl", "virtual"
    )
    steps = 2**args.disks - 1
    for accuracy in (0.9, 0.99, 0.999):
        for m in (4, 16, 64):
            settings = maker.RunSettings(concurrency=64, draft=m, seed=args.seed)
            trace = Path(tmp) / f"t-{accuracy}-{m}.jsonl"
            result, seconds, got = measure(
                args.disks, f"{base_model}&draft_accuracy={accuracy}", settings, trace, "virtual"
            )
            theory = verify / draft_per_step(m, accuracy, verify)
            print(
                f"{accuracy:>9} {m:>4} {off_s / seconds:>8.2f}x {theory:>6.2f}x {seconds / (steps * latency):>10.3f}"
                f" {100 * (cost(price, result) / cost(price, off) - 1):>+9.1f}% {got == want}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--speculate", type=int, default=8)
    parser.add_argument("--draft", type=int, default=16)
    parser.add_argument("--draft-accuracy", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=("wall", "virtual", "both"), default="both")
    parser.add_argument("--table", action="store_true", help="also the draft accuracy x M grid (virtual time)")
    parser.add_argument("--table-sigma", type=float, default=0.5)
    parser.add_argument("--no-rows", action="store_true", help="only the --table grid")
    args = parser.parse_args()
    price = price_of("gpt-4.1-mini")
    assert price is not None
    print(
        f"hanoi {args.disks} disks, s = {2**args.disks - 1}, L = {args.latency_ms:g} ms, k = 3, "
        f"--speculate {args.speculate}, --draft {args.draft} (draft accuracy {args.draft_accuracy})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_rows:
            rows(args, tmp, price)
        if args.table:
            table(args, tmp, price)


if __name__ == "__main__":
    main()
