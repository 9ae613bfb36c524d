"""The public API's contract with its users: only maker's own errors escape, and errors keep what they carry."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import maker
from maker import errors
from maker.backends import RetryPolicy
from maker.tasks import build_task, task_info, task_names
from maker.traces import load_trace
from maker.voting import AheadByK, Majority, Voting, k_min, p_step, rule_from_dict

ROOT = Path(__file__).resolve().parents[1]


def maker_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "maker", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Voting(max_samples_per_step=0),
        lambda: Voting(max_output_tokens=0),
        lambda: Voting(temperature=3.0),
        lambda: AheadByK(0),
        lambda: Majority(0),
        lambda: rule_from_dict({"rule": "plurality"}),
        lambda: build_task("no-such-task"),
        lambda: build_task("hanoi", pegs=4),
        lambda: build_task("hanoi", disks=0),
        lambda: build_task("hanoi", disks=31),
        lambda: build_task("hanoi", disks="ten"),
        lambda: build_task("sorting", batch=0),
        lambda: build_task("hanoi", batch=2),
        lambda: task_info("no-such-task"),
        lambda: k_min(1.5, 100),
        lambda: p_step(0.0, 3),
        lambda: RetryPolicy(max_attempts=0),
        lambda: maker.RunSettings(concurrency=0),
        lambda: maker.open_backend("sim/gpt-4.1-mini?error_rate=2"),
    ],
)
def test_bad_input_raises_a_config_error_not_a_builtin_one(make: Callable[[], Any]) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        make()
    assert not isinstance(caught.value, ValueError | KeyError | TypeError)
    assert not str(caught.value).startswith(("'", '"'))  # a KeyError's quotes never reach the user


def test_an_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(errors.ConfigError, match=r"unknown task 'nope' \(known: .*hanoi"):
        build_task("nope")


def test_with_message_keeps_the_class_and_every_field() -> None:
    original = errors.VoteUndecided("s7", {"a": 2, "b": 1}, samples=9, flagged=3)
    original.__cause__ = RuntimeError("why")
    copy = original.with_message(f"{original} (trace: t.jsonl)")
    assert type(copy) is errors.VoteUndecided
    assert str(copy).endswith("(trace: t.jsonl)")
    assert (copy.step, copy.attempt, copy.counts, copy.samples, copy.flagged) == ("s7", 9, {"a": 2, "b": 1}, 9, 3)
    assert copy.__cause__ is original.__cause__
    assert str(original).endswith("votes: 2× a, 1× b")  # the original is untouched

    budget = errors.BudgetExceeded("max_cost", "$1 spent", step=4).with_message("stopped")
    assert (type(budget), budget.limit, budget.step, str(budget)) == (errors.BudgetExceeded, "max_cost", 4, "stopped")


def test_run_error_declares_its_result() -> None:
    error = errors.StepFailed("boom", step=1, attempt=0)
    assert error.result is None


def test_maker_error_itself_is_never_raised() -> None:
    raised = []
    for path in [*ROOT.glob("maker/**/*.py"), *ROOT.glob("tasks/*.py"), *ROOT.glob("voting/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                if isinstance(func, ast.Name) and func.id == "MakerError":
                    raised.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert raised == []


def test_the_cli_prints_a_task_the_library_refuses_as_one_line(tmp_path: Path) -> None:
    for command in ("run", "calibrate"):
        done = maker_cli(command, "sorting", "--length", "5000", "--no-trace", "--quiet", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == "maker: error: length must be between 2 and 2,048, got 5000\n"


# --- limits named by their scope ---------------------------------------------------------------------------------


def test_the_per_step_cap_and_the_steps_at_once_are_named_by_scope(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    result = maker.run(
        build_task("hanoi", disks=3),
        voting=Voting(max_samples_per_step=9),
        settings=maker.RunSettings(concurrency=4, max_parallel_steps=2),
        budget=maker.Budget(max_samples=10_000),  # the whole run's cap
        trace=trace,
    )
    assert result.solved
    header = load_trace(trace).header
    # The trace keeps its field names (schema 1): voting.max_samples is the per-step cap.
    assert header["voting"]["max_samples"] == 9
    assert header["settings"]["max_steps"] == 2
    assert maker.RunSettings(concurrency=5).step_limit == 5  # steps at once follow concurrency by default
    with pytest.raises(errors.ConfigError, match="max_parallel_steps must be >= 1"):
        maker.RunSettings(max_parallel_steps=0)
    with pytest.raises(errors.ConfigError, match="max_samples_per_step must be >= 1"):
        Voting(max_samples_per_step=0)


def test_the_cli_flags_set_the_scoped_limits(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    done = maker_cli(
        "hanoi", "--disks", "3", "--max-samples-per-step", "7", "--max-parallel-steps", "1",
        "--max-samples", "5000", "--quiet", "--trace", str(trace), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    header = load_trace(trace).header
    assert header["voting"]["max_samples"] == 7 and header["settings"]["max_steps"] == 1


# --- no hidden side effects --------------------------------------------------------------------------------------


def test_a_library_run_with_defaults_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = maker.run(build_task("hanoi", disks=2))
    assert result.solved and result.trace is None
    assert list(tmp_path.iterdir()) == []  # no ./runs/, no trace


def test_the_cli_still_writes_its_trace_under_runs_by_default(tmp_path: Path) -> None:
    done = maker_cli("run", "hanoi", "--disks", "2", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "runs").glob("hanoi-*.jsonl"))) == 1


def test_the_price_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        maker.PRICES["gpt-4.1-mini"] = maker.Price(0.0, 0.0)  # type: ignore[index]
    own = maker.load_prices()
    own["gpt-4.1-mini"] = maker.Price(0.0, 0.0)  # a copy, the caller's own
    assert maker.price_of("openai/gpt-4.1-mini") == maker.Price(0.40, 1.60, 0.10)
    assert maker.price_of("openai/gpt-4.1-mini", own) == maker.Price(0.0, 0.0)


def test_a_run_error_is_returned_and_raise_for_outcome_raises_it(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    result = maker.run(build_task("hanoi", disks=4), budget=maker.Budget(max_samples=10), trace=trace)
    assert result.outcome == "budget" and isinstance(result.error, errors.BudgetExceeded)
    with pytest.raises(errors.BudgetExceeded) as caught:
        result.raise_for_outcome()
    assert caught.value.result is result
    assert maker.run(build_task("hanoi", disks=2)).raise_for_outcome().solved  # no error: the result itself
    with pytest.raises(TypeError, match="check"):
        maker.run(build_task("hanoi", disks=2), check=False)  # gone: raise_for_outcome() does it
    resumed = maker.resume(trace, budget=maker.Budget(max_samples=5))
    assert resumed.outcome == "budget" and isinstance(resumed.error, errors.BudgetExceeded)


# --- the choice of independent steps -----------------------------------------------------------------------------


def _independent_header(trace: Path) -> dict[str, Any]:
    header = load_trace(trace).header
    assert header["mode"] == "independent"
    return header


def test_the_library_chooses_independent_steps_and_the_trace_records_the_choice(tmp_path: Path) -> None:
    task = build_task("hanoi", disks=8)
    steps = maker.independent_steps(task, 20, seed=3)
    assert len(steps) == 20 and list(steps) == sorted(steps) and set(steps) <= set(range(task.steps))
    assert list(maker.independent_steps(task, 20, seed=3)) == list(steps)  # seeded: the same every time
    assert list(maker.independent_steps(task, "all")) == list(range(task.steps))
    assert list(maker.independent_steps(task, 10_000)) == list(range(task.steps))  # more than there are: all
    for bad in (0, -1, "some", 2.5):
        with pytest.raises(errors.ConfigError):
            maker.independent_steps(task, bad)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="cannot run steps independently"):
        maker.independent_steps(build_task("sorting", length=4), 3)

    trace = tmp_path / "t.jsonl"
    result = maker.run(task, independent=steps, trace=trace)
    assert result.outcome == "measured" and result.total_steps == 20
    assert _independent_header(trace)["independent_steps"] == {"count": 20, "seed": 3}
    report = maker.replay(trace)  # nothing passed: the header says which steps
    assert report.reproduced and report.steps == 20

    listed = tmp_path / "listed.jsonl"
    maker.run(task, independent=[7, 3, 100], trace=listed)
    assert _independent_header(listed)["independent_steps"] == {"steps": [7, 3, 100]}
    assert maker.replay(listed).reproduced


def test_an_interrupted_independent_run_resumes_from_python_without_its_steps(tmp_path: Path) -> None:
    task = build_task("hanoi", disks=8)
    trace = tmp_path / "t.jsonl"
    stopped = maker.run(task, independent=[5, 50, 9, 200, 31], trace=trace, budget=maker.Budget(max_samples=7))
    assert stopped.outcome == "budget"
    resumed = maker.resume(trace)  # before, resume asked for independent=[...] here
    assert resumed.outcome == "measured" and resumed.total_steps == 5 and resumed.totals.steps == 5


def test_the_cli_run_and_resume_and_replay_agree_on_the_steps(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    done = maker_cli(
        "hanoi", "--disks", "8", "--independent", "30", "--seed", "4", "--max-samples", "40",
        "--quiet", "--trace", str(trace), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1 and "budget reached" in done.stderr
    header = _independent_header(trace)
    assert header["independent_steps"] == {"count": 30, "seed": 4}
    decided = {e["step"] for e in load_trace(trace).decisions}
    assert decided <= set(maker.independent_steps(build_task("hanoi", disks=8), 30, seed=4))
    resumed = maker_cli("resume", str(trace), "--json", cwd=tmp_path)
    assert json.loads(resumed.stdout)["outcome"] == "measured", resumed.stderr  # (its exit code is issue 10's too)
    assert {e["step"] for e in load_trace(trace).decisions} == set(
        maker.independent_steps(build_task("hanoi", disks=8), 30, seed=4)
    )
    assert maker_cli("replay", str(trace), "--quiet", cwd=tmp_path).returncode == 0


def test_a_trace_from_before_the_header_field_still_resumes_and_replays(tmp_path: Path) -> None:
    # An older CLI run: the header says how many steps and the seed, not which.
    task = build_task("hanoi", disks=8)
    trace = tmp_path / "t.jsonl"
    maker.run(task, independent=maker.independent_steps(task, 12, seed=2), trace=trace,
              settings=maker.RunSettings(seed=2), budget=maker.Budget(max_samples=20))  # fmt: skip
    lines = trace.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    del header["independent_steps"]
    trace.write_text(json.dumps(header, separators=(",", ":")) + "\n" + "".join(lines[1:]))

    assert maker.replay(trace).outcome == "history ends"
    resumed = maker.resume(trace)
    assert resumed.outcome == "measured" and resumed.totals.steps == 12
    assert maker.replay(trace).reproduced


# --- third-party tasks -------------------------------------------------------------------------------------------

PLUGIN = """
from maker.tasks import Param, TaskInfo
from maker.tasks.hanoi import Hanoi, HanoiOracle


def tiny(disks=2):
    return Hanoi(disks=disks, name="tiny")


TINY = TaskInfo(
    name="tiny",
    summary="a plugin's task: a small Hanoi under another name",
    params=(Param("disks", int, 2, "number of disks", minimum=1, maximum=4),),
    factory=tiny,
    oracle=HanoiOracle(),
)


FAKE_HANOI = TaskInfo(name="hanoi", summary="not the real one", params=(), factory=tiny)


def broken():
    raise RuntimeError("this plugin is broken")
"""


def _install_plugin(site: Path, entry_points: str) -> dict[str, str]:
    """A package as pip installs one: its module and a dist-info with entry points, on PYTHONPATH."""
    site.mkdir()
    (site / "tinyplugin.py").write_text(PLUGIN)
    info = site / "tinyplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return {**os.environ, "PYTHONPATH": str(site)}


def test_an_installed_package_s_tasks_are_listed_run_and_resumed(tmp_path: Path) -> None:
    env = _install_plugin(tmp_path / "site", "[maker.tasks]\ntiny = tinyplugin:TINY\n")
    listing = maker_cli("tasks", "--json", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    tiny = next(t for t in json.loads(listing.stdout)["tasks"] if t["name"] == "tiny")
    assert tiny["options"][0]["flag"] == "--disks" and tiny["options"][0]["maximum"] == 4

    trace = tmp_path / "tiny.jsonl"
    done = maker_cli("run", "tiny", "--disks", "3", "--json", "--trace", str(trace), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["solved"] is True and json.loads(done.stdout)["steps"] == 7
    assert maker_cli("replay", str(trace), "--quiet", cwd=tmp_path, env=env).returncode == 0
    refused = maker_cli("run", "tiny", "--disks", "5", cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "must be <= 4" in refused.stderr

    script = "from maker.tasks import build_task, task_names; print(task_names()); print(build_task('tiny').steps)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.splitlines() == [str(sorted([*task_names(), "tiny"])), "3"], done.stderr


def test_a_broken_plugin_is_skipped_with_a_warning_and_the_rest_still_work(tmp_path: Path) -> None:
    env = _install_plugin(
        tmp_path / "site",
        "[maker.tasks]\nbad = tinyplugin:broken\nmissing = nosuchmodule:X\ntiny = tinyplugin:TINY\n"
        "again = tinyplugin:TINY\nclash = tinyplugin:FAKE_HANOI\n",
    )
    done = maker_cli("tasks", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0
    assert {t["name"] for t in json.loads(done.stdout)["tasks"]} == {*task_names(), "tiny"}
    assert (
        "task plugin 'bad' (tinyplugin:broken) could not be loaded: RuntimeError: this plugin is broken" in done.stderr
    )
    assert "task plugin 'missing'" in done.stderr and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith("maker: warning: task plugin ") for line in lines)
    assert "task plugin 'clash' (tinyplugin:FAKE_HANOI): the task name 'hanoi' is taken; skipped" in done.stderr
    solved = maker_cli("hanoi", "--disks", "2", "--json", "--no-trace", cwd=tmp_path, env=env)
    assert json.loads(solved.stdout)["task"] == "hanoi" and json.loads(solved.stdout)["steps"] == 3  # the real one


def test_tasks_registered_in_python_are_seen_by_the_cli_in_that_process(tmp_path: Path) -> None:
    script = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from maker.tasks import register
import tinyplugin
register(tinyplugin.TINY)
from maker.cli._app import main
sys.exit(main(sys.argv[1:]))
"""
    (tmp_path / "tinyplugin.py").write_text(PLUGIN)
    for args in (["tasks"], ["run", "tiny", "--no-trace", "--quiet"]):
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert "tiny" in subprocess.run([sys.executable, "-c", script, "tasks"], capture_output=True, text=True).stdout


# --- one hanoi command -------------------------------------------------------------------------------------------


def _options(help_text: str) -> list[str]:
    return sorted(set(re.findall(r"(--[a-z][a-z-]+)", help_text)))


def test_maker_hanoi_is_maker_run_hanoi(tmp_path: Path) -> None:
    short = maker_cli("hanoi", "--help", cwd=tmp_path)
    long = maker_cli("run", "hanoi", "--help", cwd=tmp_path)
    assert short.returncode == long.returncode == 0
    assert _options(short.stdout) == _options(long.stdout)
    assert "--independent" in _options(long.stdout) and "--disks" in _options(long.stdout)
    summaries = []
    for command in (["hanoi"], ["run", "hanoi"]):
        done = maker_cli(*command, "--disks", "6", "--independent", "9", "--seed", "2", "--json", "--no-trace",
                         cwd=tmp_path)  # fmt: skip
        summary = json.loads(done.stdout)
        summaries.append({k: v for k, v in summary.items() if k not in ("wall_s", "run_id")})
    assert summaries[0] == summaries[1] and summaries[0]["outcome"] == "measured"
