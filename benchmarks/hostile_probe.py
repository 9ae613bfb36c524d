"""Re-measure the reliability probe's hostile-server numbers (issue 17, items 3-6).

Each scenario runs the real CLI (`maker hanoi`) in a child process against the
hostile test server (`tests/_hostile.py`, serve-sim with spoiled replies) on
127.0.0.1, and prints the child's exit status and stderr line, its peak RSS,
the trace size and the samples the server was asked for. A clean run against
the same server is the baseline. Wall times are printed for information only.

    .venv/bin/python benchmarks/hostile_probe.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _hostile import (
    always,
    endless,
    gzip_bomb,
    hostile_in_thread,
    huge,
    huge_undeclared,
    reshaped,
    slow_loris,
)

CHILD = (
    "import resource, sys; from maker.cli._app import main; rc = main(sys.argv[1:]);"
    " print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)
FAST = "max_attempts=3&backoff=0.01&backoff_max=0.05"
WIDE = ["--k", "16"]  # a first round of 16 samples: 16 replies in flight at once


def negative(reply: dict[str, Any]) -> None:
    reply["usage"] = {"prompt_tokens": -(10**6), "completion_tokens": -(10**5)}


SCENARIOS: list[tuple[str, Any, list[str]]] = [
    ("clean replies (baseline)", None, []),
    ("clean replies, 16 at once (baseline)", None, WIDE),
    ("50 MB replies, 16 at once", huge(50 * 1024 * 1024), WIDE),
    ("50 MB chunked replies, 16 at once", huge_undeclared(50 * 1024 * 1024), WIDE),
    ("endless bodies, 16 at once", endless(), WIDE),
    ("1 MB gzip bomb (1 GB inflated), 16 at once", gzip_bomb(1024**3), WIDE),
    ("slow loris, --request-timeout 2", slow_loris(0.05), ["--request-timeout", "2"]),
    ("honest usage, --max-tokens 20000", None, ["--max-tokens", "20000"]),
    ("negative usage, --max-tokens 20000", reshaped(negative), ["--max-tokens", "20000"]),
]


def run(name: str, send: Any, extra: list[str], where: Path) -> None:
    trace = where / f"{abs(hash(name))}.jsonl"
    with hostile_in_thread(always(send) if send is not None else (lambda n: None)) as server:
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                "hanoi",
                "--disks",
                "4",
                "--model",
                f"openai/perfect?{FAST}",
                "--base-url",
                server.base_url,
                "--concurrency",
                "16",
                "--trace",
                str(trace),
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.perf_counter() - start
        asked = server.stats.chat_requests
    lines = done.stderr.strip().splitlines()
    peak_mb = int(lines[-1]) / 1024
    said = lines[-2] if len(lines) > 1 else ""
    summary = json.loads(done.stdout) if done.stdout.strip() else {}
    size = trace.stat().st_size if trace.exists() else 0
    print(
        f"{name:44} exit {done.returncode}  peak RSS {peak_mb:6.0f} MB  trace {size / 1024:7.1f} KiB  "
        f"requests {asked:4}  samples {summary.get('samples', '-'):>4}  "
        f"tokens {summary.get('tokens_in', 0) + summary.get('tokens_out', 0):>7}  wall {wall:5.1f} s"
    )
    if said:
        print(f"{'':44} stderr: {said[:150]}")
    if summary.get("error"):
        print(f"{'':44} error: {summary['error'][:150]}")


def main() -> None:
    with tempfile.TemporaryDirectory() as where:
        for name, send, extra in SCENARIOS:
            run(name, send, extra, Path(where))


if __name__ == "__main__":
    main()
