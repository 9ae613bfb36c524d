"""Trace fuzzing: 500+ seeded mutations of valid traces through every command that reads traces.

Each mutated file goes through `maker trace show`, `maker replay` (exact and
re-voting), `maker analyze` and `maker resume`, run in-process through the CLI's
own `main` (what the `maker` command calls). Whatever the damage, the outcome
is a result (exit 0, or 1 for a replay that found a mismatch) or one line on
stderr with exit 2: never a traceback, never an exception escaping, never a
hang. Mutations are seeded: a failure names its case, and `case(N)` rebuilds it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import maker
from maker.cli import _app as app
from maker.tasks import build_task

CASES = 510
SEED = 170017
HANG_S = 20  # a command on a 7-step trace takes milliseconds; this only catches a hang

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("trace", "show", "--step", "1", "--text"),
    ("trace", "show", "--json", "--step", "2"),
    ("replay",),
    ("replay", "--k", "1,3", "--steps"),
    ("analyze",),
    ("analyze", "--json"),
    ("resume", "--json", "--quiet"),  # last: it may append to the file
)

PALETTE: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    7,
    2**31,
    10**30,
    1.5,
    -0.0,
    float("inf"),
    "",
    "1",
    "x",
    "solved",
    "llm",
    "sample",
    [],
    [1, 2],
    {},
    {"a": 1},
    {"rule": "ahead-by-k", "k": 3},
    [[[]]],
)
TYPES = ("header", "sample", "decision", "step_error", "resume", "end", "unknown")


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Valid traces to mutate: a finished run of two sessions, and a run killed mid-line."""
    where = tmp_path_factory.mktemp("fuzzbase")
    full = where / "full.jsonl"
    maker.run(build_task("hanoi", disks=3), model="sim/hostile", trace=full)
    raw = full.read_bytes()
    lines = raw.splitlines(keepends=True)
    cut = len(lines) // 2
    two = where / "two.jsonl"
    two.write_bytes(b"".join(lines[:cut]))
    maker.resume(two)  # a second session, with its resume line
    killed = b"".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2]
    return [two.read_bytes(), killed]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(event: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = event
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return event


def _field(rng: random.Random, lines: list[bytes]) -> list[bytes]:
    n = rng.randrange(len(lines))
    try:
        event = json.loads(lines[n])
    except ValueError:
        return lines
    paths = list(_paths(event))
    path = rng.choice(paths[1:] or paths)
    if path == ("type",):
        value: Any = rng.choice(TYPES)
    else:
        value = rng.choice(PALETTE)
    event = _set(event, path, value, delete=bool(path) and rng.random() < 0.25)
    lines[n] = json.dumps(event).encode() + b"\n"
    return lines


def _lines_op(rng: random.Random, lines: list[bytes]) -> list[bytes]:
    n = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
    op = rng.randrange(6)
    if op == 0:
        del lines[n]
    elif op == 1:
        lines.insert(n, lines[n])
    elif op == 2 and n + 1 < len(lines):
        lines[n], lines[n + 1] = lines[n + 1], lines[n]
    elif op == 3:
        lines.insert(rng.randrange(len(lines) + 1), lines.pop(n))
    elif op == 4:
        depth = rng.choice((50, 2000, 100_000))
        lines.insert(n, b'{"type":"sample","step":' + b"[" * depth + b"]" * depth + b"}\n")
    else:
        event = json.loads(lines[n]) if lines[n].endswith(b"\n") else {"type": "decision"}
        if isinstance(event, dict) and "step" in event:
            event["step"] = rng.choice((99, -1, "7", 2.5))
        lines.insert(n, json.dumps(event).encode() + b"\n")
    return lines


def _bytes_op(rng: random.Random, raw: bytes) -> bytes:
    at = rng.randrange(len(raw))
    op = rng.randrange(4)
    if op == 0:
        return raw[:at]
    if op == 1:
        return raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
    if op == 2:
        return raw[:at] + rng.choice((b"\n", b"\x00", b"}", b'"', b"\xff\xfe", b"\\ud800")) + raw[at:]
    return raw[:at] + raw[at + rng.randrange(1, 40) :]


def case(n: int, bases: list[bytes]) -> tuple[str, bytes]:
    """Mutation number `n`: (its file name, its bytes). Deterministic in n."""
    rng = random.Random(SEED * 1000 + n)
    raw = bases[n % len(bases)]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.random()
        lines = raw.splitlines(keepends=True)
        if kind < 0.55:
            raw = b"".join(_field(rng, lines))
        elif kind < 0.8:
            raw = b"".join(_lines_op(rng, lines))
        elif raw:
            raw = _bytes_op(rng, raw)
    if rng.random() < 0.25:
        packed = gzip.compress(raw, compresslevel=1, mtime=0)
        if rng.random() < 0.3:
            packed = packed[: rng.randrange(len(packed) + 1)]
        return f"case{n}.jsonl.gz", packed
    return f"case{n}.jsonl", raw


class Hang(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), deadline(HANG_S):
        rc = app.main(argv)
    return rc, out.getvalue(), err.getvalue()


def check_outcome(argv: list[str], rc: int, stderr: str) -> str | None:
    """What is wrong with one command's outcome, or None."""
    if "Traceback" in stderr:
        return "a traceback"
    if rc not in (0, 1, 2):
        return f"exit {rc}"
    if stderr.startswith("maker: error:") and stderr.count("\n") != 1:
        return "an error of more than one line"
    if rc == 2 and not (stderr.startswith("maker: error:") and stderr.count("\n") == 1):
        return "exit 2 without exactly one error line"
    return None  # exit 0 or 1 with a result: a replay that found a mismatch, a resumed run that failed


def fuzz(bases: list[bytes], where: Path, cases: range, on_case: Callable[[int, str], None] | None = None) -> list[str]:
    problems: list[str] = []
    for n in cases:
        name, raw = case(n, bases)
        path = where / name
        path.write_bytes(raw)
        for command in COMMANDS:
            argv = [
                *command[:1],
                *(["show"] if command[0] == "trace" else []),
                str(path),
                *command[2 if command[0] == "trace" else 1 :],
            ]
            try:
                rc, _, stderr = run_main(argv)
            except BaseException as exc:  # the very thing under test: anything escaping main
                problems.append(f"case {n} {' '.join(command)}: {type(exc).__name__}: {exc}"[:300])
                continue
            problem = check_outcome(argv, rc, stderr)
            if problem:
                problems.append(f"case {n} {' '.join(command)}: {problem}: {stderr[-300:]!r}")
        path.unlink()
    return problems


@pytest.mark.timeout(300)
def test_500_mutated_traces_give_a_result_or_one_line_never_a_traceback(
    tmp_path: Path, bases: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same parser every call (building it costs more than most of these commands).
    monkeypatch.setattr(app, "build_parser", functools.cache(app.build_parser))
    problems = fuzz(bases, tmp_path, range(CASES))
    assert not problems, f"{len(problems)} problems, e.g.:\n" + "\n".join(problems[:15])
