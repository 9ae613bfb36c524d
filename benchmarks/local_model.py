"""The real local model over real HTTP: requests/s, latency, and how many Hanoi replies are red-flagged.

Starts `maker serve-local`'s server (llama.cpp via xllamacpp, SmolLM2-135M by
default), then sends Hanoi step prompts (each from its ground-truth input,
different steps) through `maker`'s openai backend at several concurrency
levels, side by side with concurrency 1 as the baseline. Every reply is judged
by the real red flags at the paper's 750-token cap.

    python benchmarks/local_model.py                     # 12 requests at 1, 2 and 4 in flight
    python benchmarks/local_model.py --requests 24 --threads 1 --levels 1 2

Numbers depend on the machine and on what else runs on it: say which.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from maker._local_server import LocalServer, LocalServerConfig
from maker.backends._protocol import Completion, Request
from maker.backends._registry import open_backend
from maker.tasks import build_task
from maker.voting import Reply, judge

TASK = build_task("hanoi", disks=10)
STEP = TASK.plan().step  # type: ignore[attr-defined]


async def measure(url: str, requests: int, concurrency: int, max_tokens: int, offset: int) -> dict[str, Any]:
    """`requests` Hanoi step prompts, `concurrency` at a time; latencies and judged replies."""
    http = open_backend("openai/local", base_url=url)
    limiter = anyio.CapacityLimiter(concurrency)
    done: list[tuple[float, Completion, str | None]] = []

    async def one(i: int) -> None:
        step = (offset + i * 37) % TASK.steps  # type: ignore[attr-defined]
        messages = STEP.prompt(TASK.step_inputs(step))  # type: ignore[attr-defined]
        async with limiter:
            start = time.perf_counter()
            completion = await http.complete(Request(messages, 0.1, max_tokens, step, 0))
            latency = time.perf_counter() - start
        verdict = judge(
            Reply(completion.text, completion.finish_reason, completion.output_tokens),
            STEP.parse,
            STEP.vote_key,
            max_output_tokens=max_tokens,
        )
        done.append((latency, completion, verdict.flag))

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(requests):
            tg.start_soon(one, i)
    wall = time.perf_counter() - start
    await http.aclose()
    latencies = sorted(d[0] for d in done)
    out = sum(d[1].output_tokens for d in done)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "wall": wall,
        "rps": requests / wall,
        "mean": statistics.mean(latencies),
        "p50": latencies[len(latencies) // 2],
        "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "tokens_in": statistics.mean(d[1].input_tokens for d in done),
        "tokens_out": out / requests,
        "out_per_s": out / wall,
        "flags": Counter((d[2] or "none").split(":")[0] for d in done),
        "finish": Counter(d[1].finish_reason for d in done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=12, help="requests per concurrency level (12)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4], help="concurrency levels (1 2 4)")
    parser.add_argument("--max-tokens", type=int, default=750, help="output cap and length flag (750)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per core)")
    parser.add_argument("--slots", type=int, default=2, help="llama.cpp slots (2)")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default SmolLM2-135M)")
    args = parser.parse_args()
    config = LocalServerConfig(
        model=args.model, threads=args.threads, slots=args.slots, log=Path("runs/benchmark-llama.log")
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
        f"llama.cpp threads={args.threads or os.cpu_count()}, slots={args.slots}"
    )
    with LocalServer(config) as server:
        rows = [anyio.run(measure, server.base_url, args.requests, c, args.max_tokens, 100 * c) for c in args.levels]
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    base = rows[0]["rps"]
    print(
        f"{'in flight':>9} {'req':>4} {'req/s':>7} {'vs 1':>5} {'mean s':>7} {'p50 s':>6} {'p95 s':>6} "
        f"{'tok in':>6} {'tok out':>7} {'out tok/s':>9}"
    )
    for r in rows:
        print(
            f"{r['concurrency']:>9} {r['requests']:>4} {r['rps']:>7.3f} {r['rps'] / base:>5.2f} {r['mean']:>7.2f} "
            f"{r['p50']:>6.2f} {r['p95']:>6.2f} {r['tokens_in']:>6.0f} {r['tokens_out']:>7.1f} {r['out_per_s']:>9.1f}"
        )
    flags: Counter[str] = sum((r["flags"] for r in rows), Counter())
    finish: Counter[str] = sum((r["finish"] for r in rows), Counter())
    total = sum(flags.values())
    flagged = total - flags["none"]
    print(
        f"red-flagged: {flagged}/{total} = {flagged / total:.0%} "
        f"({', '.join(f'{k} {v}' for k, v in flags.most_common())}); finish reasons: {dict(finish)}"
    )


if __name__ == "__main__":
    main()
