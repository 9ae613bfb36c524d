"""Towers of Hanoi as the paper ran it (method.md §5).

One step = one move. The agent sees the strategy, the previous move and the
current state, and must answer with the move and the resulting state; only the
voted state travels to the next step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from random import Random
from typing import Any

from maker.errors import ConfigError
from maker.tasks._protocol import Chain, Inputs, Messages
from maker.voting import ParseError

State = list[list[int]]
Move = list[int]

_SYSTEM = """You are a helpful assistant. Solve this puzzle for me.
There are three pegs and {n} disks of different sizes stacked on the first peg. The disks are numbered from 1 (smallest) to {n} (largest). Disk moves in this puzzle should follow:
1. Only one disk can be moved at a time.
2. Each move consists of taking the upper disk from one stack and placing it on top of another stack.
3. A larger disk may not be placed on top of a smaller disk.
The goal is to move the entire stack to the third peg.

Example: With 3 disks numbered 1 (smallest), 2, and 3 (largest), the initial state is [[3, 2, 1], [], []], and a solution might be:
moves = [[1, 0, 2], [2, 0, 1], [1, 2, 1], [3, 0, 2], [1, 1, 0], [2, 1, 2], [1, 0, 2]]
This means: move disk 1 from peg 0 to peg 2, then move disk 2 from peg 0 to peg 1, and so on.

Requirements:
- The pegs are 0-indexed (the leftmost peg is 0).
- Each peg is listed from bottom to top.
- Your answer must include the single next move in this EXACT FORMAT:
move = [disk id, from peg, to peg]
- Your answer must include the state that results from applying that move to the current state, in this EXACT FORMAT:
next_state = [[...], [...], [...]]"""

_USER = """Rules:
- Only one disk can be moved at a time.
- Only the top disk of a peg can be moved.
- A larger disk may not be placed on top of a smaller disk.

Strategy for this puzzle:
- If the previous move did not move disk 1 (or there was no previous move), move disk 1 one peg along the cycle {cycle}.
- Otherwise, make the only legal move that does not involve disk 1.

Previous move: {prev}
Current State: {state}

Based on the previous move and the current state, find the single next move that follows the strategy, and the resulting next state."""

# A draft asks for the next m moves at once (docs/speculation.md#drafts): the same puzzle,
# strategy and reply format, m move / next_state pairs instead of one, and no reasoning.
_DRAFT_REQUIREMENTS = """Requirements:
- The pegs are 0-indexed (the leftmost peg is 0).
- Each peg is listed from bottom to top.
- Your answer must list the next {m} moves in order, each followed by the state that results from it, one pair per move and nothing else, in this EXACT FORMAT:
move = [disk id, from peg, to peg]
next_state = [[...], [...], [...]]"""

_DRAFT_ASK = (
    "Based on the previous move and the current state, find the next {m} moves that follow the strategy, "
    "each with the state that results from it."
)

# Strict patterns. The paper's parser takes the LAST match of each line, so a
# model that thinks aloud and then answers is read by its final answer.
_MOVE_RE = re.compile(r"(?<![A-Za-z_])move\s*=\s*(\[[^\[\]]*\])")
_STATE_RE = re.compile(r"next_state\s*=\s*(\[\s*\[[^\[\]]*\]\s*,\s*\[[^\[\]]*\]\s*,\s*\[[^\[\]]*\]\s*\])")
_PREV_RE = re.compile(r"^Previous move: (.*)$", re.MULTILINE)
_DRAFT_ASK_RE = re.compile(r"find the next (\d+) moves that follow the strategy")
_PAIR_RE = re.compile(_MOVE_RE.pattern + "|" + _STATE_RE.pattern)
_CUR_RE = re.compile(r"^Current State: (.*)$", re.MULTILINE)


def initial_state(n: int) -> State:
    return [list(range(n, 0, -1)), [], []]


def goal_state(n: int) -> State:
    return [[], [], list(range(n, 0, -1))]


def cycle(n: int) -> tuple[int, int, int]:
    """Disk 1's direction of travel: 0→1→2→0 for even n, 0→2→1→0 for odd n (goal peg 2)."""
    return (0, 1, 2) if n % 2 == 0 else (0, 2, 1)


def apply_move(state: State, move: Move) -> State:
    """The state after `move`; raises ValueError if the move is illegal."""
    disk, src, dst = move
    if not (0 <= src <= 2 and 0 <= dst <= 2) or src == dst:
        raise ValueError(f"bad pegs in {move}")
    if not state[src] or state[src][-1] != disk:
        raise ValueError(f"disk {disk} is not on top of peg {src}")
    if state[dst] and state[dst][-1] < disk:
        raise ValueError(f"disk {disk} cannot go on disk {state[dst][-1]}")
    nxt = [list(p) for p in state]
    nxt[dst].append(nxt[src].pop())
    return nxt


def optimal_state(n: int, moves: int) -> State:
    """The state after `moves` moves of the optimal solution, in O(n).

    Recursion on the largest disk: the first 2^(n-1) − 1 moves carry the n − 1
    smaller disks to the spare peg, move 2^(n-1) moves disk n, the rest carry
    the smaller disks on top of it.
    """
    if not 0 <= moves < 2**n:
        raise ValueError(f"a {n}-disk solution has moves 0..{2**n - 1}, not {moves}")
    pegs: State = [[], [], []]
    src, dst, spare = 0, 2, 1
    for disk in range(n, 0, -1):
        half = 1 << (disk - 1)
        if moves < half:
            pegs[src].append(disk)
            dst, spare = spare, dst
        else:
            pegs[dst].append(disk)
            moves -= half
            src, spare = spare, src
    return pegs


def optimal_move(n: int, number: int) -> Move:
    """Move `number` (1-based) of the optimal solution."""
    before, after = optimal_state(n, number - 1), optimal_state(n, number)
    src = next(i for i in range(3) if len(after[i]) < len(before[i]))
    dst = next(i for i in range(3) if len(after[i]) > len(before[i]))
    return [before[src][-1], src, dst]


def legal_moves(state: State) -> list[Move]:
    moves = []
    for src in range(3):
        if not state[src]:
            continue
        disk = state[src][-1]
        for dst in range(3):
            if dst != src and (not state[dst] or state[dst][-1] > disk):
                moves.append([disk, src, dst])
    return moves


def strategy_move(state: State, prev: Move | None) -> Move:
    """The move the given strategy prescribes (ground truth for one step)."""
    n = sum(len(p) for p in state)
    if prev is None or prev[0] != 1:
        src = next(i for i, p in enumerate(state) if p and p[-1] == 1)
        order = cycle(n)
        dst = order[(order.index(src) + 1) % 3]
        return [1, src, dst]
    for move in legal_moves(state):
        if move[0] != 1:
            return move
    raise ValueError("no legal move that avoids disk 1")


def _ints(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(type(x) is int for x in value):
        raise ParseError(f"{what} must be a list of integers")
    return value


def parse_reply(text: str, n: int) -> dict[str, Any]:
    """The strict parser: last `move = [...]` and last `next_state = [[...]x3]`.

    Literal values only (JSON list syntax, which is what Python prints for lists
    of ints), never eval, never repair. The state must hold each disk 1..n once;
    whether it follows from the move is the model's job, not the parser's.
    """
    moves = _MOVE_RE.findall(text)
    if not moves:
        raise ParseError("no 'move = [...]' line")
    states = _STATE_RE.findall(text)
    if not states:
        raise ParseError("no 'next_state = [[...], [...], [...]]' line")
    try:
        move = json.loads(moves[-1])
        state = json.loads(states[-1])
    except ValueError as exc:
        raise ParseError(f"not a literal list: {exc}") from None
    move = _ints(move, "move")
    if len(move) != 3:
        raise ParseError("move must have 3 integers")
    pegs = [_ints(p, "peg") for p in state]
    disks = sorted(d for p in pegs for d in p)
    if disks != list(range(1, n + 1)):
        raise ParseError(f"next_state must hold disks 1..{n} exactly once")
    return {"move": move, "state": pegs}


def parse_draft(text: str, n: int, m: int) -> list[dict[str, Any]]:
    """The strict draft parser: exactly `m` pairs of `move = [...]` then `next_state = [...]`, in order.

    Each pair is read as `parse_reply` reads one reply; a draft with more or
    fewer pairs, or a pair out of order, is rejected whole, never repaired.
    """
    found = [(m_.group(1), m_.group(2)) for m_ in _PAIR_RE.finditer(text)]
    if len(found) != 2 * m:
        raise ParseError(f"a draft of {m} moves needs {m} move and {m} next_state lines, found {len(found)} lines")
    answers = []
    for j in range(m):
        move, state = found[2 * j][0], found[2 * j + 1][1]
        if move is None or state is None:
            raise ParseError(f"draft pair {j + 1} is not a move line followed by a next_state line")
        answers.append(parse_reply(f"move = {move}\nnext_state = {state}", n))
    return answers


def _key(answer: Mapping[str, Any]) -> str:
    # str() of int lists is canonical (one spelling per value) and twice as fast as json.dumps.
    return str([answer["move"], answer["state"]])


@dataclass(frozen=True, slots=True)
class HanoiStep:
    """The microagent contract for one Hanoi move with `n` disks."""

    n: int

    def prompt(self, inputs: Inputs) -> Messages:
        prev = inputs["prev"]
        return (
            {"role": "system", "content": _system(self.n)},
            {"role": "user", "content": _user(self.n, prev["move"], prev["state"])},
        )

    def parse(self, text: str) -> dict[str, Any]:
        return parse_reply(text, self.n)

    def draft_prompt(self, inputs: Inputs, m: int) -> Messages:
        """The prompt of a draft: the next `m` moves and states from these inputs, at once."""
        prev = inputs["prev"]
        return (
            {"role": "system", "content": _draft_system(self.n, m)},
            {"role": "user", "content": _draft_user(self.n, m, prev["move"], prev["state"])},
        )

    def parse_draft(self, text: str, m: int) -> list[dict[str, Any]]:
        return parse_draft(text, self.n, m)

    def vote_key(self, answer: Mapping[str, Any]) -> str:
        return _key(answer)

    def expected(self, inputs: Inputs) -> dict[str, Any] | None:
        prev = inputs["prev"]
        try:
            move = strategy_move(prev["state"], prev["move"])
            return {"move": move, "state": apply_move(prev["state"], move)}
        except (ValueError, StopIteration):
            return None  # the input itself is broken (an earlier error): nothing is right


@lru_cache(maxsize=64)
def _system(n: int) -> str:
    return _SYSTEM.format(n=n)


@lru_cache(maxsize=64)
def _draft_system(n: int, m: int) -> str:
    return _system(n).split("Requirements:")[0] + _DRAFT_REQUIREMENTS.format(m=m)


def _draft_user(n: int, m: int, prev: Move | None, state: State) -> str:
    single = _user(n, prev, state)
    return single[: single.rindex("\n\n")] + "\n\n" + _DRAFT_ASK.format(m=m)


def _user(n: int, prev: Move | None, state: State) -> str:
    order = cycle(n)
    arrow = "→".join(str(p) for p in (*order, order[0]))
    return _USER.format(cycle=arrow, prev=str(prev) if prev is not None else "None", state=str(state))


@dataclass(frozen=True, slots=True)
class Hanoi:
    """Move `disks` disks from peg 0 to peg 2 in 2^n − 1 voted steps."""

    disks: int = 10
    name: str = "hanoi"

    def __post_init__(self) -> None:
        if not 1 <= self.disks <= 30:
            raise ConfigError(f"disks must be between 1 and 30, got {self.disks}")

    @property
    def steps(self) -> int:
        return (1 << self.disks) - 1

    def params(self) -> dict[str, Any]:
        return {"disks": self.disks}

    def plan(self) -> Chain:
        first = {"move": None, "state": initial_state(self.disks)}
        return Chain(step=HanoiStep(self.disks), length=self.steps, first=first)

    def step_inputs(self, step: int) -> dict[str, Any]:
        """Ground-truth inputs of step `step` (0-based): for calibration and independent-steps runs."""
        state = optimal_state(self.disks, step)
        return {"prev": {"move": optimal_move(self.disks, step) if step else None, "state": state}}

    def solved(self, outputs: Mapping[Any, Any], errors: int) -> bool:
        last = list(outputs.values())
        return errors == 0 and bool(last) and last[-1]["state"] == goal_state(self.disks)


class HanoiOracle:
    """The simulator's knowledge of Hanoi: read the prompt, apply the strategy."""

    def solve(self, messages: Messages) -> dict[str, Any] | None:
        user = messages[-1]["content"] if messages else ""
        return _solve_prompt(user)

    def render(self, answer: Mapping[str, Any]) -> str:
        return f"move = {answer['move']}\nnext_state = {answer['state']}"

    def solve_draft(self, messages: Messages) -> list[dict[str, Any]] | None:
        """The right next moves for a draft prompt (as many as it asks for), or None if it is none."""
        user = messages[-1]["content"] if messages else ""
        ask = _DRAFT_ASK_RE.search(user)
        if ask is None:
            return None
        answers: list[dict[str, Any]] = []
        answer = _solve_prompt(user)
        for _ in range(int(ask.group(1))):
            if answer is None:
                return None
            answers.append(answer)
            answer = _next_answer(answer)
        return answers

    def render_draft(self, answers: list[Mapping[str, Any]]) -> str:
        return "\n".join(self.render(a) for a in answers)

    def wrong(self, answer: Mapping[str, Any], rng: Random) -> dict[str, Any]:
        state_after = answer["state"]
        state = apply_move_back(state_after, answer["move"])
        options: list[dict[str, Any]] = [
            {"move": m, "state": apply_move(state, m)} for m in legal_moves(state) if m != answer["move"]
        ]
        # Right move, wrong bookkeeping: the disk lands on the wrong peg.
        disk, src, dst = answer["move"]
        other = 3 - src - dst
        bad = [list(p) for p in state]
        bad[src].pop()
        bad[other].append(disk)
        options.append({"move": answer["move"], "state": bad})
        return rng.choice(options)


def apply_move_back(state_after: State, move: Move) -> State:
    _disk, src, dst = move
    before = [list(p) for p in state_after]
    before[src].append(before[dst].pop())
    return before


def _next_answer(answer: Mapping[str, Any]) -> dict[str, Any] | None:
    """The strategy's answer to the step after `answer` (what a draft writes next)."""
    state, prev = answer["state"], answer["move"]
    try:
        move = strategy_move(state, prev)
        return {"move": move, "state": apply_move(state, move)}
    except (ValueError, StopIteration):
        return None


@lru_cache(maxsize=64)  # the k samples of a step ask about the same prompt
def _solve_prompt(user: str) -> dict[str, Any] | None:
    prev_m, cur_m = _PREV_RE.search(user), _CUR_RE.search(user)
    if prev_m is None or cur_m is None:
        return None
    try:
        prev = None if prev_m.group(1).strip() == "None" else json.loads(prev_m.group(1))
        state = json.loads(cur_m.group(1))
        try:
            move = strategy_move(state, prev)
        except (ValueError, StopIteration):
            # An earlier step went wrong and the strategy no longer applies; a
            # model would still answer, so answer with some legal move.
            move = legal_moves(state)[0]
        return {"move": move, "state": apply_move(state, move)}
    except (ValueError, StopIteration, TypeError, IndexError):
        return None
