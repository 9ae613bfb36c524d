"""Options shared by every command that runs a task."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maker._budget import Budget
from maker._pricing import load_prices
from maker._runner import DEFAULT_MODEL, default_trace_path
from maker._settings import RunSettings
from maker.backends._governor import DEFAULT_MOST
from maker.backends._options import parse_pairs
from maker.backends._protocol import Backend
from maker.backends._registry import ModelName, open_backend
from maker.cli._types import non_negative, positive, positive_float
from maker.errors import ConfigError
from maker.voting import AheadByK, Majority, Single, Voting
from maker.voting._reachable import check_reachable


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and voting")
    g.add_argument("--model", default=DEFAULT_MODEL, help=f"provider/model (default {DEFAULT_MODEL})")
    g.add_argument("--k", type=positive, default=3, help="ahead-by-k lead a winner needs (default 3)")
    g.add_argument(
        "--rule",
        choices=("ahead-by-k", "majority", "single"),
        default="ahead-by-k",
        help="decision rule; majority and single are baselines (default ahead-by-k)",
    )
    g.add_argument("--n", type=positive, default=7, help="votes per step for --rule majority (default 7)")
    g.add_argument(
        "--max-samples-per-step",
        type=positive,
        default=100,
        metavar="M",
        help="sample cap per step; a step that hits it stops the run (default 100)",
    )
    g.add_argument(
        "--max-output-tokens",
        type=positive,
        default=750,
        metavar="T",
        help="output cap and length red flag (default 750)",
    )
    g.add_argument("--temperature", type=float, default=0.1, help="temperature of samples after the first (0.1)")
    g.add_argument("--first-temperature", type=float, default=0.0, help="temperature of the first sample (0)")
    r = p.add_argument_group("execution")
    r.add_argument("--seed", type=int, default=0, help="seed of the simulated model (default 0)")
    r.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        metavar="C",
        help=f"most requests in flight (default: for openai/ models the endpoint's rate limits decide, up to "
        f"{GOVERNED}; else {UNGOVERNED})",
    )
    r.add_argument(
        "--max-parallel-steps",
        type=positive,
        default=None,
        metavar="N",
        help="steps in progress at once (default: --concurrency)",
    )
    r.add_argument(
        "--speculate",
        type=non_negative,
        default=0,
        metavar="D",
        help="start a step from its predecessor's leading candidate, up to D steps ahead of the decided ones;"
        " decisions are unchanged (default 0: off; see docs/speculation.md)",
    )
    r.add_argument(
        "--draft",
        type=non_negative,
        default=0,
        metavar="M",
        help="ask for the next M steps' answers in one call and verify them in parallel; decisions are"
        " unchanged (default 0: off; tasks with a draft prompt only, e.g. hanoi; see docs/speculation.md)",
    )
    r.add_argument(
        "--draft-model",
        default=None,
        metavar="MODEL",
        help="the model that writes drafts (default: --model; sim/ models take ?draft_accuracy=P)",
    )
    r.add_argument("--trace", type=Path, default=None, help="trace file (.jsonl or .jsonl.gz; default runs/…)")
    r.add_argument("--no-trace", action="store_true", help="write no trace")
    r.add_argument("--json", action="store_true", help="print one JSON summary on stdout, no table")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_endpoint_options(p)


def add_endpoint_options(p: argparse.ArgumentParser) -> None:
    """Where an `openai/` model is served, and the limits of what a run may spend."""
    e = p.add_argument_group("endpoint (openai/ models)")
    e.add_argument(
        "--base-url",
        metavar="URL",
        action="append",
        default=None,
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (default $MAKER_BASE_URL, "
        "$OPENAI_BASE_URL, then OpenAI); the key comes from $OPENAI_API_KEY. Repeat it for several "
        "endpoints serving the same model: each request goes to the one with the fewest out",
    )
    e.add_argument(
        "--endpoints",
        metavar="FILE",
        default=None,
        help='several endpoints from a JSON file: [{"base_url": URL, "key_env": VAR, "rpm": N, "tpm": N}, ...]',
    )
    e.add_argument(
        "--sticky-endpoints",
        action="store_true",
        help="keep each step's samples on one endpoint (for servers with prefix caches)",
    )
    e.add_argument(
        "--rpm",
        type=positive_float,
        default=None,
        metavar="N",
        help="the endpoint's requests-a-minute limit, for servers that send no x-ratelimit headers",
    )
    e.add_argument(
        "--tpm",
        type=positive_float,
        default=None,
        metavar="N",
        help="the endpoint's tokens-a-minute limit (prompt + max_tokens, as providers count)",
    )
    e.add_argument(
        "--request-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="send KEY with every request (top_p, top_k, min_p, stop, seed, response_format, grammar); "
        "VALUE is JSON where it parses as JSON, else text; repeatable; recorded in the trace (it changes p)",
    )
    e.add_argument(
        "--request-timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds per HTTP attempt before it is retried (default 120)",
    )
    b = p.add_argument_group("budget (checked before each request; the run stops cleanly at a limit)")
    b.add_argument("--max-cost", type=positive_float, default=None, metavar="USD", help="most USD to spend")
    b.add_argument("--max-samples", type=positive, default=None, metavar="N", help="most samples in the run")
    b.add_argument(
        "--max-tokens", type=positive, default=None, metavar="N", help="most tokens (input + output) in the run"
    )
    b.add_argument(
        "--prices",
        type=Path,
        default=None,
        metavar="FILE",
        help='price table overrides, JSON {"model": [input, output]} in USD per million tokens',
    )


GOVERNED = DEFAULT_MOST  # the run's roof when an openai/ endpoint's governor sets the pace
UNGOVERNED = 16


def endpoint_settings(args: argparse.Namespace) -> dict[str, object]:
    """The endpoint options given on the command line (only those given)."""
    urls = args.base_url or []
    given = {
        "base_url": urls[0] if len(urls) == 1 else None,
        "base_urls": urls if len(urls) > 1 else None,
        "endpoints": getattr(args, "endpoints", None),
        "sticky": True if getattr(args, "sticky_endpoints", False) else None,
        "timeout": args.request_timeout,
        "rpm": getattr(args, "rpm", None),
        "tpm": getattr(args, "tpm", None),
    }
    pairs = getattr(args, "request_option", None)
    if pairs:
        given["request_options"] = parse_pairs(pairs)
    return {k: v for k, v in given.items() if v is not None}


def backend_from(args: argparse.Namespace, on_retry: Callable[[Any], object] | None = None) -> Backend:
    """Open the backend the options ask for (the caller closes it); `on_retry` sees each HTTP retry."""
    provider = ModelName.parse(args.model).provider
    endpoint = endpoint_settings(args)
    if provider != "openai" and endpoint:
        raise ConfigError(f"--base-url, --rpm, --tpm and --request-timeout apply to openai/ models, not {provider}/")
    extra = {"on_retry": on_retry} if provider == "openai" and on_retry is not None else {}
    return open_backend(args.model, seed=args.seed, **endpoint, **extra)


def budget_from(args: argparse.Namespace) -> Budget | None:
    budget = Budget(
        max_cost=args.max_cost,
        max_samples=args.max_samples,
        max_tokens=args.max_tokens,
        prices=load_prices(args.prices),
    )
    return budget if budget.limited else None


def voting_from(args: argparse.Namespace) -> Voting:
    rule: Any
    if args.rule == "majority":
        rule = Majority(args.n)
    elif args.rule == "single":
        rule = Single()
    else:
        rule = AheadByK(args.k)
    voting = Voting(
        rule=rule,
        first_temperature=args.first_temperature,
        temperature=args.temperature,
        max_output_tokens=args.max_output_tokens,
        max_samples_per_step=args.max_samples_per_step,
    )
    check_reachable(voting.rule, voting.max_samples_per_step)
    return voting


def concurrency_from(args: argparse.Namespace) -> int:
    """`--concurrency`, or its default: governed (the endpoint's rate limits decide) for openai/, else 16."""
    if args.concurrency is not None:
        return int(args.concurrency)
    name = ModelName.parse(args.model)
    off = name.options.get("governor", "yes").lower() in ("0", "no", "off", "false")
    return GOVERNED if name.provider == "openai" and not off else UNGOVERNED


def settings_from(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        concurrency=concurrency_from(args),
        max_parallel_steps=args.max_parallel_steps,
        seed=args.seed,
        speculate=args.speculate,
        draft=args.draft,
        draft_model=args.draft_model,
    )


def trace_from(args: argparse.Namespace, task: str) -> Path | None:
    """The trace a command writes: --trace, none with --no-trace, else a fresh file under ./runs/."""
    if args.no_trace:
        return None
    trace: Path | None = args.trace
    return trace if trace is not None else default_trace_path(task)
