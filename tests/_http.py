"""Helpers for tests over real HTTP: `maker serve-sim` as a subprocess, and `maker` runs against it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Small retry waits so fault-heavy runs stay fast (the policy's shape is unchanged).
FAST_RETRIES = "max_attempts=12&backoff=0.005&backoff_max=0.05&retry_after_max=0.2"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any endpoint or key settings the developer may have."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MAKER_BASE_URL", "MAKER_PRICES")
    }
    env.update(extra)
    return env


def maker_command() -> list[str]:
    script = Path(sys.executable).with_name("maker")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maker.cli"]


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


def run_maker(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*maker_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
    )


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
