"""Rate limits: a governed client against serve-sim enforcing them, next to today's ungoverned one (issue 13).

Each scenario starts `maker serve-sim` enforcing a limit (OpenAI-style
token buckets holding `--burst` seconds' worth, as providers enforce
per-minute limits over shorter periods) and runs the real CLI in a child
process: a `--steps`-step independent Hanoi run at `--concurrency 64`, once
governed (the default) and once with `?governor=0` (maker before the
governor: a fixed in-flight limit, per-request backoff). Printed per run: the
share of requests answered 429 (the server's count), the wall time, and the
time the limit allows for the work the server admitted, (admitted - burst) /
rate: no client can finish sooner. Targets: <= 5% 429s, wall <= 1.25x allowed.

Scenarios: 1,200 RPM with rate headers and no Retry-After; the same as a TPM
limit (1.44M tokens/min, about 1,200 Hanoi requests of 444 prompt tokens +
750 max_tokens); a server with no headers and no Retry-After, with --rpm 1200
given to the client. Then the fleet: one endpoint and two, each enforcing half
that RPM, governed: replies a second, two against one (target >= 1.8x).

    .venv/bin/python benchmarks/rate_limits.py              # the issue's figures (about 12 minutes)
    .venv/bin/python benchmarks/rate_limits.py --steps 200  # a quicker look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "gpt-4.1-mini?latency=0.05"
QUIET_SERVER = ["--no-retry-after", "--no-body-hint"]


@dataclass(frozen=True)
class Scenario:
    name: str
    server: list[str]
    client: list[str]  # given to the governed run only (the ungoverned client has no use for them)


def scenarios(rpm: float) -> list[Scenario]:
    tpm = rpm * 1200
    return [
        Scenario(f"{rpm:g} RPM, headers, no Retry-After", ["--rpm", f"{rpm:g}", *QUIET_SERVER], []),
        Scenario(f"{tpm:g} TPM, headers, no Retry-After", ["--tpm", f"{tpm:g}", *QUIET_SERVER], []),
        Scenario(
            f"{rpm:g} RPM, no headers, --rpm {rpm:g}",
            ["--rpm", f"{rpm:g}", "--no-rate-headers", *QUIET_SERVER],
            ["--rpm", f"{rpm:g}"],
        ),
    ]


def maker_command() -> list[str]:
    script = Path(sys.executable).with_name("maker")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maker.cli"]


def env() -> dict[str, str]:
    drop = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MAKER_BASE_URL", "MAKER_PRICES")
    return {k: v for k, v in os.environ.items() if k not in drop}


def start_server(args: argparse.Namespace, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    server_args = ["--profile", PROFILE, "--rate-window", str(args.window), "--burst", str(args.burst)]
    server = subprocess.Popen(
        [*maker_command(), "serve-sim", *server_args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(),
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def stats_of(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats") as reply:
        result: dict[str, Any] = json.load(reply)
    return result


def run_hanoi(urls: list[str], governed: bool, extra: list[str], args: argparse.Namespace, steps: int) -> Any:
    model = "openai/gpt-4.1-mini" + ("" if governed else "?governor=0")
    if args.window != 60:
        model += ("&" if "?" in model else "?") + f"rate_window={args.window}"
    command = [
        *maker_command(),
        *("hanoi", "--disks", "10", "--independent", str(steps), "--concurrency", "64"),
        *("--model", model, "--json", "--no-trace"),
        *[flag for url in urls for flag in ("--base-url", url)],
        *extra,
    ]
    child = subprocess.run(command, capture_output=True, text=True, env=env(), check=False)
    return json.loads(child.stdout) if child.stdout.strip() else {"error": child.stderr.strip()[-200:]}


def run_one(scenario: Scenario, governed: bool, args: argparse.Namespace) -> dict[str, Any]:
    server, url = start_server(args, scenario.server)
    try:
        summary = run_hanoi([url], governed, scenario.client if governed else [], args, args.steps)
        stats = stats_of(url)
    finally:
        server.terminate()
        server.wait()
    return {"summary": summary, "stats": stats}


def fleet(args: argparse.Namespace) -> None:
    """One endpoint, then two, each enforcing the same RPM: throughput (replies a second) side by side."""
    rpm = args.rpm / 2
    print(f"\nfleet: {args.fleet_steps} steps, endpoints enforcing {rpm:g} RPM each, headers, no Retry-After")
    base = None
    for n in (1, 2):
        servers = [start_server(args, ["--rpm", f"{rpm:g}", "--seed", str(i), *QUIET_SERVER]) for i in range(n)]
        try:
            summary = run_hanoi([url for _, url in servers], True, [], args, args.fleet_steps)
            replies = sum(stats_of(url)["statuses"].get("200", 0) for _, url in servers)
        finally:
            for server, _ in servers:
                server.terminate()
                server.wait()
        wall = summary.get("wall_s") or math.nan
        throughput = replies / wall
        base = base or throughput
        print(
            f"  {n} endpoint{'s' * (n > 1)}: {replies:,} replies in {wall:.1f} s = {throughput:.1f}/s "
            f"({throughput / base:.2f}x one endpoint); errors: {summary.get('error') or 'none'}"
        )


def allowed(scenario: Scenario, stats: dict[str, Any], args: argparse.Namespace) -> float:
    """Seconds the limit allows for what the server admitted: (admitted - burst) / rate."""
    limit = float(scenario.server[scenario.server.index("--rpm" if "--rpm" in scenario.server else "--tpm") + 1])
    admitted = stats["statuses"].get("200", 0) if "--rpm" in scenario.server else stats["admitted_tokens"]
    rate = limit / args.window
    burst = max(1.0, limit * args.burst / args.window)
    return max(0.0, admitted - burst) / rate


def row(label: str, scenario: Scenario, run: dict[str, Any], args: argparse.Namespace) -> tuple[str, ...]:
    stats, summary = run["stats"], run["summary"]
    sent = stats["chat_requests"]
    refused = stats["statuses"].get("429", 0)
    wall = summary.get("wall_s")
    limit_time = allowed(scenario, stats, args)
    error = summary.get("error")
    ratio = f"{wall / limit_time:.2f}x" if wall and limit_time and not error else "- (stopped)" if error else "-"
    return (
        label,
        f"{sent:,}",
        f"{refused:,} ({refused / max(1, sent):.1%})",
        f"{wall:.1f} s" if wall else "-",
        f"{limit_time:.1f} s",
        ratio,
        "none" if not error else str(error)[:60],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="independent Hanoi steps per run (default 600)")
    parser.add_argument("--rpm", type=float, default=1200, help="the request limit (default 1200)")
    parser.add_argument("--burst", type=float, default=10.0, help="seconds' worth a server bucket holds (10)")
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds limits count over, server and client (default 60)"
    )
    parser.add_argument("--only", type=int, default=None, help="run scenario N (1-3; 4: the fleet) alone")
    parser.add_argument("--fleet-steps", type=int, default=300, help="steps of the fleet runs (default 300)")
    args = parser.parse_args()
    chosen = scenarios(args.rpm)
    if args.only == 4:
        fleet(args)
        return
    if args.only:
        chosen = [chosen[args.only - 1]]
    print(
        f"{args.steps}-step independent Hanoi at --concurrency 64 against serve-sim ({PROFILE}), "
        f"buckets of {args.burst:g} s, limits per {args.window:g} s"
    )
    header = ("client", "requests", "429s", "wall", "limit allows", "wall/allowed", "errors")
    for scenario in chosen:
        print(f"\n{scenario.name}")
        rows = [header]
        for governed in (False, True):
            run = run_one(scenario, governed, args)
            rows.append(row("governed" if governed else "ungoverned (baseline)", scenario, run, args))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for r in rows:
            print("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    if not args.only:
        fleet(args)


if __name__ == "__main__":
    main()
