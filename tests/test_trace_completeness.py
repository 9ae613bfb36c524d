"""A trace with a hole, a duplicate or an edited end is refused, never "reproduced".

Each edit below is one a torn merge, a careless `sed` or a tampering hand could
make to a real trace. Every command that would otherwise believe it names the
file and stops with exit 2 and one line; the file is never changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import maker
from maker.cli._app import main
from maker.tasks import build_task


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("good") / "good.jsonl"
    maker.run(build_task("hanoi", disks=4), model="sim/gpt-4.1-mini", trace=path)
    return path.read_bytes().splitlines(keepends=True)


def _decisions(lines: list[bytes]) -> list[int]:
    return [n for n, line in enumerate(lines) if json.loads(line)["type"] == "decision"]


def _duplicate(lines: list[bytes]) -> list[bytes]:
    n = _decisions(lines)[1]
    return [*lines[: n + 1], lines[n], *lines[n + 1 :]]


def _hole(lines: list[bytes]) -> list[bytes]:
    n = _decisions(lines)[2]
    return lines[:n] + lines[n + 1 :]


def _unknown_step(lines: list[bytes]) -> list[bytes]:
    n = _decisions(lines)[-1]
    extra = json.loads(lines[n])
    extra["step"] = 10_000
    return [*lines[: n + 1], json.dumps(extra).encode() + b"\n", *lines[n + 1 :]]


def _solved_but_short(lines: list[bytes]) -> list[bytes]:
    """The last decisions cut away, the `end: solved` line kept (and its count edited to match)."""
    cut = _decisions(lines)[-3]
    end = json.loads(lines[-1])
    end["totals"]["steps"] = len(_decisions(lines[:cut]))
    kept = [line for line in lines[:cut] if json.loads(line)["type"] != "end"]
    return [*kept, json.dumps(end).encode() + b"\n"]


# edit → (commands that must refuse it, what the one line must say)
EDITS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], tuple[str, ...], str]] = {
    "a step decided twice": (_duplicate, ("replay", "trace show", "analyze"), "decided twice"),
    "a decision removed": (_hole, ("replay",), "hole"),
    "a decision for a step the plan lacks": (_unknown_step, ("replay",), "10000"),
    "an end that says solved too early": (_solved_but_short, ("replay", "trace show"), "solved"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_every_reader_refuses_a_trace_the_plan_does_not_match(
    tmp_path: Path, good: list[bytes], edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, commands, says = EDITS[edit]
    path = tmp_path / "edited.jsonl"
    path.write_bytes(b"".join(make(good)))
    before = path.read_bytes()
    for command in commands:
        code = main([*command.split(), str(path)])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", f"maker {command} on {edit}: exit {code}: {err}"
        assert err.startswith("maker: error: ") and err.count("\n") == 1, f"maker {command} on {edit}: {err}"
        assert str(path) in err and says in err, f"maker {command} on {edit}: {err}"
        assert path.read_bytes() == before


def test_the_unedited_trace_passes_every_reader(
    tmp_path: Path, good: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.jsonl"
    path.write_bytes(b"".join(good))
    for command in ("replay", "trace show", "analyze"):
        assert main([*command.split(), str(path)]) == 0
    capsys.readouterr()
