"""A file that is not a good trace gets one clear line naming it, never a traceback.

Every bad file goes through the real `maker` command (trace show, replay,
re-vote and resume) and through the library reader. The one thing that is not
an error is a torn last line: a run killed mid-write never committed it.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from _http import clean_env, maker_command

import maker
from maker.cli._app import main
from maker.errors import TraceError
from maker.tasks import build_task
from maker.traces import read_events, summarize

COMMANDS = (["trace", "show"], ["replay"], ["replay", "--k", "2"], ["resume"])


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.jsonl"
    maker.run(build_task("hanoi", disks=3), model="sim/hostile", trace=path)
    return path.read_bytes()


def _lines(raw: bytes) -> list[bytes]:
    return raw.splitlines(keepends=True)


def _header(raw: bytes, **changes: object) -> bytes:
    header = json.loads(_lines(raw)[0])
    header.update(changes)
    return json.dumps(header).encode() + b"\n" + b"".join(_lines(raw)[1:])


# name → (how to make the file from a good trace, what the one line must say)
BAD: dict[str, tuple[Callable[[bytes], bytes | None], str]] = {
    "corrupt line": (
        lambda raw: b"".join(_lines(raw)[:3]) + b'{"type": "sample", "step": \n' + b"".join(_lines(raw)[3:]),
        ":4: corrupt trace line",
    ),
    "corrupt last line": (lambda raw: raw + b"#garbage#\n", "corrupt trace line"),
    "truncated in its header": (lambda raw: _lines(raw)[0][:40], "truncated trace"),
    "truncated gzip": (lambda raw: gzip.compress(raw)[:12], "truncated trace"),
    "corrupt gzip": (lambda raw: gzip.compress(raw)[:-8] + b"\0" * 8, "corrupt gzip data"),
    "empty": (lambda raw: b"", "empty trace"),
    "empty gzip": (lambda raw: gzip.compress(b""), "empty trace"),
    "wrong version": (lambda raw: _header(raw, schema_version=99), "schema version 99 is not supported"),
    "version not a number": (lambda raw: _header(raw, schema_version="1"), "schema version '1' is not supported"),
    "plain text": (lambda raw: b"hello, this is a note\nnot a trace\n", "not a maker trace"),
    "text without newline": (lambda raw: b"hello", "not a maker trace"),
    "binary": (lambda raw: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a maker trace"),
    "json list": (lambda raw: b"[1, 2, 3]\n", "not a maker trace"),
    "another event first": (lambda raw: b"".join(_lines(raw)[1:]), "not a maker trace (first line is a 'sample'"),
    "an event missing a field": (
        lambda raw: raw.replace(b',"key":', b',"kee":', 1),
        ":2: corrupt trace line (a sample event without 'key')",
    ),
    "a header missing its voting": (
        lambda raw: _header(raw, voting=None).replace(b'"voting": null, ', b""),
        "corrupt trace line (a header event without 'voting')",
    ),
    "missing": (lambda raw: None, "no such file"),
}


def _make(tmp_path: Path, name: str, good: bytes) -> Path:
    path = tmp_path / (name.replace(" ", "-") + (".jsonl.gz" if "gzip" in name else ".jsonl"))
    content = BAD[name][0](good)
    if content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_reader_names_the_file_and_the_problem(tmp_path: Path, good: bytes, name: str) -> None:
    path = _make(tmp_path, name, good)
    with pytest.raises(TraceError) as caught:
        list(read_events(path))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and BAD[name][1] in message


def _files(tmp_path: Path, good: bytes) -> dict[str, Path]:
    return {**{name: _make(tmp_path, name, good) for name in BAD}, "directory": tmp_path}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_gives_one_line_and_exit_2_for_every_bad_file(
    tmp_path: Path, good: bytes, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    for name, path in _files(tmp_path, good).items():
        before = path.read_bytes() if path.is_file() else None
        code = main([*command, str(path)])  # the CLI's own entry point: an escaping exception fails the test
        out, err = capsys.readouterr()
        where = f"maker {' '.join(command)} on {name}"
        assert code == 2, f"{where}: exit {code}: {err}"
        assert out == "" and err.count("\n") == 1 and err.startswith("maker: error: "), f"{where}: {err}"
        assert str(path) in err, where
        assert (path.read_bytes() if path.is_file() else None) == before, f"{where} changed the file"


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path, good: bytes) -> None:
    """The same through real `maker` processes: each bad file once, the commands taken in turn."""
    files = _files(tmp_path, good)
    procs = {
        name: subprocess.Popen(
            [*maker_command(), *COMMANDS[n % len(COMMANDS)], str(path)],
            cwd=tmp_path,
            env=clean_env(COLUMNS="200"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, (name, path) in enumerate(files.items())
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "Traceback" not in err, f"{name}: exit {proc.returncode}: {err}"
        assert out == "" and err.count("\n") == 1 and str(files[name]) in err, f"{name}: {err}"


def test_a_torn_last_line_is_dropped_not_an_error(tmp_path: Path, good: bytes) -> None:
    path = tmp_path / "torn.jsonl"
    lines = _lines(good)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # killed in the middle of its end line
    events = list(read_events(path))
    assert len(events) == len(lines) - 1 and events[-1] == json.loads(lines[-2])
    assert summarize(path).outcome == "crashed"
    done = subprocess.run(
        [*maker_command(), "trace", "show", str(path)],
        cwd=tmp_path,
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "crashed" in done.stdout


def test_a_torn_gzip_stream_is_dropped_not_an_error(tmp_path: Path, good: bytes) -> None:
    path = tmp_path / "torn.jsonl.gz"
    packed = gzip.compress(good)
    path.write_bytes(packed[: len(packed) * 2 // 3])
    events = list(read_events(path))
    assert 1 < len(events) < len(_lines(good)) and events[0]["type"] == "header"
