"""Every script in examples/ runs, as a user would run it, so the examples cannot rot.

Each runs as a real subprocess in an empty directory. The OpenAI-compatible
example talks over real HTTP, through the openai client, to the project's
simulated model server started here on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from maker.backends import SimServerConfig, serve_sim
from maker.traces import load_trace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_every_example_is_tested():
    tested = {"custom_step.py", "dag.py", "openai_server.py", "recursive_sum.py", "replay_analyse.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_recursive_sum_decomposes_solves_composes_and_replays(tmp_path):
    result = example("recursive_sum.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "5/5 right" in lines[5] and "list0 was split into 2 parts at the top" in lines
    assert lines[-1] == "replay from the trace alone: every decision reproduced"
    assert (tmp_path / "recursive_sum.jsonl").exists()


def test_custom_step_counts_letters_right_under_voting(tmp_path):
    result = example("custom_step.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "strawberry   'r' × 3" in lines and "mississippi  'i' × 4" in lines and "bookkeeper   'r' × 1" in lines
    assert lines[-1].startswith("0 wrong of 8 scored") and lines[-1].endswith("outcome: solved")
    assert list(tmp_path.iterdir()) == []  # it asked for no trace, and wrote none


def test_custom_step_without_voting_still_runs(tmp_path):
    result = example("custom_step.py", "--k", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert " wrong of 8 scored, 8 samples" in result.stdout  # k = 1: one valid sample per word


def test_dag_example_splits_the_bill_and_writes_a_trace(tmp_path):
    trace = tmp_path / "bill.jsonl"
    result = example("dag.py", "--trace", str(trace), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:4] == ["ana: 49", "ben: 63", "cy: 67", "3 guests, total 179"]
    assert "solved: 10 steps (4 voted)" in result.stdout
    decisions = {d["step"]: d for d in load_trace(trace).decisions}
    assert decisions["grand"]["answer"] == 179
    assert decisions["grand"]["votes"][decisions["grand"]["winner"]] >= 5  # its own, larger k


@pytest.mark.anyio
async def test_openai_server_example_solves_a_task_over_http(tmp_path):
    config = SimServerConfig(profile="gpt-4.1-mini?error_rate=0.05", models=("gpt-4.1-mini",))
    async with serve_sim(config) as server:
        done = await anyio.run_process(
            [
                sys.executable,
                str(EXAMPLES / "openai_server.py"),
                "sorting",
                "length=24",
                "instance=3",
                "--base-url",
                server.base_url,
                "--trace",
                str(tmp_path / "http.jsonl"),
            ],
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary["solved"] and summary["errors"] == 0 and summary["model"] == "openai/gpt-4.1-mini"
    assert summary["samples"] >= 3 * summary["scored_steps"]
    assert load_trace(tmp_path / "http.jsonl").end["outcome"] == "solved"


def test_replay_and_analyse_example_reproduces_revotes_and_analyses(tmp_path):
    result = example("replay_analyse.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (tmp_path / "runs" / "sorting-example.jsonl").exists()
    assert "replay: 544 decisions reproduced" in out  # 543 comparators and the python step
    assert "re-vote ahead-by-3: 543 same, 0 different, 0 would need more samples" in out
    fewer = re.search(r"re-vote ahead-by-1: \d+ same, (\d+) different, 0 would need more samples; (\d+) wrong", out)
    assert fewer and int(fewer[1]) > 0 and int(fewer[2]) > 0  # k = 1 would have decided some steps wrongly
    assert "analysis: per-vote error rate" in out


def test_replay_and_analyse_example_reads_a_given_trace(tmp_path):
    trace = tmp_path / "sum.jsonl"
    recorded = subprocess.run(
        [
            sys.executable,
            "-m",
            "maker.cli",
            "run",
            "arithmetic",
            "--digits",
            "20",
            "--model",
            "sim/gpt-4.1-mini?error_rate=0.1",
            "--trace",
            str(trace),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert recorded.returncode == 0, recorded.stderr
    result = example("replay_analyse.py", "--trace", str(trace), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "replay: 41 decisions reproduced" in result.stdout


def test_replay_and_analyse_example_refuses_a_custom_dag_trace_in_one_line(tmp_path):
    trace = tmp_path / "bill.jsonl"
    assert example("dag.py", "--trace", str(trace), cwd=tmp_path).returncode == 0
    result = example("replay_analyse.py", "--trace", str(trace), cwd=tmp_path)
    # A custom DAG cannot be rebuilt from its trace (replay it from Python with task=dag).
    assert result.returncode == 1 and "custom DAG" in result.stderr and result.stderr.count("\n") == 1
