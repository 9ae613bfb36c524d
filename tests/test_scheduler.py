"""The scheduler on DAGs: ready steps run together, under the limits, outputs flow
along named edges, and the first unrecoverable error stops the run cleanly.

Overlap is measured from the order in which steps start and end (a log of
events), never from durations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import networkx as nx
import pytest
from _scripted import Meeting, ScriptedBackend, WordStep, vote

import maker
from maker.errors import StepFailed, VoteUndecided
from maker.tasks import build_task
from maker.traces import load_trace
from maker.voting import AheadByK, Voting


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Scripted, in-process tests: cheap enough to run on both of anyio's backends."""
    return str(request.param)


class Logged:
    """A plain Python step that logs when it starts and ends.

    In between it waits at `meeting` (if any) until enough steps are running at
    once, so a claim about overlap rests on a condition, not on a sleep being long
    enough under load; otherwise it yields a little.
    """

    def __init__(
        self, log: list[tuple[str, Any]], name: Any, fail: bool = False, meeting: Meeting | None = None
    ) -> None:
        self.log, self.name, self.fail, self.meeting = log, name, fail, meeting

    async def run(self, inputs: dict[str, Any]) -> Any:
        self.log.append(("start", self.name))
        if self.meeting is not None:
            await self.meeting.arrive()
        await anyio.sleep(0.01)
        if self.fail:
            raise RuntimeError("disk full")
        self.log.append(("end", self.name))
        return self.name


def most_at_once(log: list[tuple[str, Any]]) -> int:
    running = peak = 0
    for what, _ in log:
        running += 1 if what == "start" else -1
        peak = max(peak, running)
    return peak


def wide(log: list[tuple[str, Any]], width: int, meeting: Meeting | None = None) -> nx.DiGraph:
    graph = nx.DiGraph()
    for i in range(width):
        graph.add_node(f"w{i}", step=Logged(log, f"w{i}", meeting=meeting))
    return graph


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [1, 3, 8])
async def test_independent_steps_overlap_up_to_the_limit(tmp_path: Path, limit: int) -> None:
    log: list[tuple[str, Any]] = []
    result = await maker.arun(
        wide(log, 24, Meeting(limit)),
        settings=maker.RunSettings(concurrency=limit),
        trace=tmp_path / "t.jsonl",
        backend=ScriptedBackend([]),
    )

    assert result.solved and result.totals.steps == 24
    assert most_at_once(log) == limit  # they overlap, and never beyond the limit
    assert {name for what, name in log if what == "end"} == {f"w{i}" for i in range(24)}


@pytest.mark.anyio
async def test_llm_steps_overlap_and_requests_stay_under_the_concurrency_limit(tmp_path: Path) -> None:
    graph = nx.DiGraph()
    for i in range(12):
        graph.add_node(f"q{i}", step=WordStep(truth="A"))
    backend = ScriptedBackend([vote("A")] * 3, meet=5)
    settings = maker.RunSettings(concurrency=5, max_parallel_steps=12)
    result = await maker.arun(
        graph, backend=backend, settings=settings, voting=Voting(rule=AheadByK(3)), trace=tmp_path / "t.jsonl"
    )

    assert result.solved and result.totals.errors == 0 and result.totals.scored == 12
    assert len(backend.requests) == 36
    # One step never has more than k = 3 requests out, so 5 at once means several steps
    # were being voted together; and never more than the limit.
    assert backend.max_in_flight == 5


@pytest.mark.anyio
async def test_outputs_flow_along_named_edges(tmp_path: Path) -> None:
    class Product:
        def run(self, inputs: dict[str, Any]) -> Any:
            return {"seen": dict(inputs), "value": inputs["x"] * inputs["y"] * inputs["scale"]}

    class Describe:
        async def run(self, inputs: dict[str, Any]) -> str:
            return f"{inputs['product']['value']} {inputs['word'].lower()}s"

    graph = nx.DiGraph()
    graph.add_node("two", step=Constant(2))
    graph.add_node("three", step=Constant(3))
    graph.add_node("product", step=Product(), args={"scale": 10})
    graph.add_node("word", step=WordStep(name="pick a word"))
    graph.add_node("describe", step=Describe())
    graph.add_edge("two", "product", name="x")
    graph.add_edge("three", "product", name="y")
    graph.add_edge("product", "describe")  # no name: the input is called after the source node
    graph.add_edge("word", "describe")
    result = await maker.arun(graph, backend=ScriptedBackend([vote("Apple")] * 3), trace=tmp_path / "t.jsonl")

    assert result.outputs["product"]["seen"] == {"x": 2, "y": 3, "scale": 10}
    assert result.outputs["describe"] == "60 apples"
    kinds = {d["step"]: d["kind"] for d in load_trace(result.trace).decisions}
    assert kinds == {"two": "python", "three": "python", "product": "python", "word": "llm", "describe": "python"}


class Constant:
    def __init__(self, value: Any) -> None:
        self.value = value

    def run(self, inputs: dict[str, Any]) -> Any:
        return self.value


@pytest.mark.anyio
async def test_a_step_runs_only_after_all_its_inputs(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    graph = nx.DiGraph()
    both = Meeting(2)
    for name in ("a", "b", "c", "d"):
        graph.add_node(name, step=Logged(log, name, meeting=both if name in "ab" else None))
    graph.add_edges_from([("a", "c"), ("b", "c"), ("c", "d")])
    await maker.arun(graph, trace=False, backend=ScriptedBackend([]))

    position = {event: i for i, event in enumerate(log)}
    assert position[("start", "c")] > max(position[("end", "a")], position[("end", "b")])
    assert position[("start", "d")] > position[("end", "c")]
    assert most_at_once(log[: position[("start", "c")]]) == 2  # a and b ran together


@pytest.mark.anyio
async def test_the_first_error_stops_the_run_with_everything_decided_so_far_in_the_trace(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    graph = nx.DiGraph()
    graph.add_node("boom", step=Logged(log, "boom", fail=True))  # among the first to start
    graph.update(wide(log, 30))
    graph.add_node("after_boom", step=Logged(log, "after_boom"))
    graph.add_edge("boom", "after_boom")
    path = tmp_path / "t.jsonl"
    with pytest.raises(StepFailed, match="step 'boom' raised RuntimeError: disk full") as caught:
        (
            await maker.arun(graph, settings=maker.RunSettings(concurrency=4), trace=path, backend=ScriptedBackend([]))
        ).raise_for_outcome()

    result = caught.value.result
    assert result.outcome == "error" and not result.solved
    finished = {name for what, name in log if what == "end"}
    assert "after_boom" not in {name for _, name in log}  # nothing downstream of the failure ran
    assert len(finished) < 30  # the rest of the wide DAG was cancelled, not run to the end

    trace = load_trace(path)
    assert {d["step"] for d in trace.decisions} == finished  # every finished step is committed, nothing else
    (error,) = trace.errors
    assert (error["step"], error["error"]) == ("boom", "StepFailed")
    assert trace.end is not None and trace.end["outcome"] == "error"
    assert trace.end["totals"]["steps"] == len(finished)


@pytest.mark.anyio
async def test_an_undecided_step_stops_a_chain_after_the_steps_before_it(tmp_path: Path) -> None:
    # A model that is wrong 45% of the time with a small cap: some step runs out of samples.
    path = tmp_path / "t.jsonl"
    with pytest.raises(VoteUndecided) as caught:
        (
            await maker.arun(
                build_task("hanoi", disks=6),
                model="sim/gpt-4.1-mini?error_rate=0.45&correlated=1",
                voting=Voting(rule=AheadByK(3), max_samples_per_step=6),
                trace=path,
            )
        ).raise_for_outcome()

    stuck = caught.value.step
    trace = load_trace(path)
    assert [d["step"] for d in trace.decisions] == list(range(stuck))
    assert [e["step"] for e in trace.errors] == [stuck]
    assert trace.end is not None and trace.end["outcome"] == "undecided"
    assert trace.end["totals"]["steps"] == stuck
