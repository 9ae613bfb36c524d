"""`maker watch TRACE`: follow a run from its trace, live, from any terminal that sees the file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from maker._watch import Watch
from maker.cli._types import positive_float
from maker.errors import TraceError
from maker.traces._manifest import is_manifest, read_manifest
from maker.traces._reader import read_events


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "watch",
        help="follow a run from its trace (or a sharded run's manifest), live; never touches the run",
        description="Follow a run from its trace while another process writes it: steps, rates, ETA, "
        "samples, red flags, votes against theory, cost, retries, throttling, the hardest recent steps "
        "and whether the writer is alive. Exits when the run ends, or on Ctrl-C (the run goes on).",
    )
    p.add_argument("trace", type=Path, metavar="TRACE", help="a trace (.jsonl[.gz]) or a sharded run's manifest.json")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--json", action="store_true", help="JSON snapshots on stdout, one a line (one with --once)")
    p.add_argument(
        "--interval", type=positive_float, default=2.0, metavar="S", help="seconds between looks (default 2)"
    )
    p.set_defaults(func=_watch)


def _watch(args: argparse.Namespace) -> int:
    _check(args.trace)
    watch = Watch(args.trace)
    try:
        if args.once:
            _emit(watch.poll(), args.json)
        elif args.json:
            _follow_json(watch, args.interval)
        else:
            _follow_live(watch, args.interval)
    except KeyboardInterrupt:
        print("maker: stopped watching; the run itself goes on", file=sys.stderr)
    return 0


def _check(path: Path) -> None:
    """One clear line for a path that is not a trace or a manifest, before any view starts."""
    if is_manifest(path):
        read_manifest(path)
        return
    try:
        next(read_events(path))
    except StopIteration:
        raise TraceError(f"{path}: empty trace") from None


def _emit(snapshot: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(snapshot, default=str) + "\n")
        sys.stdout.flush()
    else:
        Console().print(render(snapshot))


def _follow_json(watch: Watch, interval: float) -> None:
    while True:
        _emit(watch.poll(), True)
        if watch.finished:
            return
        time.sleep(interval)


def _follow_live(watch: Watch, interval: float) -> None:
    with Live(render(watch.poll()), console=Console(), auto_refresh=False) as live:
        while not watch.finished:
            time.sleep(interval)
            live.update(render(watch.poll()), refresh=True)


def render(s: dict[str, Any]) -> Group:
    """The snapshot as tables. Values from the trace are escaped: a trace is data, never markup."""
    title = f"{s.get('task') or 'run'} on {s.get('model') or '?'}" + (
        f" ({s['shards']} shards)" if s.get("shards") else ""
    )
    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in _rows(s):
        table.add_row(name, escape(value))
    parts: list[Any] = [table]
    if s.get("hardest_recent"):
        hard = Table(title="hardest recent steps", title_justify="left")
        for column in ("step", "rounds", "samples", "votes (per answer)"):
            hard.add_column(column, justify="right")
        for d in s["hardest_recent"]:
            votes = d.get("votes")
            counts = (
                sorted((n for n in votes.values() if isinstance(n, int)), reverse=True)
                if isinstance(votes, dict)
                else []
            )
            row = (str(d.get("step")), str(d.get("rounds")), str(d.get("samples")), " : ".join(map(str, counts)))
            hard.add_row(*(escape(v) for v in row))
        parts.append(hard)
    return Group(*parts)


def _rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    total = s.get("total_steps")
    rows = [
        ("writer", _writer(s)),
        ("steps", f"{s['steps']:,} / {total:,}" if total else f"{s['steps']:,}"),
        ("steps/s (last minute)", _num(s.get("steps_per_s_recent"), "{:,.1f}")),
        ("steps/s (while watched)", _num(s.get("steps_per_s_watched"), "{:,.1f}")),
        ("ETA", _duration(s.get("eta_s"))),
        ("samples", f"{s['samples']:,}"),
        ("red flags", f"{s['red_flags']:,} ({_num(s.get('red_flag_rate'), '{:.2%}')})"),
        (
            "votes per step (theory)",
            f"{_num(s.get('votes_per_step'), '{:.3f}')} ({_num(s.get('votes_per_step_theory'), '{:.3f}')})",
        ),
        ("errors (vs ground truth)", f"{s['errors']:,} of {s['scored']:,} scored"),
        ("cost so far / projected", f"{_usd(s.get('cost_usd'))} / {_usd(s.get('cost_projected_usd'))}"),
        ("transport retries", f"{s['retries']:,}"),
        ("throttled", f"{s['throttled']:,} times, {s['throttled_s']:.1f} s"),
        ("sessions", str(s.get("sessions"))),
    ]
    return rows


def _writer(s: dict[str, Any]) -> str:
    writer = s.get("writer")
    if writer == "ended":
        return f"ended: {s.get('outcome')}"
    if writer == "gone":
        return "writer gone (crashed or killed; `maker resume` continues it)"
    return str(writer)


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def _usd(value: float | None) -> str:
    return "— (no price)" if value is None else f"${value:,.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{sec:02d}"
