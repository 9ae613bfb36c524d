"""`maker hanoi` as a user runs it: a real subprocess, its stdout, stderr and exit status."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from _cli import run_json as cli_json
from _cli import run_maker

from maker.traces import load_trace


def maker_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_maker(*args, cwd=cwd)


def run_json(*args: str, cwd: Path) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    return cli_json("hanoi", *args, cwd=cwd)


def test_json_prints_one_object_with_the_run_summary(tmp_path: Path) -> None:
    trace = tmp_path / "hanoi4.jsonl"
    summary, done = run_json("--disks", "4", "--trace", str(trace), cwd=tmp_path)

    assert done.returncode == 0
    assert {"solved", "steps", "errors", "samples", "red_flags", "max_rounds", "trace"} <= set(summary)
    assert summary["solved"] is True and summary["steps"] == 15 and summary["errors"] == 0
    assert summary["samples"] >= 3 * 15  # k = 3 votes at least, per step
    assert summary["trace"] == str(trace)
    assert load_trace(trace).end["outcome"] == "solved"  # type: ignore[index]


def test_the_trace_goes_under_runs_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    summary, _ = run_json("--disks", "2", cwd=tmp_path)
    written = list((tmp_path / "runs").glob("hanoi-*.jsonl"))
    assert [tmp_path / summary["trace"]] == written

    summary, _ = run_json("--disks", "2", "--no-trace", cwd=tmp_path)
    assert summary["trace"] is None
    assert len(list((tmp_path / "runs").glob("*"))) == 1


def test_without_json_the_table_goes_to_stdout_and_stderr_stays_empty(tmp_path: Path) -> None:
    done = maker_cli("hanoi", "--disks", "3", "--quiet", "--no-trace", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stderr == ""
    assert "solved" in done.stdout and "errors (vs ground truth)" in done.stdout


def test_every_command_prints_its_results_on_stdout_and_nothing_else_on_stderr(tmp_path: Path) -> None:
    """One rule: results (tables, JSON) on stdout, so `maker trace show T | less` works; the rest on stderr."""
    trace = str(tmp_path / "t.jsonl")
    cut = tmp_path / "cut.jsonl"
    commands = [
        ["hanoi", "--disks", "4", "--quiet", "--trace", trace],
        ["run", "arithmetic", "--digits", "4", "--quiet", "--no-trace"],
        ["replay", trace, "--quiet"],
        ["replay", trace, "--k", "1,2", "--quiet"],
        ["trace", "show", trace, "--step", "3"],
        ["analyze", trace],
        ["estimate", "--error-rate", "0.01", "--steps", "1000"],
        ["calibrate", "hanoi", "--disks", "5", "--samples", "10", "--quiet"],
        ["tasks"],
        ["resume", str(cut), "--quiet"],
    ]
    for args in commands:
        if args[0] == "resume":
            raw = Path(trace).read_bytes()
            cut.write_bytes(raw[: len(raw) // 2])
        done = maker_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip() and done.stderr == "", (args, done.stderr)


@pytest.mark.parametrize("disks", [8, 9, 10])
def test_the_hostile_model_is_solved_with_zero_errors_at_k5(tmp_path: Path, disks: int) -> None:
    summary, done = run_json("--disks", str(disks), "--model", "sim/hostile", "--k", "5", "--no-trace", cwd=tmp_path)
    assert done.returncode == 0
    assert summary["solved"] is True
    assert summary["errors"] == 0 and summary["steps"] == 2**disks - 1
    assert summary["red_flags"] > 0  # the hostile model really misbehaved
    assert summary["max_rounds"] > 2  # and some steps needed extra rounds


@pytest.mark.parametrize("disks", [8, 10])
def test_the_hostile_model_makes_errors_without_voting(tmp_path: Path, disks: int) -> None:
    summary, done = run_json("--disks", str(disks), "--model", "sim/hostile", "--k", "1", "--no-trace", cwd=tmp_path)
    assert done.returncode == 1
    assert summary["solved"] is False and summary["errors"] > 0


def test_a_run_that_stops_early_still_prints_json_and_keeps_its_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    summary, done = run_json(
        "--disks",
        "5",
        "--model",
        "sim/gpt-4.1-mini?error_rate=0.45&correlated=1",
        "--max-samples-per-step",
        "6",
        "--trace",
        str(trace),
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert summary["solved"] is False and summary["outcome"] == "undecided"
    assert "undecided after 6 samples" in summary["error"]
    loaded = load_trace(trace)
    assert loaded.end is not None and loaded.end["outcome"] == "undecided"
    assert len(loaded.decisions) == summary["steps"] and len(loaded.errors) == 1


BAD = [
    # arguments,                                                       in the message
    (["hanoi", "--disks", "0"], "--disks"),
    (["hanoi", "--disks", "31"], "--disks"),
    (["hanoi", "--disks", "many"], "--disks"),
    (["hanoi", "--k", "0"], "--k"),
    (["hanoi", "--max-samples-per-step", "0"], "--max-samples-per-step"),
    (["hanoi", "--concurrency", "-2"], "--concurrency"),
    (["hanoi", "--temperature", "3"], "temperature"),
    (["hanoi", "--model", "gpt-4.1-mini"], "provider/model"),
    (["hanoi", "--model", "nosuchprovider/x"], "unknown model provider"),
    (["hanoi", "--model", "sim/gpt-5-ultra"], "unknown simulated model"),
    (["hanoi", "--model", "sim/hostile?error_rate=lots"], "error_rate"),
    (["hanoi", "--model", "sim/hostile?warp=9"], "unknown sim option"),
    (["hanoi", "--rule", "plurality"], "--rule"),
    (["hanoi", "--k", "1000"], "ahead-by-1000 needs at least 1,000 samples per step even if every vote agrees"),
    (["hanoi", "--rule", "majority", "--n", "500"], "a majority of 500 needs at least 251 samples per step"),
    (["hanoi", "--k", "5", "--max-samples-per-step", "4"], "over the cap of 4 (--max-samples-per-step)"),
    (["hanoi", "--bogus"], "--bogus"),
    (["frobnicate"], "frobnicate"),
    ([], "COMMAND"),
]


@pytest.mark.parametrize(("args", "mentions"), BAD, ids=[" ".join(a) or "(nothing)" for a, _ in BAD])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, args: list[str], mentions: str) -> None:
    done = maker_cli(*args, "--json", cwd=tmp_path) if args else maker_cli(cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("maker")
    assert mentions in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_an_existing_trace_is_never_overwritten(tmp_path: Path) -> None:
    trace = tmp_path / "keep.jsonl"
    trace.write_text("precious\n")
    done = maker_cli("hanoi", "--disks", "2", "--trace", str(trace), "--json", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "already exists" in done.stderr
    assert trace.read_text() == "precious\n"


def test_the_sample_cap_check_refuses_only_what_no_run_could_decide() -> None:
    from maker.voting import AheadByK, Majority, Single
    from maker.voting._reachable import fewest_samples

    assert fewest_samples(AheadByK(100), 100) == 100  # exactly the cap: a unanimous step decides
    assert fewest_samples(AheadByK(101), 100) is None
    assert fewest_samples(Majority(7), 100) == 4  # decided early once the rest cannot change it
    assert fewest_samples(Single(), 1) == 1


def test_a_big_runs_default_trace_is_compressed_and_a_plain_one_is_warned_of(tmp_path: Path) -> None:
    big = ["hanoi", "--disks", "20", "--max-samples", "10"]  # 1,048,575 steps; stopped at once by the budget
    summary, done = run_json(*big[1:], cwd=tmp_path)
    assert summary["trace"].endswith(".jsonl.gz") and "note: a plain trace" not in done.stderr
    summary, done = run_json(*big[1:], "--trace", str(tmp_path / "plain.jsonl"), cwd=tmp_path)
    assert summary["trace"] == str(tmp_path / "plain.jsonl")
    assert "maker: note: a plain trace of 1,048,575 steps is about 1.6 GB; name it plain.jsonl.gz" in done.stderr
    small, done = run_json("--disks", "4", cwd=tmp_path)
    assert small["trace"].endswith(".jsonl") and "note:" not in done.stderr
