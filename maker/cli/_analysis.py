"""`maker estimate`, `maker calibrate TASK`, `maker analyze TRACE`: thin layers over `maker.analysis`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from maker._pricing import Price, load_prices, price_of
from maker._recorder import Progress
from maker._runner import DEFAULT_MODEL
from maker.analysis import analyze, estimate, write_plots
from maker.analysis._calibrate import DEFAULT_MAX_SAMPLES, DEFAULT_SAMPLES, Calibration, acalibrate
from maker.cli._analysis_view import analysis_tables, calibration_tables, estimate_tables, show
from maker.cli._common import add_endpoint_options, backend_from, budget_from, concurrency_from, trace_from
from maker.cli._report import write_report
from maker.cli._run import add_task_parser
from maker.cli._sharding import readable_trace
from maker.cli._types import non_negative_float, positive, positive_float, probability
from maker.errors import ConfigError, UsageError
from maker.tasks._protocol import Task, TaskInfo
from maker.tasks._registry import build_task, task_info, task_names


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_estimate(sub)
    _register_calibrate(sub)
    _register_analyze(sub)


# --- argument types -----------------------------------------------------------------------------------------------


def count(text: str) -> int:
    """A positive integer, also written as 1e6 or 1_048_575."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")


# --- maker estimate -----------------------------------------------------------------------------------------------


def _register_estimate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "estimate",
        help="k_min, samples, tokens and cost of a run, before paying for it",
        description="Estimate what an s-step run needs from a per-step error rate (method.md §4).",
    )
    p.add_argument(
        "--error-rate",
        type=probability,
        required=True,
        metavar="P",
        help="per-vote error rate 1 − p, e.g. 0.0022 (from `maker calibrate`)",
    )
    p.add_argument("--steps", type=count, required=True, metavar="S", help="number of steps, e.g. 1048575 or 1e6")
    p.add_argument(
        "--target",
        type=probability,
        default=0.95,
        metavar="T",
        help="whole-task success probability to reach (default 0.95)",
    )
    p.add_argument(
        "--valid-rate",
        type=probability,
        default=1.0,
        metavar="V",
        help="share of samples that pass the red flags (default 1)",
    )
    p.add_argument("--tokens-in", type=non_negative_float, default=None, metavar="N", help="mean input tokens per call")
    p.add_argument(
        "--tokens-out", type=non_negative_float, default=None, metavar="N", help="mean output tokens per call"
    )
    p.add_argument(
        "--latency",
        type=positive_float,
        default=None,
        metavar="SEC",
        help="mean seconds per model call: also estimate the wall time of the steps as one dependent chain",
    )
    p.add_argument(
        "--latency-spread",
        type=non_negative_float,
        default=0.5,
        metavar="S",
        help="log-normal spread of call latencies (default 0.5; 0: every call takes exactly --latency)",
    )
    p.add_argument(
        "--draft", type=positive, default=16, metavar="M", help="steps per draft for the --draft wall time (16)"
    )
    p.add_argument(
        "--draft-accuracy",
        type=probability,
        default=0.99,
        metavar="P",
        help="chance that a drafted step is right, for the --draft wall time (0.99)",
    )
    p.add_argument(
        "--rpm",
        type=positive_float,
        default=None,
        metavar="N",
        help="the provider's requests-a-minute limit: also estimate the wall time of the same work done wide",
    )
    p.add_argument(
        "--tpm",
        type=positive_float,
        default=None,
        metavar="N",
        help="the provider's tokens-a-minute limit (counts --tokens-in + --max-output-tokens per request)",
    )
    p.add_argument(
        "--max-output-tokens",
        type=positive_float,
        default=750,
        metavar="T",
        help="output cap sent with each request, which TPM reserves (default 750)",
    )
    _add_price_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout, no tables")
    p.set_defaults(func=_estimate)


def _add_price_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("price (USD per million tokens)")
    g.add_argument("--model", default=None, metavar="NAME", help="look the price up, e.g. gpt-4.1-mini")
    g.add_argument("--price-in", type=non_negative_float, default=None, metavar="X", help="input price")
    g.add_argument("--price-out", type=non_negative_float, default=None, metavar="Y", help="output price")
    g.add_argument(
        "--prices",
        type=Path,
        default=None,
        metavar="FILE",
        help='price table overrides, JSON {"model": [input, output]} (also $MAKER_PRICES)',
    )


def _price(args: argparse.Namespace) -> tuple[Price | None, str | None]:
    if args.price_in is not None and args.price_out is None:
        raise UsageError("--price-in needs --price-out too")
    if args.price_out is not None:
        if args.model:
            raise UsageError("give either --model or --price-in/--price-out, not both")
        return Price(args.price_in, args.price_out), "given"
    if args.model:
        return price_of(args.model, load_prices(args.prices)), args.model
    return None, None


def _estimate(args: argparse.Namespace) -> int:
    price, source = _price(args)
    est = estimate(
        args.error_rate,
        args.steps,
        target=args.target,
        valid_rate=args.valid_rate,
        tokens_in=args.tokens_in,
        tokens_out=args.tokens_out,
        price=price,
        price_source=source,
        latency=args.latency,
        latency_sigma=args.latency_spread,
        draft=args.draft,
        draft_accuracy=args.draft_accuracy,
        rpm=args.rpm,
        tpm=args.tpm,
        max_tokens=args.max_output_tokens,
    )
    if args.json:
        _emit(est.to_json())
    else:
        show(estimate_tables(est))
    return 0


# --- maker calibrate ----------------------------------------------------------------------------------------------


def _register_calibrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calibrate",
        help="measure a model's per-step error rate on random steps of a task",
        description="Ask the model once at N random steps of a task with known answers; report "
        "its error rate, valid rate, k_min and cost, and whether voting can help it.",
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", parser_class=type(p))
    tasks.required = True
    for name in task_names():
        _add_calibrate_task(tasks, task_info(name))


def _add_calibrate_task(tasks: argparse._SubParsersAction[argparse.ArgumentParser], info: TaskInfo) -> None:
    p = add_task_parser(tasks, info)
    c = p.add_argument_group("calibration")
    c.add_argument("--model", default=DEFAULT_MODEL, help=f"provider/model (default {DEFAULT_MODEL})")
    c.add_argument(
        "--samples",
        type=positive,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"random steps to ask the model once each (default {DEFAULT_SAMPLES})",
    )
    c.add_argument("--seed", type=int, default=0, help="picks the steps and seeds the simulated model (default 0)")
    c.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        metavar="C",
        help="most requests in flight (default: for openai/ models the endpoint's rate limits decide; else 16)",
    )
    c.add_argument("--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)")
    c.add_argument(
        "--max-output-tokens",
        type=positive,
        default=750,
        metavar="T",
        help="output cap and length red flag (default 750)",
    )
    c.add_argument(
        "--max-samples-per-step",
        type=positive,
        default=DEFAULT_MAX_SAMPLES,
        metavar="M",
        help="samples at one step (redraws after red flags) before it stops the calibration "
        f"(default {DEFAULT_MAX_SAMPLES}, as in a run)",
    )
    c.add_argument(
        "--target",
        type=probability,
        default=0.95,
        metavar="T",
        help="whole-task success probability for k_min (default 0.95)",
    )
    c.add_argument(
        "--repeats",
        type=positive,
        default=1,
        metavar="R",
        help="ask each picked step R times: success per input, which finds systematic errors (default 1)",
    )
    add_endpoint_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--trace", type=Path, default=None, help="trace file (default runs/…)")
    o.add_argument("--no-trace", action="store_true", help="keep no trace")
    o.add_argument("--json", action="store_true", help="print one JSON object on stdout, no tables")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_calibrate, task_name=info.name, task_params=[p.name for p in info.params])


def _calibrate(args: argparse.Namespace) -> int:
    from maker.cli._progress import RichProgress  # rich's progress machinery, only when calibrating

    task = build_task(args.task_name, **{name: getattr(args, name) for name in args.task_params})
    if not 0.0 <= args.temperature <= 2.0:
        raise ConfigError(f"temperature must be in [0, 2], got {args.temperature}")
    progress = None if (args.quiet or args.json) else RichProgress(label=f"calibrating {args.task_name}")
    result = anyio.run(_calibrate_on_backend, task, args, progress)
    if args.json:
        _emit(result.to_json())
    else:
        show(calibration_tables(result))
    # A step that never got a valid reply still yields a verdict; a failed endpoint does not.
    return 0 if result.outcome in ("measured", "undecided") else 1


async def _calibrate_on_backend(task: Task, args: argparse.Namespace, progress: Progress | None) -> Calibration:
    backend = backend_from(args)
    try:
        return await acalibrate(
            task,
            model=args.model,
            samples=args.samples,
            seed=args.seed,
            concurrency=concurrency_from(args),
            temperature=args.temperature,
            max_output_tokens=args.max_output_tokens,
            max_samples_per_step=args.max_samples_per_step,
            target=args.target,
            repeats=args.repeats,
            trace=trace_from(args, task.name),
            backend=backend,
            progress=progress,
            prices=load_prices(args.prices),
            budget=budget_from(args),
        )
    finally:
        await backend.aclose()


# --- maker analyze ------------------------------------------------------------------------------------------------


def _register_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        aliases=["analyse"],
        help="error rates, convergence, collisions and cost of a trace",
        description="Check a trace against the voting theory: error rate with its interval, by "
        "length and step; convergence and collisions vs independent errors; "
        "heterogeneous steps; observed cost and projections to 10^6 and 10^9 steps.",
    )
    p.add_argument("trace", type=Path, metavar="TRACE", help="a trace file (.jsonl or .jsonl.gz)")
    p.add_argument("--plots", type=Path, default=None, metavar="DIR", help="also write PNG figures to DIR")
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write one self-contained HTML report (tables, figures)",
    )
    p.add_argument("--prices", type=Path, default=None, metavar="FILE", help="price table overrides (JSON)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout, no tables")
    p.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    with readable_trace(args.trace) as trace:  # a sharded run's manifest: its shards, merged
        result = analyze(trace, prices=load_prices(args.prices))
    written: list[Path] = []
    if args.plots is not None:
        written = write_plots(result, args.plots)
    if args.html is not None:
        written.append(write_report(result, analysis_tables(result), args.html, source=args.trace))
    if args.json:
        _emit({**result.to_json(), "plots": [str(p) for p in written]})
        return 0
    show(analysis_tables(result))
    for path in written:
        print(f"wrote {path}")
    return 0
