"""Speculative chains: wall time of a dependent chain against s·L, without and with `--speculate`.

A chain of s steps waits for each step's decision before the next can start,
so it takes about s·L, L the mean model latency, and more when latencies
spread (each step waits for the slowest of its k first samples). With
speculation a step starts from its predecessor's first valid sample. The
simulated model sleeps a log-normal latency with mean L and spread S
(`sim/gpt-4.1-mini?latency=L&latency_sigma=S`); both runs of a row use the
same seed and are run side by side in this one command.

    python benchmarks/speculation.py                    # 8 disks, L = 50 ms, S = 0, 0.5, 1.0
    python benchmarks/speculation.py --disks 6 --sigma 1.0

Each row is measured twice: on the wall clock (asyncio; on a loaded machine
the event loop's own delays add to every step), and in virtual time (trio's
MockClock, `pip install trio`: time jumps to the next timer, so the ratio is
what the scheduling itself achieves, free of CPU noise).

Prints, per S: wall / (s·L) off and on, the floor (the mean of the fastest of
the k first-round latencies, which is what a perfectly pipelined chain pays per
step), the extra samples and the extra cost (gpt-4.1-mini prices) of the
speculative run over the plain one, and whether every decision was identical.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import maker
from maker._pricing import price_of
from maker.tasks import build_task
from maker.traces import read_events

TARGETS = {0.5: 0.75, 1.0: 0.5}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disks", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--speculate", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=("wall", "virtual", "both"), default="both")
    args = parser.parse_args()
    clocks = ("wall", "virtual") if args.clock == "both" else (args.clock,)
    steps = 2**args.disks - 1
    latency = args.latency_ms / 1000
    price = price_of("gpt-4.1-mini")
    assert price is not None
    print(f"hanoi {args.disks} disks, s = {steps}, L = {args.latency_ms:g} ms, k = 3, --speculate {args.speculate}")
    with tempfile.TemporaryDirectory() as tmp:
        for sigma, clock in ((s, c) for s in args.sigma for c in clocks):
            model = f"sim/gpt-4.1-mini?latency={latency}&latency_sigma={sigma}"
            runs = {}
            for depth in (0, args.speculate):
                trace = Path(tmp) / f"s{sigma}-d{depth}-{clock}.jsonl"
                settings = maker.RunSettings(concurrency=64, speculate=depth, seed=args.seed)
                runs[depth] = (*run_once(build_task("hanoi", disks=args.disks), model, trace, settings, clock), trace)
            (off, off_s, off_trace), (on, on_s, on_trace) = runs[0], runs[args.speculate]
            same = decisions(off_trace) == decisions(on_trace)
            cost_off = price.cost(off.totals.tokens_in, off.totals.tokens_out)
            cost_on = price.cost(on.totals.tokens_in, on.totals.tokens_out)
            target = TARGETS.get(sigma)
            ratio_on = on_s / (steps * latency)
            print(
                f"S={sigma:3.1f} {clock:>7} clock  RATIO time/(s·L): off {off_s / (steps * latency):.3f}  "
                f"speculate {ratio_on:.3f}"
                + (f" (target <= {target})" if target else "")
                + f"  floor {floor(sigma):.3f}"
                f"  extra samples {100 * (on.totals.samples / off.totals.samples - 1):+.2f}%"
                f"  extra cost {100 * (cost_on / cost_off - 1):+.2f}% (target <= 5%)"
                f"  errors {off.totals.errors}/{on.totals.errors}"
                f"  decisions identical: {same}"
            )


if __name__ == "__main__":
    main()
