"""The `maker` command as tests run it: in a subprocess as a user does, or in process.

One place for what every CLI test needs: the command (the installed script, else
`python -m maker.cli`), an environment without the developer's endpoint and key
settings, a wide terminal so tables do not wrap, and a timeout on every call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Endpoint, key and price settings the developer may have; a test run must not use them.
USER_SETTINGS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MAKER_BASE_URL", "MAKER_PRICES")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any endpoint or key settings the developer may have."""
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    env.update(extra)
    return env


def maker_command() -> list[str]:
    script = Path(sys.executable).with_name("maker")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maker.cli"]


def run_maker(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`maker ARGS` to the end: its exit status, stdout and stderr (a wide terminal, no user settings)."""
    return subprocess.run(
        [*maker_command(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(COLUMNS="200"),
    )


def start_maker(*args: str, cwd: Path | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """`maker ARGS` started in the background (the caller waits for it, or stops it)."""
    popen.setdefault("env", clean_env(COLUMNS="200"))
    return subprocess.Popen([*maker_command(), *args], cwd=cwd, **popen)


def run_json(*args: str, cwd: Path | None = None) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """`maker ARGS --json`: stdout must be exactly one JSON object."""
    done = run_maker(*args, "--json", cwd=cwd)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got {done.stdout!r} ({done.stderr})"
    summary = json.loads(lines[0])
    assert isinstance(summary, dict)
    return summary, done


def main_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`maker ARGV` in this process (fast, no subprocess): exit status, stdout, stderr."""
    from maker.cli._app import main  # the public `maker.cli.main` exits the process

    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err
