"""The recursive planner: a DAG that grows as decompositions are decided, with caps and cycle checks.

The toy problem (sum a list by splitting it) runs against a scripted model
that answers from the prompt, so each test says exactly which proposal is
decided where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _scripted import ScriptedBackend
from _toy_recursive import scripted, toy_problem

import maker
from maker._recursive import Limits, recursive_plan
from maker.errors import DecompositionError
from maker.traces import read_events, revote
from maker.voting import AheadByK, Voting

VOTING = Voting(rule=AheadByK(2))


def _dag(problems: Any, *, judged: tuple[str, ...] = ("decompose", "compose"), limits: Limits | None = None) -> Any:
    return recursive_plan(toy_problem(judged=judged), problems, limits=limits)


def _run(tmp_path: Path, dag: Any, overrides: dict[str, Any] | None = None, **options: Any) -> Any:
    backend = ScriptedBackend(scripted(overrides or {}))
    return maker.run(dag, backend=backend, voting=VOTING, trace=tmp_path / "t.jsonl", check=False, **options)


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
        ([1, 2, 3, 4, 5], {}, Limits(max_depth=1), r"problem r\.0 \(sum of \[1, 2, 3\]\).*depth cap \(1\)"),
        ([1, 2, 3], {}, Limits(max_depth=0), r"problem r \(sum of \[1, 2, 3\]\).*depth cap \(0\)"),
        (list(range(1, 9)), {}, Limits(max_nodes=8), r"node cap \(8 nodes per problem tree\)"),
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
    tmp_path: Path, numbers: list[int], overrides: dict[str, Any], limits: Limits | None, message: str
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
