"""The recursive planner: a DAG that grows as decompositions are decided, with caps and cycle checks.

The toy problem (sum a list by splitting it) runs against a scripted model
that answers from the prompt, so each test says exactly which proposal is
decided where.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _http import FAST_RETRIES, clean_env, maker_command, run_maker, server_stats, sim_server_process
from _scripted import ScriptedBackend
from _toy_recursive import scripted, toy_problem
from test_resume import Kill, kill_all

import maker
from maker._recursive import RecursiveLimits, recursive_plan
from maker.errors import DecompositionError
from maker.tasks import build_task
from maker.traces import read_events, revote
from maker.voting import AheadByK, Voting

VOTING = Voting(rule=AheadByK(2))


def _dag(
    problems: Any, *, judged: tuple[str, ...] = ("decompose", "compose"), limits: RecursiveLimits | None = None
) -> Any:
    return recursive_plan(toy_problem(judged=judged), problems, limits=limits)


def _run(tmp_path: Path, dag: Any, overrides: dict[str, Any] | None = None, **options: Any) -> Any:
    backend = ScriptedBackend(scripted(overrides or {}))
    return maker.run(dag, backend=backend, voting=VOTING, trace=tmp_path / "t.jsonl", **options)


@pytest.mark.parametrize(
    ("numbers", "problems", "depth"),
    [
        ([3], 1, 0),  # atomic at once: decompose, solve
        ([1, 2, 3], 3, 1),  # [1,2] [3]
        ([1, 2, 3, 4, 5, 6, 7], 7, 2),
        (list(range(1, 17)), 15, 3),
    ],
)
def test_the_dag_grows_as_decompositions_are_decided(
    tmp_path: Path, numbers: list[int], problems: int, depth: int
) -> None:
    dag = _dag({"r": numbers})
    assert dag.number_of_nodes() == 1  # only the root's decomposer before the run
    result = _run(tmp_path, dag)
    assert result.outcome == "solved"
    assert list(result.outputs.values()) == [sum(numbers)]
    graph = dag.plan.graph
    assert graph.number_of_nodes() == 2 * problems  # each problem: decompose, then solve or compose
    assert max(d["depth"] for _, d in graph.nodes(data=True)) == depth
    assert all(graph.in_degree(n) > 0 for n in graph if n != "r:decompose")
    assert result.total_steps == result.totals.steps  # every decision counted, candidates included
    # Every composition reads exactly its parts' answers.
    for node in graph:
        if node.endswith(":compose"):
            assert graph.in_degree(node) == len(dag.plan.problems[graph.nodes[node]["path"]].parts)


def test_a_copied_dag_is_a_recursive_dag_that_runs_alike(tmp_path: Path) -> None:
    dag = _dag({"r": [1, 2, 3, 4]})
    copy = dag.copy()
    assert type(copy) is type(dag)
    assert (copy.problem, copy.roots, copy.limits) == (dag.problem, dag.roots, dag.limits)
    assert list(dag.subgraph(["r:decompose"]).roots) == ["r"]
    first = _run(tmp_path / "a", dag)
    second = _run(tmp_path / "b", copy)
    assert first.outputs == second.outputs == {"r:compose": 10}


def test_problems_run_in_parallel_in_one_dag(tmp_path: Path) -> None:
    dag = _dag({"a": [1, 2, 3, 4], "b": [5, 6], "c": [7, 8, 9]})
    result = _run(tmp_path, dag)
    assert result.outputs == {"a:compose": 10, "b:solve": 11, "c:compose": 24}
    assert {r: dag.plan.sizes[r] for r in "abc"} == {"a": 6, "b": 2, "c": 6}
    assert dag.plan.answer("c") == 24
    assert set(dag.plan.tree("a")) == {n for n in dag.plan.graph if n.startswith("a")}


def _always_split(request: Any) -> str:
    return "split = 1 | 2"


@pytest.mark.parametrize(
    ("numbers", "overrides", "limits", "message"),
    [
        ([1, 2, 3, 4, 5], {}, RecursiveLimits(max_depth=1), r"problem r\.0 \(sum of \[1, 2, 3\]\).*depth cap \(1\)"),
        ([1, 2, 3], {}, RecursiveLimits(max_depth=0), r"problem r \(sum of \[1, 2, 3\]\).*depth cap \(0\)"),
        (list(range(1, 9)), {}, RecursiveLimits(max_nodes=8), r"node cap \(8 nodes per problem tree\)"),
        ([1, 2, 3], {"r:decompose:candidates": lambda r: "split = 1,2,3"}, None, "self-reference"),
        (
            [1, 2, 3],
            {"r.0:decompose:candidates": lambda r: "split = 1,2,3 | 4"},
            None,
            r"problem r\.0 .*part 0 is the problem at r again \(a cycle: r → … → r\.0\)",
        ),
    ],
)
def test_runaway_or_cyclic_decomposition_is_a_clear_error(
    tmp_path: Path, numbers: list[int], overrides: dict[str, Any], limits: RecursiveLimits | None, message: str
) -> None:
    dag = _dag({"r": numbers}, limits=limits)
    result = _run(tmp_path, dag, overrides)
    assert result.outcome == "error"
    assert isinstance(result.error, DecompositionError)
    assert result.error.path in str(result.error)
    with pytest.raises(DecompositionError, match=message):
        result.raise_for_outcome()
    # The trace says so at the offending step, and replay stops there with the same error
    # (its totals may differ: siblings' requests in flight when the run stopped are scheduling).
    errors = [e for e in read_events(tmp_path / "t.jsonl") if e["type"] == "step_error"]
    assert [e["error"] for e in errors] == ["DecompositionError"]
    report = maker.replay(tmp_path / "t.jsonl", task=_dag({"r": numbers}, limits=limits), voting=VOTING)
    assert report.outcome == "error" and report.stopped_at == errors[0]["step"]


def test_a_bug_in_a_users_role_is_a_step_failure(tmp_path: Path) -> None:
    problem = toy_problem()
    broken = replace(problem, solve=replace(problem.solve, prompt=lambda problem: 1 / 0))
    result = _run(tmp_path, recursive_plan(broken, {"r": [1]}))
    assert result.outcome == "error" and isinstance(result.error, maker.errors.StepFailed)
    assert "r:solve" in str(result.error) and "ZeroDivisionError" in str(result.error)


def test_keyed_roles_need_no_judges(tmp_path: Path) -> None:
    dag = _dag({"r": [1, 2, 3, 4, 5]}, judged=())
    result = _run(tmp_path, dag)
    assert result.outcome == "solved" and result.outputs == {"r:compose": 15}
    steps = {e["step"] for e in read_events(tmp_path / "t.jsonl") if e["type"] == "decision"}
    assert not any(str(s).endswith(":candidates") for s in steps)


def test_a_wrong_split_is_outvoted_by_judges(tmp_path: Path) -> None:
    # One candidate loses a number; the judges pick a right one, and the answer is right.
    wrong = {"r:decompose:candidates": ["split = 1,2 | 4", "split = 1,2 | 3", "split = 1,2 | 3"]}
    result = _run(tmp_path, _dag({"r": [1, 2, 3]}), wrong)
    assert result.outcome == "solved" and result.outputs == {"r:compose": 6}
    decision = next(
        e for e in read_events(tmp_path / "t.jsonl") if e["type"] == "decision" and e["step"] == "r:decompose"
    )
    assert decision["winner"] == "2" and decision["correct"] is True


def test_replay_and_revote_of_a_recursive_trace(tmp_path: Path) -> None:
    wrong = {"r.0:compose:candidates": ["total = 9", "total = 10", "total = 10"]}
    _run(tmp_path, _dag({"r": list(range(1, 9))}), wrong)
    report = maker.replay(tmp_path / "t.jsonl", task=_dag({"r": list(range(1, 9))}), voting=VOTING)
    assert report.reproduced and report.outcome == "solved" and report.totals_match
    (k1,) = revote(tmp_path / "t.jsonl", [AheadByK(1)])
    assert k1.needs_more == 0  # every re-voted step (keyed solves, judges) has its samples
    # A different tree (another problem) does not replay against this trace.
    with pytest.raises(maker.errors.MakerError):
        maker.replay(tmp_path / "t.jsonl", task=_dag({"r": list(range(1, 10))}), voting=VOTING)


def test_resume_walks_the_committed_tree_again_without_sampling(tmp_path: Path) -> None:
    # A budget stops the run part-way; resume finishes it, paying only for what was missing.
    numbers = list(range(1, 9))
    first = _run(tmp_path, _dag({"r": numbers}), budget=maker.Budget(max_samples=30))
    assert first.outcome == "budget"
    backend = ScriptedBackend(scripted({}))
    done = maker.resume(tmp_path / "t.jsonl", task=_dag({"r": numbers}), voting=VOTING, backend=backend)
    assert done.outcome == "solved" and done.outputs["r:compose"] == sum(numbers)
    (tmp_path / "fresh").mkdir()
    fresh = _run(tmp_path / "fresh", _dag({"r": numbers}))
    assert done.totals.samples == fresh.totals.samples  # nothing sampled twice
    assert maker.replay(tmp_path / "t.jsonl", task=_dag({"r": numbers}), voting=VOTING).reproduced


# -- the multiplication task: over HTTP, killed and resumed, replayed ---------------------------


def _cli_json(done: Any) -> dict[str, Any]:
    assert done.stdout.strip(), done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_a_6x6_batch_over_http_with_faults_has_zero_errors(tmp_path: Path) -> None:
    faults = ("--faults", "0.2", "--retry-after", "0.01", "--slow-seconds", "2")
    with sim_server_process(*faults) as url:
        done = run_maker(
            *("run", "multiplication", "--digits", "6", "--problems", "3"),
            *("--model", f"openai/gpt-4.1-mini?{FAST_RETRIES}", "--base-url", url, "--request-timeout", "0.5"),
            *("--trace", str(tmp_path / "t.jsonl"), "--json"),
            cwd=tmp_path,
            timeout=300,
        )
        stats = server_stats(url)
    result = _cli_json(done)
    assert done.returncode == 0, done.stderr
    assert result["solved"] and result["errors"] == 0
    assert result["figures"]["solve_rate"] == 1.0 and result["figures"]["problems"] == 3
    assert sum(stats["faults"].values()) > 0  # the faults happened, and were absorbed
    roles = {str(e["step"]).split(":")[1] for e in read_events(tmp_path / "t.jsonl") if e["type"] == "sample"}
    assert roles == {"decompose", "solve", "compose"}


def test_resume_after_sigkill_and_exact_replay_of_a_growing_dag(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    args = ("run", "multiplication", "--digits", "5", "--problems", "6", "--model", "sim/gpt-4.1-mini?latency=0.002")
    proc = subprocess.Popen(
        [*maker_command(), *args, "--trace", str(trace), "--quiet", "--json"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    kill_all([Kill(trace, proc, decisions=60)])
    events = list(read_events(trace))
    assert not any(e["type"] == "end" for e in events), "the run finished before it was killed"
    committed = {e["step"] for e in events if e["type"] == "decision"}
    done = run_maker("resume", str(trace), "--json", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _cli_json(done)["solved"]
    after = list(read_events(trace))
    decided = [e["step"] for e in after if e["type"] == "decision"]
    assert len(decided) == len(set(decided)), "a step was decided twice"
    # Committed steps were not sampled again by the resumed session.
    resumed_at = next(i for i, e in enumerate(after) if e["type"] == "resume")
    again = {e["step"] for e in after[resumed_at:] if e["type"] == "sample" and not e["late"]}
    assert not again & committed
    report = maker.replay(trace)
    assert report.reproduced and report.outcome == "solved" and report.totals_match
    task = build_task("multiplication", digits=5, problems=6)
    assert task.solve_rate({e["step"]: e["answer"] for e in after if e["type"] == "decision"}) == (6, 6)


def test_trace_show_prints_a_problems_tree(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    maker.run(build_task("multiplication", digits=5, problems=2), trace=trace)
    shown = run_maker("trace", "show", str(trace), "--tree", "p1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("p1  ") and "[split into 4]" in lines[0]
    assert sum("[atomic]" in line for line in lines) >= 4
    assert any(line.startswith("├── p1.0  ") for line in lines)
    missing = run_maker("trace", "show", str(trace), "--tree", "p9", cwd=tmp_path)
    assert missing.returncode == 2 and "no decisions of problem 'p9'" in missing.stderr


def test_what_a_growing_dag_cannot_do_is_refused_clearly(tmp_path: Path) -> None:
    from maker._shards import Shard, shard_graph

    with pytest.raises(maker.errors.ConfigError, match="a recursive plan cannot speculate"):
        _run(tmp_path, _dag({"r": [1, 2, 3]}), settings=maker.RunSettings(speculate=2))
    with pytest.raises(maker.errors.PlanError, match="cannot be split into shards"):
        shard_graph(_dag({"a": [1], "b": [2]}), Shard(0, 2, "run"))
