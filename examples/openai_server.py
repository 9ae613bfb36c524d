"""Run a registered task on any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, `maker serve-sim`).

    maker serve-sim --port 8000 &                # a local simulated model over HTTP
    python examples/openai_server.py arithmetic digits=40 --base-url http://127.0.0.1:8000/v1

The base URL comes from --base-url, else $MAKER_BASE_URL, else $OPENAI_BASE_URL;
the key from $OPENAI_API_KEY (a local server needs none).
"""

from __future__ import annotations

import argparse
import json

import anyio

import maker
from maker.tasks import build_task
from maker.voting import AheadByK, Voting


def options(pairs: list[str]) -> dict[str, int]:
    """`digits=40 instance=2` → {"digits": 40, "instance": 2} (every task option is an integer)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"task options are name=value, got {pair!r}")
        out[name] = int(value)
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    task = build_task(args.task, **options(args.options))
    backend = maker.open_backend(args.model, base_url=args.base_url)
    try:
        result = await maker.arun(
            task,
            backend=backend,
            voting=Voting(rule=AheadByK(args.k)),
            settings=maker.RunSettings(concurrency=args.concurrency),
            trace=args.trace,
        )
    finally:
        await backend.aclose()
    return result.to_json()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a task from `maker tasks`")
    parser.add_argument("options", nargs="*", help="task options as name=value")
    parser.add_argument("--model", default="openai/gpt-4.1-mini", help="openai/<model id on the server>")
    parser.add_argument("--base-url", default=None, help="the server's /v1 URL")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--trace", default=None)
    summary = anyio.run(main, parser.parse_args())
    print(json.dumps(summary))
