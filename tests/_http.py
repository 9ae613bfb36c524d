"""Helpers for tests over real HTTP: `maker serve-sim` as a subprocess, and `maker` runs against it."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _cli import clean_env, maker_command, run_maker

__all__ = [
    "FAST_RETRIES",
    "clean_env",
    "closed_port",
    "maker_command",
    "run_maker",
    "server_stats",
    "sim_server_process",
]

# Small retry waits so fault-heavy runs stay fast (the policy's shape is unchanged).
FAST_RETRIES = "max_attempts=12&backoff=0.005&backoff_max=0.05&retry_after_max=0.2"


@contextmanager
def sim_server_process(*args: str) -> Iterator[str]:
    """`maker serve-sim ARGS` in a subprocess; yields its base URL, stops it after."""
    proc = subprocess.Popen(
        [*maker_command(), "serve-sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def server_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as response:
        return json.load(response)


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
