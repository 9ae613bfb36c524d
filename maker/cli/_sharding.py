"""`--shards N [--executor local|ray]` on the run commands, and sharded runs' manifests elsewhere.

Parses and reports only: splitting, executing, merging and resuming live in
`maker._sharded` and `maker.traces`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from maker._sharded import ShardedResult, aresume_sharded, arun_sharded, default_directory
from maker.cli._escape import console
from maker.cli._types import positive
from maker.errors import ConfigError
from maker.tasks._protocol import Task
from maker.traces._manifest import is_manifest, shard_traces
from maker.traces._merge import merge_shards


def add_shard_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("shards (wide work on several processes or a Ray cluster)")
    g.add_argument(
        "--shards",
        type=positive,
        default=None,
        metavar="N",
        help="split work with no cross-shard edges (independent steps, a DAG's components) into N runs, "
        "each with its own trace, listed in a manifest (--trace names its directory)",
    )
    g.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where shards run: child processes here (default) or Ray tasks (pip install 'maker[ray]')",
    )
    g.add_argument("--ray-address", default=None, metavar="ADDR", help="a Ray cluster to join (default: local Ray)")


def run_sharded_command(task: Task, args: argparse.Namespace, parts: dict[str, Any]) -> int:
    """`maker hanoi/run ... --shards N`: run the shards, then print one summary for all of them."""
    if args.no_trace:
        raise ConfigError("--shards needs traces (each shard's trace is its record); drop --no-trace")
    directory = _directory(args.trace, task.name)
    progress = parts.get("progress")
    result = anyio.run(
        lambda: arun_sharded(
            task,
            shards=args.shards,
            directory=directory,
            model=args.model,
            voting=parts["voting"],
            settings=parts["settings"],
            independent=getattr(args, "independent", None),
            budget=parts.get("budget"),
            endpoint=parts.get("endpoint"),
            executor=args.executor,
            ray_address=args.ray_address,
            progress=progress,
        )
    )
    return report_sharded(result, args.json)


def _directory(trace: Path | None, task: str) -> Path:
    if trace is None:
        return default_directory(task)
    if trace.name == "manifest.json":
        return trace.parent
    if trace.suffix in (".jsonl", ".gz"):
        raise ConfigError(f"--trace {trace}: with --shards it names a directory for the shards and their manifest")
    return trace


def resume_manifest(args: argparse.Namespace, progress: Any) -> int:
    result = anyio.run(lambda: aresume_sharded(args.trace, progress=progress))
    return report_sharded(result, args.json)


def report_sharded(result: ShardedResult, as_json: bool) -> int:
    """One table (or JSON object) for the whole run, and one line per shard that did not finish."""
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), default=str) + "\n")
    else:
        _table(result, console())
    for shard in result.failed:
        print(f"maker: shard {shard.get('index')}: {shard.get('outcome')}: {shard.get('message', '')}", file=sys.stderr)
    return 0 if result.outcome in ("solved", "measured") else 1


def _table(result: ShardedResult, console: Console) -> None:
    t = result.totals
    table = Table(title=f"sharded run: {result.outcome} ({len(result.shards)} shards)", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = t.get("samples", 0) / result.wall_s if result.wall_s else 0.0
    for name, value in (
        ("steps", f"{t.get('steps', 0):,}"),
        ("errors (vs ground truth)", f"{t.get('errors', 0):,} of {t.get('scored_steps', 0):,} scored"),
        ("samples", f"{t.get('samples', 0):,}"),
        ("red flags", f"{t.get('red_flags', 0):,}"),
        ("undecided steps", f"{t.get('undecided_steps', 0):,}"),
        ("wall time", f"{result.wall_s:.2f} s ({rate:,.0f} samples/s)"),
        ("manifest", str(result.manifest)),
    ):
        table.add_row(name, value)
    console.print(table)


@contextmanager
def readable_trace(path: Path) -> Iterator[Path]:
    """A trace to read for `path`: itself, or (for a manifest) its shards merged into a temporary trace."""
    if not is_manifest(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="maker-merge-") as scratch:
        suffix = ".jsonl.gz" if any(t.suffix == ".gz" for t in shard_traces(path)) else ".jsonl"
        yield merge_shards(path, Path(scratch) / f"merged{suffix}")


def register_merge(trace_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = trace_sub.add_parser(
        "merge",
        help="write one trace from a sharded run's shards",
        description="Merge the shards a manifest lists into one trace (derived: the shards stay the record).",
    )
    p.add_argument("manifest", type=Path, metavar="MANIFEST", help="a sharded run's manifest.json")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="the trace to write (.jsonl[.gz])")
    p.set_defaults(func=_merge)


def _merge(args: argparse.Namespace) -> int:
    if not is_manifest(args.manifest):
        raise ConfigError(f"{args.manifest} is not a sharded run's manifest")
    if args.output.exists():
        raise ConfigError(f"{args.output} already exists; pick another path")
    out = merge_shards(args.manifest, args.output)
    print(f"wrote {out}")
    return 0
