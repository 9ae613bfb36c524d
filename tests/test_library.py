"""The library API: wrap your own functions as microsteps, build a DAG, run it.

The model is the simulator taught the test's own steps through an oracle (it
reads each prompt like a model would), so voting, red flags and the trace run
for real; only the knowledge of the answer is the test's.
"""

from __future__ import annotations

import re
import time
from typing import Any

import networkx as nx
import pytest
from _scripted import Meeting

import maker
from maker.backends import Backend, Completion, Request, open_backend
from maker.errors import ConfigError, PlanError, StepFailed
from maker.traces import load_trace
from maker.voting import AheadByK, ParseError, Reply, Voting

# -- the steps these tests wrap --------------------------------------------------------------

_ADD = re.compile(r"^Add (-?[0-9]+) and (-?[0-9]+)\.", re.M)


def _no_negative(reply: Reply, answer: Any) -> str | None:
    return "a sum of naturals cannot be negative" if answer < 0 else None


def add_prompt(a: int, b: int) -> str:
    return f"Add {a} and {b}.\nAnswer with one line: sum = <number>"


parse_sum = maker.parse_last(r"sum = (-?[0-9]+)", int, what="'sum = N'")
add = maker.llm_step(add_prompt, parse=parse_sum, expected=lambda a, b: a + b, red_flags=[_no_negative])


@maker.llm_step(parse=maker.parse_last(r"sum = (-?[0-9]+)", int), expected=lambda xs, i: xs[2 * i] + xs[2 * i + 1])
def add_pair(xs: list[int], i: int) -> str:
    return f"Add {xs[2 * i]} and {xs[2 * i + 1]}.\nAnswer with one line: sum = <number>"


def _solve(text: str) -> int | None:
    m = _ADD.search(text)
    return int(m[1]) + int(m[2]) if m else None


# Wrong answers are either off by one (a vote for a wrong candidate) or negative
# (caught by the step's own red flag).
ORACLE = maker.sim_oracle(
    solve=_solve,
    render=lambda n: f"Adding.\nsum = {n}",
    wrong=lambda n, rng: -n - 1 if rng.random() < 0.5 else n + rng.choice([-1, 1]),
)


def sim(profile: str = "gpt-4.1-mini?error_rate=0.2", seed: int = 0) -> Backend:
    return maker.sim_backend(f"sim/{profile}", oracles=[ORACLE], seed=seed)


class Timed:
    """A backend that notes when each request starts and ends around the real one.

    The first samples of the steps in `meet` wait for each other (see `Meeting`) before
    answering, so "they overlapped" follows from the order of events under any load.
    """

    def __init__(self, inner: Backend, meet: tuple[str, ...] = ()) -> None:
        self.inner = inner
        self.model = inner.model
        self.spans: list[tuple[Any, int, float, float]] = []
        self.meet, self.meeting = meet, Meeting(len(meet))

    async def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        if request.step in self.meet and request.sample == 0:
            await self.meeting.arrive()
        completion = await self.inner.complete(request)
        self.spans.append((request.step, request.sample, start, time.perf_counter()))
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()


def overlap(spans: list[tuple[float, float]]) -> bool:
    """Were all of these in progress at one moment? (Ordering only, no durations.)"""
    return max(start for start, _ in spans) < min(end for _, end in spans)


# -- a mixed DAG: python and voted LLM steps, fan-out and fan-in, five layers -----------------

SPANS: dict[str, tuple[float, float]] = {}
SLOW_LENS = Meeting(2)


@maker.python_step
async def source(size: int) -> list[int]:
    import anyio

    await anyio.lowlevel.checkpoint()
    return [3, 4, 10, 20, 7, 8][:size]


@maker.python_step
async def slow_len(xs: list[int], tag: str) -> int:
    import anyio

    start = time.perf_counter()
    await SLOW_LENS.arrive()
    await anyio.sleep(0.05)
    SPANS[tag] = (start, time.perf_counter())
    return len(xs)


@maker.python_step
def report(total: int, left: int, **counts: int) -> dict[str, Any]:
    return {"total": total, "left": left, "counts": sorted(counts.values())}


def mixed_dag() -> maker.DAG:
    dag = maker.DAG()
    dag.add_step("source", source, args={"size": 6})  # layer 0
    for i in range(3):  # layer 1: fan-out
        dag.add_step(f"pair{i}", add_pair, inputs={"xs": "source"}, args={"i": i})
    for tag in ("s0", "s1"):
        dag.add_step(tag, slow_len, inputs={"xs": "source"}, args={"tag": tag})
    dag.add_step(
        "left",
        add,
        inputs={"a": "pair0", "b": "pair1"},  # layer 2: fan-in
        voting=Voting(rule=AheadByK(5)),
    )
    dag.add_step("total", add, inputs={"a": "left", "b": "pair2"})  # layer 3
    dag.add_step("report", report, inputs={"total": "total", "left": "left", "c0": "s0", "c1": "s1"})  # layer 4
    return dag


def test_mixed_dag_results_concurrency_and_trace(tmp_path):
    global SLOW_LENS
    SPANS.clear()
    SLOW_LENS = Meeting(2)
    backend = Timed(sim("gpt-4.1-mini?error_rate=0.2&latency=0.05&latency_sigma=0"), meet=("pair0", "pair1", "pair2"))
    result = maker.run(mixed_dag(), backend=backend, trace=tmp_path / "mixed.jsonl")

    assert result.solved and result.outcome == "solved"
    assert result.outputs["pair0"] == 7 and result.outputs["pair1"] == 30 and result.outputs["pair2"] == 15
    assert result.outputs["left"] == 37 and result.outputs["total"] == 52
    assert result.outputs["report"] == {"total": 52, "left": 37, "counts": [6, 6]}
    assert result.totals.steps == 9 and result.totals.llm_steps == 5
    assert result.totals.errors == 0 and result.totals.scored == 5

    # Independent steps ran at the same time: the three first samples of layer 1,
    # and the two async python steps.
    first = {step: (start, end) for step, index, start, end in backend.spans if index == 0}
    assert overlap([first["pair0"], first["pair1"], first["pair2"]])
    assert overlap([SPANS["s0"], SPANS["s1"]])
    # ...and dependent ones did not: `total` started after `left` was decided.
    assert first["total"][0] > max(end for step, _, _, end in backend.spans if step == "left")

    trace = load_trace(result.trace)
    assert trace.header["task"]["name"] == "custom"
    assert trace.end is not None and trace.end["outcome"] == "solved"
    kinds = {d["step"]: d["kind"] for d in trace.decisions}
    assert kinds == {
        "source": "python",
        "pair0": "llm",
        "pair1": "llm",
        "pair2": "llm",
        "s0": "python",
        "s1": "python",
        "left": "llm",
        "total": "llm",
        "report": "python",
    }
    left = next(d for d in trace.decisions if d["step"] == "left")
    assert left["votes"][left["winner"]] >= 5  # the node's own k
    assert all(d["correct"] for d in trace.decisions if d["kind"] == "llm")
    sampled = {s["step"] for s in trace.samples}
    assert sampled == {"pair0", "pair1", "pair2", "left", "total"}  # python steps are never sampled


@pytest.mark.anyio
async def test_arun_is_the_same_run_awaited(tmp_path):
    result = await maker.arun(mixed_dag(), backend=sim(), trace=False)
    assert result.outputs["total"] == 52 and result.solved


# -- per-step settings ------------------------------------------------------------------------


def _counted(k_step: int | None, k_node: int | None) -> int:
    step = maker.llm_step(add_prompt, parse=parse_sum, voting=Voting(rule=AheadByK(k_step)) if k_step else None)
    dag = maker.DAG()
    dag.add_step("x", step, args={"a": 1, "b": 2}, voting=Voting(rule=AheadByK(k_node)) if k_node else None)
    result = maker.run(dag, backend=sim("perfect"), voting=Voting(rule=AheadByK(3)), trace=False)
    return result.totals.samples


@pytest.mark.parametrize(
    ("k_step", "k_node", "samples"),
    [
        (None, None, 3),  # the run's voting
        (4, None, 4),  # the step's own
        (4, 2, 2),  # the node's beats the step's
        (None, 6, 6),
    ],
)
def test_voting_precedence_node_then_step_then_run(k_step, k_node, samples):
    # A perfect model agrees every time, so a step costs exactly its k.
    assert _counted(k_step, k_node) == samples


def test_step_red_flags_and_parse_failures_are_red_flags(tmp_path):
    dag = maker.DAG()
    for i in range(10):
        dag.add_step(f"x{i}", add, args={"a": i, "b": 10 * i})
    # Half the replies are wrong; of those, half are negative (the step's red flag)
    # and a tenth of all replies are malformed (the parser's red flag).
    result = maker.run(
        dag,
        backend=sim("gpt-4.1-mini?error_rate=0.4&malformed_rate=0.1"),
        voting=Voting(rule=AheadByK(4)),
        trace=tmp_path / "flags.jsonl",
    )
    assert result.solved and [result.outputs[f"x{i}"] for i in range(10)] == [11 * i for i in range(10)]
    flags = [s["flag"] for s in load_trace(result.trace).samples if s["flag"]]
    assert any(f.startswith("user: a sum of naturals cannot be negative") for f in flags)
    assert any(f.startswith("format:") for f in flags)
    assert result.totals.red_flags == len(flags)


def test_red_flags_of_one_step_do_not_leak_to_others():
    voting = maker._steps.step_voting(add, None, Voting())
    assert _no_negative in voting.red_flags
    assert maker._steps.step_voting(add_pair, None, Voting()).red_flags == ()


# -- wrapping functions -----------------------------------------------------------------------


def test_prompt_builders_return_a_string_or_the_whole_chat():
    assert add(a=1, b=2) == ({"role": "user", "content": "Add 1 and 2.\nAnswer with one line: sum = <number>"},)
    with_system = maker.llm_step(lambda q: q, parse=str, system="Be brief.")
    assert with_system(q="hi") == ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"})
    chat = maker.llm_step(lambda q: [{"role": "system", "content": "S"}, {"role": "user", "content": q}], parse=str)
    assert chat.prompt({"q": "hi"})[1] == {"role": "user", "content": "hi"}
    broken = maker.llm_step(lambda q: 42, parse=str)
    with pytest.raises(TypeError, match="must return a string"):
        broken.prompt({"q": "hi"})


def test_default_vote_key_is_canonical_json():
    step = maker.llm_step(lambda: "?", parse=str)
    assert step.vote_key({"b": 1, "a": [2, 3]}) == step.vote_key({"a": [2, 3], "b": 1}) == '{"a":[2,3],"b":1}'
    assert step.vote_key(1) != step.vote_key("1")


def test_inputs_come_from_the_function_signature():
    assert add.inputs == {"a", "b"} and add.accepts == {"a", "b"}
    assert report.inputs == {"total", "left"} and report.accepts is None  # **counts takes anything


def test_async_prompt_builders_are_refused_with_a_reason():
    async def build(x: int) -> str:
        return str(x)

    with pytest.raises(ConfigError, match="not async"):
        maker.llm_step(build, parse=int)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sum = 3", 3),
        ("first sum = 3, then on reflection sum = 4", 4),  # the last match wins
        ("sum = -12\n", -12),
    ],
)
def test_parse_last_reads_the_final_answer(text, expected):
    assert maker.parse_last(r"sum = (-?[0-9]+)", int)(text) == expected


@pytest.mark.parametrize("text", ["", "the sum is 3", "sum = ", "sum: 3"])
def test_parse_last_rejects_anything_else_as_a_parse_error(text):
    with pytest.raises(ParseError):
        maker.parse_last(r"sum = (-?[0-9]+)", int)(text)


def test_parse_last_turns_conversion_errors_into_parse_errors():
    with pytest.raises(ParseError, match="cannot read"):
        maker.parse_last(r"n = (\S+)", int)("n = 12abc")


def test_one_output_can_feed_several_inputs():
    dag = maker.DAG()
    dag.add_step("x", lambda: 21)  # a plain function is a python step
    dag.add_step("double", add, inputs={"a": "x", "b": "x"})
    assert dag.edges["x", "double"]["name"] == ("a", "b")
    assert maker.run(dag, backend=sim(), trace=False).outputs["double"] == 42


def test_a_hand_built_networkx_graph_runs_as_is():
    graph = nx.DiGraph()
    graph.add_node("a", step=add, args={"a": 2, "b": 3})
    graph.add_node("b", step=maker.python_step(lambda s: s * 10))
    graph.add_edge("a", "b", name="s")
    assert maker.run(graph, backend=sim(), trace=False).outputs == {"a": 5, "b": 50}


# -- failures ---------------------------------------------------------------------------------


def test_a_python_step_that_raises_stops_the_run_naming_the_step(tmp_path):
    dag = maker.DAG()
    dag.add_step("ok", add, args={"a": 1, "b": 1})
    dag.add_step("boom", lambda s: 1 / 0, inputs={"s": "ok"})
    with pytest.raises(StepFailed, match="step 'boom' raised ZeroDivisionError") as info:
        maker.run(dag, backend=sim(), trace=tmp_path / "t.jsonl").raise_for_outcome()
    assert info.value.step == "boom"
    trace = load_trace(tmp_path / "t.jsonl")
    assert [d["step"] for d in trace.decisions] == ["ok"]  # what was decided is in the trace
    assert trace.errors[0]["step"] == "boom" and trace.end["outcome"] == "error"


def test_a_bug_in_a_prompt_builder_names_the_step():
    dag = maker.DAG()
    dag.add_step("q", maker.llm_step(lambda word: word.upper() + 1, parse=str), args={"word": "x"})
    with pytest.raises(StepFailed, match="step 'q' raised TypeError"):
        maker.run(dag, backend=sim(), trace=False).raise_for_outcome()


def _graph(*edges: tuple[str, str], **steps: Any) -> nx.DiGraph:
    g = nx.DiGraph()
    for node, data in steps.items():
        g.add_node(node, **data)
    for u, v in edges:
        g.add_edge(u, v, name="a" if v != "b2" else "b")
    return g


def _bad_plans() -> list[tuple[str, Any, str]]:
    one = {"step": add, "args": {"a": 1, "b": 2}}
    needs_a = {"step": add, "args": {"b": 2}}
    d_unknown = maker.DAG()
    d_unknown.add_step("sum", add, inputs={"a": "typo"}, args={"b": 1})
    d_missing = maker.DAG()
    d_missing.add_step("sum", add, args={"a": 1})
    d_extra = maker.DAG()
    d_extra.add_step("sum", add, args={"a": 1, "b": 2, "c": 3})
    d_twice = maker.DAG()
    d_twice.add_step("x", add, args={"a": 1, "b": 2})
    d_twice.add_step("sum", add, inputs={"a": "x"}, args={"a": 1, "b": 2})
    return [
        ("cycle", _graph(("p", "q"), ("q", "p"), p=needs_a, q=needs_a), "cycle through node 'p'"),
        ("unknown node", d_unknown, "node 'typo' is unknown: it feeds input 'a' of node 'sum'"),
        ("missing input", d_missing, "node 'sum': missing input 'b'"),
        ("unexpected input", d_extra, "node 'sum': unexpected input 'c' (its step takes a, b)"),
        ("fed twice", d_twice, "node 'sum': input 'a' is fed twice"),
        ("no step", _graph(x={"args": {}}), "node 'x' has no 'step' attribute"),
        ("not a step", _graph(x={"step": "add"}), "node 'x': 'step' must be an LLM step or a Python step"),
        ("bad node id", _node_id_graph(one), "node ('a', 1): node ids must be strings"),
        ("bad voting", _graph(x={**one, "voting": {"k": 3}}), "node 'x': 'voting' must be a voting.Voting"),
        ("empty", nx.DiGraph(), "the plan has no steps"),
    ]


def _node_id_graph(data: dict[str, Any]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node(("a", 1), **data)
    return g


@pytest.mark.parametrize(("case", "plan", "message"), _bad_plans(), ids=[c for c, _, _ in _bad_plans()])
def test_invalid_plans_are_refused_before_anything_runs(tmp_path, case, plan, message):
    trace = tmp_path / "never.jsonl"
    with pytest.raises(PlanError) as info:
        maker.run(plan, backend=sim(), trace=trace).raise_for_outcome()
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not trace.exists()  # refused before the trace was opened


def test_adding_a_node_twice_is_refused_at_once():
    dag = maker.DAG()
    dag.add_step("x", add, args={"a": 1, "b": 2})
    with pytest.raises(PlanError, match="node 'x' is added twice"):
        dag.add_step("x", add, args={"a": 1, "b": 2})


def test_validate_can_be_called_early():
    dag = maker.DAG()
    dag.add_step("sum", add, inputs={"a": "nowhere"}, args={"b": 1})
    with pytest.raises(PlanError, match="'nowhere' is unknown"):
        dag.validate()


def test_a_trace_argument_that_is_not_a_path_none_or_false_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in (True, 3):
        with pytest.raises(ConfigError, match="trace must be a path, None or False"):
            maker.run(mixed_dag(), backend=sim(), trace=bad).raise_for_outcome()  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # refused before any file was made


def test_backend_settings_of_the_wrong_type_are_config_errors():
    for bad in (1.5, "x", True):
        with pytest.raises(ConfigError, match="seed must be an integer"):
            maker.sim_backend("sim/perfect", oracles=[ORACLE], seed=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_retry must be callable"):
        open_backend("openai/gpt-4.1-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x", on_retry=3)
    assert maker.sim_backend("sim/perfect", oracles=[ORACLE], seed="7").model == "sim/perfect"
