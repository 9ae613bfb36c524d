"""The arithmetic and sorting tasks, and `maker run TASK` / `maker tasks` for every task.

The headline: at a size where one sample per step makes errors, voting on the
same simulated model solves the task with zero errors (checked through the
real CLI, as a user would run it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
from random import Random

import networkx as nx
import pytest
from _cli import run_maker
from hypothesis import given, settings
from hypothesis import strategies as st

import maker
import maker._planner
from maker.tasks import build_task, oracles, task_names
from maker.tasks.arithmetic import AdditionOracle, parse_carry, parse_column
from maker.tasks.sorting import SortingOracle, batcher_pairs, parse_pair
from maker.voting import ParseError

# One sample in fifty is wrong: enough that hundreds of single-sample steps
# always go wrong somewhere, and few enough that ahead-by-3 never does here.
NOISY = "sim/gpt-4.1-mini?error_rate=0.02"


def maker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_maker(*args)


# -- the headline, through the CLI -------------------------------------------------------------

SIZES = [
    # task, its size option, LLM steps at that size
    ("arithmetic", ["--digits", "300"], 600),
    ("sorting", ["--length", "128"], 1471),
]


@pytest.mark.parametrize(("task", "size", "llm_steps"), SIZES, ids=[t for t, _, _ in SIZES])
def test_single_sampling_fails_where_voting_solves_with_zero_errors(task, size, llm_steps):
    single = maker_cli("run", task, *size, "--model", NOISY, "--rule", "single", "--json", "--no-trace")
    voted = maker_cli("run", task, *size, "--model", NOISY, "--k", "3", "--json", "--no-trace")

    s, v = json.loads(single.stdout), json.loads(voted.stdout)
    assert single.returncode == 1 and not s["solved"] and s["errors"] > 0
    assert s["scored_steps"] == llm_steps and s["samples"] < 1.05 * llm_steps
    assert voted.returncode == 0 and v["solved"] and v["errors"] == 0
    assert v["scored_steps"] == llm_steps and v["steps"] == llm_steps + 1  # + the python step at the end
    assert v["samples"] >= 3 * llm_steps  # every step needed at least k agreeing votes


def test_hanoi_is_one_task_among_others():
    result = maker_cli("run", "hanoi", "--disks", "5", "--json", "--no-trace")
    assert result.returncode == 0
    assert json.loads(result.stdout)["steps"] == 31


def test_maker_tasks_lists_every_task_with_its_options():
    listing = maker_cli("tasks")
    assert listing.returncode == 0
    for text in ("hanoi", "--disks", "arithmetic", "--digits", "sorting", "--length", "--instance"):
        assert text in listing.stdout
    data = json.loads(maker_cli("tasks", "--json").stdout)
    options = {t["name"]: [o["name"] for o in t["options"]] for t in data["tasks"]}
    assert options == {
        "arithmetic": ["digits", "instance"],
        "count": ["start", "length"],
        "hanoi": ["disks"],
        "letters": ["start", "length"],
        "multiplication": ["digits", "problems", "planner", "problem_seed", "max_depth", "max_nodes"],
        "sorting": ["length", "instance"],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "sorting", "--length", "1"], "argument --length: must be >= 2, got 1"),
        (["run", "arithmetic", "--digits", "0"], "argument --digits: must be >= 1, got 0"),
        (["run", "arithmetic", "--digits", "lots"], "argument --digits: expected int, got 'lots'"),
        (["run", "arithmetic", "--digits", "50000"], "digits must be between 1 and 20,000, got 50000"),
        (["run", "hanoi", "--disks", "31"], "argument --disks: must be <= 30, got 31"),
        (["run", "sorting", "--lenght", "8"], "unrecognized arguments: --lenght 8"),
        (["run", "sorting", "--disks", "8"], "unrecognized arguments: --disks 8"),
        (["run", "juggling"], "invalid choice: 'juggling'"),
        (["run"], "the following arguments are required: TASK"),
    ],
)
def test_bad_task_options_are_one_line_and_exit_2(args, message):
    result = maker_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_alias_runs_the_same_task():
    result = maker_cli("run", "addition", "--digits", "3", "--json", "--no-trace")
    assert result.returncode == 0 and json.loads(result.stdout)["task"] == "arithmetic"


# -- arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sum = 7", 7),
        ("sum = 18", 18),
        ("8 + 9... sum = 16\nno wait: sum = 17", 17),  # the last answer wins
        ("The digits are 9 and 9.\nsum = 18\n", 18),
    ],
)
def test_column_parser_reads_the_last_sum(text, expected):
    assert parse_column(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "17",
        "sum: 17",
        "sum = 19",
        "sum = 07",
        "sum = -1",
        "sum = 1.5",
        "sum = x",
        "sum = 17abc",
        "sum = ١٧",
        "checksum",
        "sum = 123456789012345678901234567890",
    ],
)
def test_column_parser_rejects_everything_else(text):
    with pytest.raises(ParseError):
        parse_column(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("digit = 7\ncarry = 1", {"digit": 7, "carry": 1}),
        ("carry = 0\ndigit = 0", {"digit": 0, "carry": 0}),
        ("digit = 3\ncarry = 1\nOops.\ndigit = 4\ncarry = 0", {"digit": 4, "carry": 0}),
    ],
)
def test_carry_parser_reads_digit_and_carry(text, expected):
    assert parse_carry(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "digit = 7",
        "carry = 1",
        "digit = 10\ncarry = 1",
        "digit = 3\ncarry = 2",
        "digit: 3\ncarry: 0",
        "digits = 3\ncarry = 0",
    ],
)
def test_carry_parser_rejects_everything_else(text):
    with pytest.raises(ParseError):
        parse_carry(text)


def test_addition_plan_is_wide_then_deep():
    task = build_task("arithmetic", digits=40)
    graph = task.plan()
    sources = [n for n in graph if graph.in_degree(n) == 0]
    assert sorted(sources) == sorted(f"col{i}" for i in range(40))  # 40 column sums, all at once
    assert nx.dag_longest_path_length(graph) == 41  # col0 → carry0 → … → carry39 → result
    assert graph.in_degree("result") == 40
    maker._planner.validate(graph)


@pytest.mark.parametrize(("digits", "instance"), [(1, 0), (2, 3), (25, 1), (120, 7)])
def test_addition_on_a_perfect_model_gives_the_exact_sum(digits, instance):
    task = build_task("arithmetic", digits=digits, instance=instance)
    a, b = task.numbers
    assert len(a) == len(b) == digits and a[0] != "0" and b[0] != "0"
    result = maker.run(task, model="sim/perfect", trace=False)
    assert result.solved and result.outputs["result"] == str(int(a) + int(b)) == task.answer()


def test_addition_instances_differ_and_repeat():
    assert build_task("arithmetic", digits=30).numbers == build_task("arithmetic", digits=30).numbers
    assert build_task("arithmetic", digits=30).numbers != build_task("arithmetic", digits=30, instance=1).numbers


def test_an_error_in_the_carry_chain_is_caught_by_the_final_check():
    task = build_task("arithmetic", digits=3)
    outputs = maker.run(task, model="sim/perfect", trace=False).outputs
    assert task.solved(outputs, errors=0)
    outputs["result"] = outputs["result"][:-1] + str((int(outputs["result"][-1]) + 1) % 10)
    assert not task.solved(outputs, errors=0)


# -- sorting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("low = 3\nhigh = 512", [3, 512]),
        ("low = 7\nhigh = 7", [7, 7]),
        ("low = 512\nhigh = 3\nsorry, swapped: low = 3\nhigh = 512", [3, 512]),
        ("high = 9\nlow = 0", [0, 9]),
    ],
)
def test_pair_parser_reads_low_and_high(text, expected):
    assert parse_pair(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "low = 3",
        "high = 3",
        "low = 512\nhigh = 3",
        "low = 03\nhigh = 5",
        "low = 3\nhigh = 1000",
        "low: 3\nhigh: 5",
        "low = 3.5\nhigh = 5",
        "low = -3\nhigh = 5",
        "",
    ],
)
def test_pair_parser_rejects_everything_else(text):
    with pytest.raises(ParseError):
        parse_pair(text)


@pytest.mark.parametrize("n", range(2, 13))
def test_batcher_network_sorts_every_zero_one_input(n):
    # The 0-1 principle: a comparator network that sorts every 0/1 input sorts everything.
    pairs = list(batcher_pairs(n))
    for bits in itertools.product((0, 1), repeat=n):
        values = list(bits)
        for i, j in pairs:
            if values[i] > values[j]:
                values[i], values[j] = values[j], values[i]
        assert values == sorted(bits)


def test_sorting_plan_is_wide_and_shallow():
    graph = build_task("sorting", length=64).plan()
    comparators = graph.subgraph(n for n in graph if n != "result")
    assert comparators.number_of_nodes() == 543  # Batcher's odd-even merge sort on 64 wires
    assert nx.dag_longest_path_length(comparators) + 1 == 21  # layers: log2(64)·(log2(64)+1)/2
    assert max(len(layer) for layer in nx.topological_generations(comparators)) == 32
    maker._planner.validate(graph)


@pytest.mark.parametrize(("length", "instance"), [(2, 0), (5, 2), (33, 1), (100, 4)])
def test_sorting_on_a_perfect_model_gives_the_sorted_list(length, instance):
    task = build_task("sorting", length=length, instance=instance)
    result = maker.run(task, model="sim/perfect", trace=False)
    assert result.solved and result.outputs["result"] == sorted(task.values)


# -- both tasks: prompts, oracles and ground truth agree ---------------------------------------


@pytest.mark.parametrize(
    ("task", "oracle"),
    [
        (build_task("arithmetic", digits=12, instance=5), AdditionOracle()),
        (build_task("sorting", length=12, instance=5), SortingOracle()),
    ],
)
def test_oracle_reads_every_prompt_and_its_mistakes_lose_the_vote(task, oracle):
    """For every step (fed its ground-truth inputs): the simulator's answer is the
    step's ground truth, its rendering parses back to it, and its wrong answers
    either are red-flagged by the parser or are a different vote."""
    graph = task.plan()
    truth: dict[str, object] = {}
    rng = Random(0)
    for node in nx.topological_sort(graph):
        data = graph.nodes[node]
        inputs = dict(data.get("args") or {})
        for pred in graph.predecessors(node):
            for name in maker._planner.input_names(graph, pred, node):
                inputs[name] = truth[pred]
        step = data["step"]
        if not hasattr(step, "prompt"):
            truth[node] = step.run(inputs)
            continue
        expected = step.expected(inputs)
        messages = step.prompt(inputs)
        assert oracle.solve(messages) == expected
        assert step.parse(oracle.render(expected)) == expected
        for _ in range(5):
            wrong = oracle.wrong(expected, rng)
            with contextlib.suppress(ParseError):  # red-flagged: fine, it is never a vote
                assert step.vote_key(step.parse(oracle.render(wrong))) != step.vote_key(expected)
        truth[node] = expected
    assert task.solved({"result": truth["result"]}, errors=0)


def test_the_simulated_model_knows_every_registered_task():
    assert set(task_names()) == {"hanoi", "arithmetic", "sorting", "multiplication", "count", "letters"}
    kinds = {type(o).__name__ for o in oracles()}
    assert {"HanoiOracle", "AdditionOracle", "SortingOracle", "CountOracle", "LettersOracle"} <= kinds


def test_other_tasks_prompts_are_not_claimed():
    hanoi = build_task("hanoi", disks=3)
    messages = hanoi.plan().step.prompt(hanoi.step_inputs(0))
    assert AdditionOracle().solve(messages) is None and SortingOracle().solve(messages) is None


_PARSERS = [parse_column, parse_carry, parse_pair]
_VALID = ["sum = 17", "digit = 4\ncarry = 1", "low = 3\nhigh = 512"]


@pytest.mark.parametrize("parse", _PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_parsers_raise_nothing_but_parse_errors_on_any_text(parse, text):
    try:
        answer = parse(text)
    except ParseError:
        return
    assert _in_range(answer)


@pytest.mark.parametrize(
    ("parse", "valid"), list(zip(_PARSERS, _VALID, strict=False)), ids=lambda p: getattr(p, "__name__", "")
)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_parsers_on_mutated_replies_answer_or_flag(parse, valid, data):
    at = data.draw(st.integers(0, len(valid)))
    cut = data.draw(st.integers(0, 3))
    insert = data.draw(st.text(max_size=4))
    try:
        answer = parse(valid[:at] + insert + valid[at + cut :])
    except ParseError:
        return
    assert _in_range(answer)  # whatever gets through is a well-formed answer


def _in_range(answer: object) -> bool:
    if isinstance(answer, int):
        return 0 <= answer <= 18
    if isinstance(answer, dict):
        return 0 <= answer["digit"] <= 9 and answer["carry"] in (0, 1)
    low, high = answer  # type: ignore[misc]
    return 0 <= low <= high <= 999


@pytest.mark.parametrize(
    ("a", "b", "total"),
    [
        ("0", "0", "0"),
        ("9", "1", "10"),
        ("999", "1", "1000"),
        ("123", "98765", "98888"),
        ("5" * 5000, "5" * 5000, "1" + "1" * 4999 + "0"),  # past the 4,300 digits int() accepts
    ],
)
def test_the_ground_truth_sum_is_exact_at_any_size(a, b, total):
    from maker.tasks.arithmetic import add_decimal

    assert add_decimal(a, b) == total
