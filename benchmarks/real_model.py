"""A real model that voting can help, on this CPU: the claim, and where it fails (issue 12).

Serves Qwen2.5-Coder-0.5B-Instruct (`maker models fetch qwen2.5-coder-0.5b`)
with `maker serve-local`'s defaults (1 thread, 4 slots) and runs, through
maker's library API over real HTTP:

1. calibrate `count` on a good input range (one sample each) and on a bad one
   (`--repeats`: per-input success; the inputs voting locks in);
2. chains at k = 1 vs k = 2, 3, 4, several runs each, from the good start and
   from the bad one; chain errors (first wrong step, rest derailed) and step
   errors side by side;
3. re-votes each k = 4 chain's recorded samples at k = 1, 2, 3 (`maker replay --k`);
4. a table of the observed per-step error next to the paper's prediction
   1 − 1/(1 + ((1 − p)/p)^k) from the calibrated p;
5. throughput: the same count prompts through maker (k = 1, concurrency 4) and
   as raw openai requests (4 in flight) to the same server, alternated, as a ratio.

    python benchmarks/real_model.py --quick          # a few minutes on a loaded 2-core machine
    python benchmarks/real_model.py                  # the full configuration
    python benchmarks/real_model.py --record tests/data   # also keep the traces the tests read
    python benchmarks/real_model.py --threads 1 2    # only: serve-local's thread default, raw req/s each

Runs are seeded with `--seed S`: maker derives each request's llama.cpp
seed from S, the step and the sample. Runs r = 0, 1, ... use S + r, so
they are independent repetitions, and the same command draws the same samples again. Numbers depend on the machine and its load: say which.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from openai import AsyncOpenAI

import maker
from maker._local_server import LocalServer, LocalServerConfig
from maker.analysis import acalibrate
from maker.backends._registry import open_backend
from maker.tasks import build_task
from maker.traces import revote
from maker.voting import AheadByK, Single, Voting, p_step

TEMPERATURE = 1.0
TOKENS = 4


def voting(k: int) -> Voting:
    rule = Single() if k == 1 else AheadByK(k)
    return Voting(rule=rule, first_temperature=TEMPERATURE, temperature=TEMPERATURE, max_output_tokens=TOKENS)


async def calibrate(url: str, start: int, length: int, samples: int, repeats: int, trace: Path) -> Any:
    backend = open_backend("openai/local", base_url=url)
    try:
        return await acalibrate(
            build_task("count", start=start, length=length),
            backend=backend,
            samples=samples,
            repeats=repeats,
            temperature=TEMPERATURE,
            max_output_tokens=TOKENS,
            concurrency=4,
            trace=trace,
        )
    finally:
        await backend.aclose()


async def chain(url: str, start: int, length: int, k: int, seed: int, trace: Path) -> dict[str, Any]:
    backend = open_backend("openai/local", base_url=url, request_options={"seed": seed})
    t0 = time.perf_counter()
    try:
        result = await maker.arun(
            build_task("count", start=start, length=length),
            backend=backend,
            voting=voting(k),
            settings=maker.RunSettings(concurrency=4),
            trace=trace,
        )
    finally:
        await backend.aclose()
    t = result.totals
    return {
        "k": k,
        "start": start,
        "solved": result.solved,
        "step_errors": t.errors,
        "first_wrong": t.first_error,
        "derailed": result.derailed,
        "samples_per_step": result.mean_samples,
        "wall_s": time.perf_counter() - t0,
        "trace": trace,
    }


async def throughput(url: str, requests: int, rounds: int, tmp: Path) -> tuple[list[float], list[float]]:
    """Requests/s through maker (independent count steps, k = 1) and raw, alternated, same prompts."""
    task = build_task("count", start=30, length=requests)
    step = task.plan().step  # type: ignore[attr-defined]
    prompts = [step.prompt(task.step_inputs(i)) for i in range(requests)]  # type: ignore[attr-defined]
    raw_rates, maker_rates = [], []
    await _raw(url, prompts[:4])  # warm the shared prompt prefix in every slot before either is timed
    for r in range(rounds):
        raw_rates.append(await _raw(url, prompts))
        backend = open_backend("openai/local", base_url=url)
        t0 = time.perf_counter()
        try:
            await maker.arun(
                task,
                backend=backend,
                voting=voting(1),
                settings=maker.RunSettings(concurrency=4),
                independent=list(range(requests)),
                trace=tmp / f"throughput-{r}.jsonl",
            )
        finally:
            await backend.aclose()
        maker_rates.append(requests / (time.perf_counter() - t0))
    return raw_rates, maker_rates


async def _raw(url: str, prompts: list[Any]) -> float:
    client = AsyncOpenAI(base_url=url, api_key="local", max_retries=0)
    limiter = anyio.CapacityLimiter(4)

    async def one(messages: Any) -> None:
        async with limiter:
            await client.chat.completions.create(
                model="local", messages=messages, temperature=TEMPERATURE, max_tokens=TOKENS
            )

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for messages in prompts:
            tg.start_soon(one, messages)
    rate = len(prompts) / (time.perf_counter() - t0)
    await client.close()
    return rate


def show_calibration(name: str, c: Any) -> None:
    e = c.error
    print(f"calibration, {name}: p = {1 - e.value:.3f} (95% CI {1 - e.high:.3f}–{1 - e.low:.3f}), {e.n} votes")
    for r in c.systematic:
        print(f"  systematic: {r.describe()}")
    if c.systematic_verdict:
        print(f"  {c.systematic_verdict}")


def show_chains(rows: list[dict[str, Any]], p: float, p_low: float, length: int, per_input: list[float]) -> None:
    """Observed vs the paper's per-step 1/(1+((1−p)/p)^k): at p, at its pessimistic end, and per input."""
    print(
        f"\nchains of {length} steps, T = {TEMPERATURE}; predicted per step 1/(1+((1−p)/p)^k) at p = {p:.3f} "
        f"and at the interval's low end {p_low:.3f}"
        + ("; chain success predicted from each input's own p̂ (calibration with repeats)" if per_input else "")
    )
    head = f"{'start':>5} {'k':>2} {'runs':>4} {'solved':>6} {'step errors':>11} {'first wrong':>12} {'derailed':>8}"
    print(
        head + f" {'samples/step':>12} {'wall s':>7} {'observed step p':>15} {'predicted step p':>16}"
        f" {'(low end)':>9} {'chain, per input':>16}"
    )
    for start in sorted({r["start"] for r in rows}):
        for k in sorted({r["k"] for r in rows}):
            group = [r for r in rows if r["start"] == start and r["k"] == k]
            if not group:
                continue
            steps = len(group) * length
            errors = sum(r["step_errors"] for r in group)
            first = ",".join("-" if r["first_wrong"] is None else str(r["first_wrong"]) for r in group)
            derailed = sum(r["derailed"] or 0 for r in group)
            print(
                f"{start:>5} {k:>2} {len(group):>4} {sum(r['solved'] for r in group):>6} {errors:>11} {first:>12} "
                f"{derailed:>8} {statistics.mean(r['samples_per_step'] for r in group):>12.2f} "
                f"{statistics.mean(r['wall_s'] for r in group):>7.1f} {1 - errors / steps:>15.4f} "
                f"{p_step(p, k):>16.4f} {p_step(p_low, k):>9.4f} {_chain(per_input, k):>16}"
            )


def _chain(per_input: list[float], k: int) -> str:
    if not per_input:
        return "-"
    success = 1.0
    for q in per_input:
        success *= 1.0 if q >= 1.0 else (0.0 if q <= 0.0 else p_step(q, k))
    return f"{success:.3f}"


def show_revotes(rows: list[dict[str, Any]], p: float) -> None:
    print("\nre-voting the recorded k = 4 samples at other k (maker replay --k), per start:")
    for start in sorted({r["start"] for r in rows}):
        traces = [r["trace"] for r in rows if r["start"] == start and r["k"] == 4]
        if not traces:
            continue
        totals: dict[int, list[int]] = {}
        for trace in traces:
            for result in revote(trace, [AheadByK(k) for k in (1, 2, 3, 4)]):
                k = int(result.rule["k"])
                got = totals.setdefault(k, [0, 0])
                got[0] += result.errors
                got[1] += result.scored
        for k, (errors, scored) in sorted(totals.items()):
            print(
                f"  start {start:>3} k={k}: {errors} wrong of {scored} re-decided steps "
                f"(observed step p {1 - errors / max(scored, 1):.4f}, predicted {p_step(p, k):.4f})"
            )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="maker-real-model-"))
    log = tmp / "llama.log"
    with LocalServer(LocalServerConfig(model="qwen2.5-coder-0.5b", log=log)) as server:
        url = server.base_url
        print(f"Qwen2.5-Coder-0.5B-Instruct via maker serve-local (1 thread, 4 slots) at {url}")
        t0 = time.perf_counter()
        good = await calibrate(url, 30, args.length, args.calibrate, 1, tmp / "calibrate-good.jsonl")
        bad = await calibrate(url, 0, 12, 12, args.repeats, tmp / "calibrate-bad.jsonl")
        show_calibration(f"inputs 30..{29 + args.length}, one sample each", good)
        show_calibration(f"inputs 0..11, {args.repeats} repeats each", bad)
        print(f"  ({time.perf_counter() - t0:.0f} s)")
        p, p_low = 1 - good.error.value, 1 - good.error.high
        per_input = [r.success.value for r in bad.inputs][: args.bad_length]
        rows = []
        for start, length in ((30, args.length), (0, args.bad_length)):
            for k in args.k:
                for run in range(args.runs):
                    trace = tmp / f"chain-{start}-k{k}-{run}.jsonl"
                    rows.append(await chain(url, start, length, k, args.seed + run, trace))
        show_chains([r for r in rows if r["start"] == 30], p, p_low, args.length, [])
        show_chains([r for r in rows if r["start"] == 0], p, p_low, args.bad_length, per_input)
        show_revotes(rows, p)
        raw, through = await throughput(url, args.requests, args.rounds, tmp)
        ratio = statistics.median(through) / statistics.median(raw)
        print(
            f"\nthroughput, {args.requests} count requests x {args.rounds} rounds, alternated: raw openai "
            f"{statistics.median(raw):.2f} req/s, through maker {statistics.median(through):.2f} req/s: "
            f"maker/raw = {ratio:.1%} (target >= 90%)"
        )
    if args.record is not None:
        args.record.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / "calibrate-bad.jsonl", args.record / "qwen_count_calibration.jsonl")
        shutil.copy(tmp / "calibrate-good.jsonl", args.record / "qwen_count_calibration_good.jsonl")
        for name in (f"chain-0-k{max(args.k)}-0.jsonl", f"chain-30-k{max(args.k)}-0.jsonl"):
            shutil.copy(tmp / name, args.record / f"qwen_count_{name}")
        print(f"recorded traces in {args.record}")
    print(f"traces and llama.cpp's log: {tmp}")


async def compare_threads(choices: list[int], requests: int, rounds: int) -> None:
    """Raw requests/s of count prompts (4 in flight, 4 slots) with each thread count, alternated."""
    task = build_task("count", start=30, length=requests)
    step = task.plan().step  # type: ignore[attr-defined]
    prompts = [step.prompt(task.step_inputs(i)) for i in range(requests)]  # type: ignore[attr-defined]
    rates: dict[int, list[float]] = {n: [] for n in choices}
    for _ in range(rounds):
        for n in choices:
            config = LocalServerConfig(model="qwen2.5-coder-0.5b", threads=n, slots=4)
            with LocalServer(config) as server:
                await _raw(server.base_url, prompts[:4])  # warm the shared prompt prefix
                rates[n].append(await _raw(server.base_url, prompts))
    base = statistics.median(rates[choices[0]])
    for n in choices:
        rate = statistics.median(rates[n])
        print(f"threads {n}, slots 4: {rate:.2f} req/s (median of {rounds}), {rate / base:.2f}x threads {choices[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short configuration (a few minutes)")
    parser.add_argument("--record", type=Path, default=None, help="copy the traces the tests read to this folder")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="only compare these thread counts")
    parser.add_argument("--seed", type=int, default=0, help="run r of each configuration is seeded with SEED + r")
    parser.add_argument("--runs", type=int, default=None, help="runs per configuration (default 4, --quick 2)")
    args = parser.parse_args()
    if args.threads:
        anyio.run(compare_threads, args.threads, 24, 2)
        raise SystemExit(0)
    full = not args.quick
    args.length = 100 if full else 30
    args.bad_length = 30 if full else 12
    args.calibrate = 100 if full else 30
    args.repeats = 8
    args.k = [1, 2, 3, 4]
    args.runs = args.runs or (4 if full else 2)
    args.requests = 48 if full else 24
    args.rounds = 3 if full else 2
    anyio.run(main, args)
