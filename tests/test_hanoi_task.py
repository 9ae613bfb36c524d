"""Towers of Hanoi as the paper ran it (method.md §5): prompt, strict parser, vote key, ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from random import Random

import pytest

from maker.errors import ConfigError
from maker.tasks import SampleableTask, build_task
from maker.tasks.hanoi import (
    Hanoi,
    HanoiOracle,
    HanoiStep,
    apply_move,
    cycle,
    goal_state,
    initial_state,
    legal_moves,
    optimal_move,
    optimal_state,
    parse_reply,
    strategy_move,
)
from maker.voting import ParseError

# ---------------------------------------------------------------------------
# The prompt


@pytest.mark.parametrize(
    ("n", "arrow"), [(1, "0→2→1→0"), (2, "0→1→2→0"), (3, "0→2→1→0"), (4, "0→1→2→0"), (20, "0→1→2→0")]
)
def test_the_strategy_names_disk_1s_cycle_for_even_and_odd_n(n: int, arrow: str) -> None:
    system, user = HanoiStep(n).prompt(Hanoi(n).step_inputs(0))
    assert f"along the cycle {arrow}." in user["content"]
    assert f"three pegs and {n} disks" in system["content"]


def test_the_system_part_has_the_puzzle_rules_example_and_output_format() -> None:
    system, user = HanoiStep(4).prompt(Hanoi(4).step_inputs(0))
    assert (system["role"], user["role"]) == ("system", "user")
    text = system["content"]
    for line in [
        "1. Only one disk can be moved at a time.",
        "2. Each move consists of taking the upper disk from one stack and placing it on top of another stack.",
        "3. A larger disk may not be placed on top of a smaller disk.",
        "The goal is to move the entire stack to the third peg.",
        "the initial state is [[3, 2, 1], [], []]",
        "The pegs are 0-indexed",
        "Each peg is listed from bottom to top.",
        "move = [disk id, from peg, to peg]",
        "next_state = [[...], [...], [...]]",
    ]:
        assert line in text


def test_the_worked_example_is_the_optimal_3_disk_solution() -> None:
    system = HanoiStep(3).prompt(Hanoi(3).step_inputs(0))[0]["content"]
    example = next(line for line in system.splitlines() if line.startswith("moves = "))
    moves = json.loads(example.removeprefix("moves = "))
    assert moves == [optimal_move(3, i) for i in range(1, 8)]
    assert len(moves) == 7


def test_the_user_part_has_rules_strategy_previous_move_and_state_as_python_lists() -> None:
    _, first = HanoiStep(4).prompt(Hanoi(4).step_inputs(0))
    assert "Previous move: None\n" in first["content"]
    assert "Current State: [[4, 3, 2, 1], [], []]\n" in first["content"]
    _, later = HanoiStep(3).prompt(Hanoi(3).step_inputs(3))
    assert "Previous move: [1, 2, 1]\n" in later["content"]  # str() of a list, as the paper wrote it
    assert "Current State: [[3], [2, 1], []]\n" in later["content"]
    for text in (
        "Only the top disk of a peg can be moved.",
        "make the only legal move that does not involve disk 1",
        "find the single next move that follows the strategy, and the resulting next state",
    ):
        assert text in later["content"]


def test_the_prompt_carries_no_history() -> None:
    # Maximal decomposition: step 100 sees what step 0 saw, plus only the previous move and state.
    a = HanoiStep(8).prompt(Hanoi(8).step_inputs(0))
    b = HanoiStep(8).prompt(Hanoi(8).step_inputs(100))
    assert a[0] == b[0]
    assert len(b) == 2
    assert len(b[1]["content"]) < len(a[1]["content"]) + 60


# ---------------------------------------------------------------------------
# The strict parser (n = 3)

GOOD = "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]"
RIGHT = {"move": [1, 0, 2], "state": [[3, 2], [], [1]]}

ACCEPTED = [
    ("plain", GOOD, RIGHT),
    (
        "prose around the answer",
        "Sure! Following the strategy, disk 1 goes from 0 to 2.\n" + GOOD + "\nThat is the next move.",
        RIGHT,
    ),
    ("no spaces", "move=[1,0,2]\nnext_state=[[3,2],[],[1]]", RIGHT),
    ("line breaks inside the lists", "move = [1,\n 0, 2]\nnext_state = [\n  [3, 2],\n  [],\n  [1]\n]", RIGHT),
    ("a code fence", "```python\n" + GOOD + "\n```", RIGHT),
    (
        "several matches: the last one wins",
        "move = [1, 0, 1]\nnext_state = [[3, 2], [1], []]\n"
        "Wait, 3 disks is odd, so disk 1 goes the other way.\n" + GOOD,
        RIGHT,
    ),
    (
        "last move and last state are found separately",
        "next_state = [[3, 2], [], [1]]\nmove = [2, 0, 1]\nmove = [1, 0, 2]",
        RIGHT,
    ),
    ("non-ASCII prose", "Voilà — le disque 1 va à droite ✓\n" + GOOD, RIGHT),
    (
        "the state need not follow from the move (voting's job)",
        "move = [2, 0, 1]\nnext_state = [[3, 2], [], [1]]",
        {"move": [2, 0, 1], "state": [[3, 2], [], [1]]},
    ),
    (
        "an illegal stacking is still each disk once",
        "move = [1, 0, 2]\nnext_state = [[1, 2, 3], [], []]",
        {"move": [1, 0, 2], "state": [[1, 2, 3], [], []]},
    ),
    (
        "a huge move is three ints; it just loses the vote",
        "move = [123456789012345678901234567890, 0, 2]\nnext_state = [[3, 2], [], [1]]",
        {"move": [123456789012345678901234567890, 0, 2], "state": [[3, 2], [], [1]]},
    ),
]


@pytest.mark.parametrize(("why", "text", "answer"), ACCEPTED, ids=[row[0] for row in ACCEPTED])
def test_the_parser_accepts(why: str, text: str, answer: dict[str, object]) -> None:
    assert parse_reply(text, 3) == answer


STATE = "\nnext_state = [[3, 2], [], [1]]"
MOVE = "move = [1, 0, 2]\n"

REJECTED = [
    ("empty", ""),
    ("no move", "next_state = [[3, 2], [], [1]]"),
    ("no state", "move = [1, 0, 2]"),
    ("prose only", "Move the smallest disk to the right peg."),
    ("truncated state", "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1"),
    ("truncated move", "move = [1, 0" + STATE),
    ("nested brackets in the move", "move = [[1], 0, 2]" + STATE),
    ("a list inside the move", "move = [1, [0], 2]" + STATE),
    ("nested brackets in the state", MOVE + "next_state = [[[3, 2]], [], [1]]"),
    ("two pegs", MOVE + "next_state = [[3, 2], [1]]"),
    ("four pegs", MOVE + "next_state = [[3, 2], [], [1], []]"),
    ("a disk missing", MOVE + "next_state = [[3], [], [1]]"),
    ("a disk twice", MOVE + "next_state = [[3, 2, 2], [], [1]]"),
    ("a disk too many", MOVE + "next_state = [[4, 3, 2], [], [1]]"),
    ("disk 0", MOVE + "next_state = [[3, 2, 0], [], [1]]"),
    ("a negative disk", MOVE + "next_state = [[3, -2], [], [1]]"),
    ("a huge disk", MOVE + "next_state = [[3, 2], [], [100000000000000000000000000001]]"),
    ("a 5000-digit number", "move = [" + "9" * 5000 + ", 0, 2]" + STATE),
    ("two numbers in the move", "move = [1, 2]" + STATE),
    ("four numbers in the move", "move = [1, 0, 2, 2]" + STATE),
    ("an empty move", "move = []" + STATE),
    ("a float in the move", "move = [1.0, 0, 2]" + STATE),
    ("a float in the state", MOVE + "next_state = [[3.0, 2], [], [1]]"),
    ("JSON booleans", "move = [true, 0, 2]" + STATE),
    ("Python booleans", "move = [True, 0, 2]" + STATE),
    ("null", "move = [null, 0, 2]" + STATE),
    ("a string", 'move = ["1", 0, 2]' + STATE),
    ("NaN", "move = [NaN, 0, 2]" + STATE),
    ("Infinity", "move = [Infinity, 0, 2]" + STATE),
    ("Arabic-Indic digits", "move = [١, ٠, ٢]" + STATE),
    ("full-width digits", "move = [１, 0, 2]" + STATE),
    ("superscript digits", "move = [¹, 0, 2]" + STATE),
    ("a non-breaking space inside a list", "move = [1,\u00a00, 2]" + STATE),
    ("a tuple", "move = (1, 0, 2)" + STATE),
    ("a trailing comma", "move = [1, 0, 2,]" + STATE),
    ("hex", "move = [0x1, 0, 2]" + STATE),
    ("underscores", "move = [1_0, 0, 2]" + STATE),
    ("leading zeros", "move = [01, 0, 2]" + STATE),
    ("arithmetic is not evaluated", "move = [0+1, 0, 2]" + STATE),
    ("eval bait", "move = [__import__('os').system('touch /tmp/maker-pwned'), 0, 2]" + STATE),
    ("eval bait in the state", MOVE + "next_state = [[exec('x=1'), 2], [], [1]]"),
    ("a colon instead of =", "move: [1, 0, 2]\nnext_state: [[3, 2], [], [1]]"),
    ("another word ending in move", "remove = [1, 0, 2]" + STATE),
    ("a capital M", "Move = [1, 0, 2]" + STATE),
    ("a bad last move is not replaced by an earlier good one", GOOD + "\nmove = [1, 0]"),
    ("a bad last state is not replaced by an earlier good one", GOOD + "\nnext_state = [[3], [], [1]]"),
]


@pytest.mark.parametrize(("why", "text"), REJECTED, ids=[row[0] for row in REJECTED])
def test_the_parser_rejects_and_never_repairs(why: str, text: str) -> None:
    with pytest.raises(ParseError):
        parse_reply(text, 3)


def test_eval_bait_is_never_executed() -> None:
    with pytest.raises(ParseError):
        parse_reply("move = [__import__('pathlib').Path('/tmp/maker-pwned').touch(), 0, 2]" + STATE, 3)
    assert not Path("/tmp/maker-pwned").exists()


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_the_parser_reads_what_the_oracle_writes_for_any_n(n: int) -> None:
    task, oracle = Hanoi(n), HanoiOracle()
    for i in sorted({0, min(1, task.steps - 1), task.steps // 2, task.steps - 1}):
        step = HanoiStep(n)
        right = step.expected(task.step_inputs(i))
        assert step.parse(oracle.render(right)) == right


def test_vote_keys_are_canonical_and_cover_move_and_state() -> None:
    step = HanoiStep(3)
    a = step.parse(GOOD)
    b = step.parse("move=[1,0,2]\nnext_state=[[3,2],[],[1]]")
    same_move_other_state = step.parse("move = [1, 0, 2]\nnext_state = [[3, 2], [1], []]")
    other_move_same_state = step.parse("move = [2, 0, 1]\nnext_state = [[3, 2], [], [1]]")
    assert step.vote_key(a) == step.vote_key(b)
    assert len({step.vote_key(x) for x in (a, same_move_other_state, other_move_same_state)}) == 3


# ---------------------------------------------------------------------------
# Ground truth (used only to score runs)


@pytest.mark.parametrize("n", range(1, 8))
def test_the_strategy_solves_the_puzzle_optimally(n: int) -> None:
    state, prev = initial_state(n), None
    for number in range(1, 2**n):
        move = strategy_move(state, prev)
        assert move == optimal_move(n, number)
        assert move in legal_moves(state)
        state, prev = apply_move(state, move), move
        assert state == optimal_state(n, number)
    assert state == goal_state(n)


@pytest.mark.parametrize("n", [1, 4, 9])
def test_step_inputs_are_the_ground_truth_input_of_each_step(n: int) -> None:
    task = Hanoi(n)
    assert isinstance(task, SampleableTask)
    assert task.steps == 2**n - 1
    assert task.plan().length == task.steps
    assert task.step_inputs(0) == {"prev": {"move": None, "state": initial_state(n)}}
    step = HanoiStep(n)
    for i in range(task.steps):
        inputs = task.step_inputs(i)
        expected = step.expected(inputs)
        assert expected == {"move": optimal_move(n, i + 1), "state": optimal_state(n, i + 1)}
        if i + 1 < task.steps:
            assert task.step_inputs(i + 1) == {"prev": expected}


def test_optimal_state_is_cheap_at_a_million_steps() -> None:
    n = 20
    assert optimal_state(n, 0) == initial_state(n)
    assert optimal_state(n, 2**n - 1) == goal_state(n)
    assert optimal_state(n, 2 ** (n - 1)) == [[], list(range(19, 0, -1)), [20]]  # half way: disk 20 just moved
    with pytest.raises(ValueError):
        optimal_state(n, 2**n)
    with pytest.raises(ValueError):
        optimal_state(n, -1)


def test_a_broken_input_has_no_right_answer() -> None:
    # After an earlier error the state may not even have disk 1 on top of anything reachable.
    assert HanoiStep(3).expected({"prev": {"move": [1, 0, 2], "state": [[3], [], [2, 1]]}}) is not None
    assert HanoiStep(3).expected({"prev": {"move": None, "state": [[3, 2], [], []]}}) is None  # no disk 1 at all


def test_illegal_moves_are_rejected_by_the_scorer() -> None:
    state = initial_state(3)
    for move in ([2, 0, 1], [1, 0, 0], [1, 1, 2], [1, 0, 3]):
        with pytest.raises(ValueError):
            apply_move(state, move)


def test_solved_means_zero_errors_and_the_goal_state() -> None:
    task = Hanoi(3)
    goal = {"move": [1, 0, 2], "state": goal_state(3)}
    assert task.solved({6: goal}, 0)
    assert not task.solved({6: goal}, 1)
    assert not task.solved({6: {"move": [1, 0, 2], "state": initial_state(3)}}, 0)
    assert not task.solved({}, 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"disks": 0}, "--disks must be >= 1"),
        ({"disks": 31}, "--disks must be <= 30"),
        ({"pegs": 4}, "has no option 'pegs'"),
    ],
)
def test_bad_task_options_are_errors(options: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_task("hanoi", **options)


def test_cycle() -> None:
    assert cycle(2) == (0, 1, 2)
    assert cycle(3) == (0, 2, 1)


# ---------------------------------------------------------------------------
# The simulator's oracle (what the simulated model knows)


def test_the_oracle_answers_from_the_prompt_alone() -> None:
    task, step, oracle = Hanoi(6), HanoiStep(6), HanoiOracle()
    for i in (0, 1, 31, 62):
        inputs = task.step_inputs(i)
        assert oracle.solve(step.prompt(inputs)) == step.expected(inputs)
    assert oracle.solve(({"role": "user", "content": "What is 2 + 2?"},)) is None


def test_the_oracles_wrong_answers_are_parseable_and_really_wrong() -> None:
    task, step, oracle, rng = Hanoi(5), HanoiStep(5), HanoiOracle(), Random(7)
    for i in range(task.steps):
        right = step.expected(task.step_inputs(i))
        wrong = oracle.wrong(right, rng)
        assert step.vote_key(step.parse(oracle.render(wrong))) != step.vote_key(right)
