"""`maker resume`, `maker replay`, `maker trace show`: thin layers over resume, replay and re-voting."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from maker._replay import areplay
from maker._resume import aresume
from maker.cli._common import add_endpoint_options, budget_from, endpoint_settings
from maker.cli._progress import RichProgress
from maker.cli._sharding import readable_trace, register_merge, resume_manifest
from maker.cli._stops import Stopped, stoppable
from maker.cli._summary import report
from maker.cli._traces_view import print_replay, print_revotes, print_summary, rule_name
from maker.cli._types import positive
from maker.errors import BackendError, ConfigError, MakerError
from maker.traces._inspect import summarize
from maker.traces._manifest import is_manifest, shard_traces
from maker.traces._reader import read_events
from maker.traces._replay import revote
from maker.voting import AheadByK, DecisionRule, Majority, Single, rule_from_dict
from maker.voting._reachable import check_reachable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_resume(sub)
    _register_replay(sub)
    _register_trace(sub)


def _register_resume(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "resume",
        help="continue an interrupted run from its trace, never sampling a committed step again",
        description="Continue the run a trace recorded, appending to the same trace. Only settings "
        "that cannot change a decision may change.",
    )
    p.add_argument("trace", type=Path, metavar="TRACE", help="the interrupted run's trace (.jsonl or .jsonl.gz)")
    p.add_argument(
        "--concurrency", type=positive, default=None, metavar="C", help="requests in flight (default: as recorded)"
    )
    p.add_argument(
        "--max-samples-per-step",
        type=positive,
        default=None,
        metavar="M",
        help="per-step sample cap (default: as recorded); raise it to get past a step that hit it",
    )
    p.add_argument("--json", action="store_true", help="print one JSON summary on stdout, no table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_endpoint_options(p)
    p.set_defaults(func=_resume)


def _resume(args: argparse.Namespace) -> int:
    if is_manifest(args.trace):
        progress = None if (args.quiet or args.json) else RichProgress(label="shards (resumed)")
        return resume_manifest(args, progress)
    header = next(read_events(args.trace))
    endpoint = _endpoint(header, args)
    if args.max_samples_per_step is not None:
        check_reachable(_rule(header), args.max_samples_per_step)
    budget = budget_from(args)
    for note in budget.notes(header["model"]) if budget else []:
        print(f"maker: note: {note}", file=sys.stderr)
    name = header.get("task", {}).get("name", "run")
    progress = None if (args.quiet or args.json) else RichProgress(label=f"{name} (resumed)")
    if progress is not None and str(header.get("model", "")).startswith("openai/"):
        endpoint["on_retry"] = progress.on_retry
    result = stoppable(
        lambda: aresume(
            args.trace,
            concurrency=args.concurrency,
            max_samples_per_step=args.max_samples_per_step,
            endpoint=endpoint,
            budget=budget,
            progress=progress,
        ),
        args.trace,
    )
    if isinstance(result, Stopped):
        return result.code
    if isinstance(result.error, BackendError) and not args.json:
        raise result.error.with_message(f"{result.error} (trace: {result.trace})")
    return report(result, args.json)


def _endpoint(header: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    given = endpoint_settings(args)
    provider = str(header.get("model", "")).split("/", 1)[0]
    if given and provider != "openai":
        raise ConfigError(f"--base-url, --rpm, --tpm and --request-timeout apply to openai/ models, not {provider}/")
    return given


def _register_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="re-run a trace's decisions from its recorded samples (no model calls), "
        "or re-vote them with another k or rule",
        description="Without --k/--rule: re-execute the run from the trace's samples alone and check "
        "every decision (TraceMismatch at the first divergence). With --k or --rule: "
        "re-vote each step's recorded samples with that rule and count the outcomes.",
    )
    p.add_argument("trace", type=Path, metavar="TRACE", help="a trace (.jsonl or .jsonl.gz)")
    p.add_argument(
        "--k", type=_k_list, default=None, metavar="K[,K...]", help="re-vote with ahead-by-K (several: 1,2,3)"
    )
    p.add_argument(
        "--rule",
        choices=("ahead-by-k", "majority", "single"),
        default=None,
        help="re-vote with this rule too (majority takes --n)",
    )
    p.add_argument("--n", type=positive, default=None, help="votes per step for --rule majority (default 7)")
    p.add_argument("--steps", action="store_true", help="list every step whose re-voted outcome changed")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout, no table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_replay)


def _k_list(text: str) -> list[int]:
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or a comma list K,K,..., got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"each k must be a positive integer, got {text!r}")
    return ks


def _rules(args: argparse.Namespace) -> list[DecisionRule]:
    if args.n is not None and args.rule != "majority":
        raise ConfigError("--n applies to --rule majority")
    if args.rule == "ahead-by-k" and args.k is None:
        raise ConfigError("--rule ahead-by-k needs --k")
    rules: list[DecisionRule] = [AheadByK(k) for k in args.k or ()]
    if args.rule == "majority":
        rules.append(Majority(args.n or 7))
    elif args.rule == "single":
        rules.append(Single())
    return rules


def _replay(args: argparse.Namespace) -> int:
    rules = _rules(args)
    if is_manifest(args.trace):
        return _replay_shards(args, rules)
    if rules:
        header = next(read_events(args.trace))
        results = revote(args.trace, rules, keep_steps=args.steps)
        recorded = _recorded_rule(header)
        if args.json:
            sys.stdout.write(
                json.dumps(
                    {
                        "trace": str(args.trace),
                        "recorded_rule": header["voting"],
                        "rules": [r.to_json(with_steps=args.steps) for r in results],
                    }
                )
                + "\n"
            )
        else:
            print_revotes(args.trace, recorded, results, show_steps=args.steps)
        return 0
    # A bar only on a terminal: a trace found corrupt mid-replay must still read as one line in a log.
    progress = RichProgress(label="replay") if sys.stderr.isatty() and not (args.quiet or args.json) else None
    result = anyio.run(lambda: areplay(args.trace, progress=progress))
    if args.json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        print_replay(result)
    return 0 if result.reproduced else 1


def _replay_shards(args: argparse.Namespace, rules: list[DecisionRule]) -> int:
    """A sharded run: re-vote its merged trace, or replay each shard's trace (each is a whole run)."""
    if rules:
        with readable_trace(args.trace) as merged:
            return _replay(argparse.Namespace(**{**vars(args), "trace": merged}))
    reproduced = True
    for shard in shard_traces(args.trace):
        result = anyio.run(areplay, shard)
        reproduced = reproduced and result.reproduced
        if args.json:
            sys.stdout.write(json.dumps({"shard": str(shard), **result.to_json()}) + "\n")
        else:
            print_replay(result)
    return 0 if reproduced else 1


def _rule(header: dict[str, Any]) -> DecisionRule:
    try:
        return rule_from_dict(header["voting"])
    except (KeyError, ValueError, TypeError):
        raise ConfigError("the trace's header names no voting rule maker knows") from None


def _recorded_rule(header: dict[str, Any]) -> str:
    try:
        return rule_name(rule_from_dict(header["voting"]).describe())
    except (ConfigError, KeyError, ValueError, TypeError):
        return "an unknown rule"


def _register_trace(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "trace",
        help="inspect a trace: `maker trace show TRACE [--step S]`",
        description="Inspect a trace without writing code.",
    )
    commands = p.add_subparsers(dest="trace_command", metavar="COMMAND", parser_class=type(p))
    commands.required = True
    show = commands.add_parser(
        "show",
        help="header, counts, hardest steps; one step's samples with --step",
        description="A readable summary of a trace: the header, counts, sessions, the "
        "hardest steps and, with --step, that step's every sample.",
    )
    show.add_argument("trace", type=Path, metavar="TRACE", help="a trace (.jsonl or .jsonl.gz)")
    show.add_argument("--step", type=_step_id, default=None, metavar="S", help="show this step's samples")
    show.add_argument("--text", action="store_true", help="with --step: print each sample's full reply text")
    show.add_argument("--json", action="store_true", help="print one JSON object on stdout, no tables")
    show.add_argument(
        "--tree", default=None, metavar="PROBLEM", help="a recursive run: print this problem's decomposition tree"
    )
    show.set_defaults(func=_show)
    register_merge(commands)


def _step_id(text: str) -> int | str:
    """Step ids are integers (chains) or strings (named DAG nodes)."""
    try:
        return int(text)
    except ValueError:
        return text


def _show(args: argparse.Namespace) -> int:
    if args.tree is not None:
        return _show_tree(args)
    with readable_trace(args.trace) as trace:
        summary = summarize(trace, step=args.step)
    if args.json:
        sys.stdout.write(json.dumps(summary.to_json()) + "\n")
        return 0
    print_summary(summary, show_text=args.text)
    return 0


def _show_tree(args: argparse.Namespace) -> int:
    from maker._recursive import decomposition_tree, render_tree
    from maker.traces import read_events

    with readable_trace(args.trace) as trace:
        tree = decomposition_tree(read_events(trace), args.tree)
        header = next(read_events(trace))
    describe = _recorded_problem(header, tree)
    for line in render_tree(tree, describe) if describe else render_tree(tree):
        print(line)
    return 0


def _recorded_problem(header: dict[str, Any], tree: Any) -> Any:
    """The root's problem and how to describe problems, where the trace's task can be rebuilt (a built-in task)."""
    from maker._history import task_of

    try:
        plan = task_of(header).plan()
    except MakerError:
        return None  # a user's own plan: the tree shows sub-problems only
    problem = getattr(plan, "problem", None)
    roots = getattr(plan, "roots", {})
    if problem is None:
        return None
    tree.problem = roots.get(tree.path)
    return problem.describe
