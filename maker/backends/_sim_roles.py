"""The simulated model playing every role of a recursive multiplication: decomposer, solver, composer, judge.

It learns the role from the prompt alone, as a model behind HTTP would: the
first line says what is asked (plan, multiply, combine, or judge candidates),
the numbers are read off the text, and the right answer is worked out. Each
role has its own error rate, and its mistakes are the plausible ones: a wrong
split (a digit lost from a part, a wrong shift, a partial product left out,
"atomic" for a long product), an off-by-one digit, a wrong carry, a judge
naming the wrong candidate or one that does not exist. A solver's error rate
grows with the size of the product it is asked for, which is why one call on
a 10×10-digit product is mostly wrong and many small voted calls are not.

The simulator (`_sim.SimModel`) decides when to be wrong and when to reply
malformed; this module says how likely that is for each prompt (`tune`) and
what a wrong answer looks like (`wrong`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from random import Random
from typing import Any

from maker.backends._sim import SimProfile
from maker.tasks import Messages
from maker.tasks import multiplication as mul
from maker.voting import ParseError

JUDGE_MARK = "\n\nSeveral answers were proposed."
_CANDIDATE_RE = re.compile(r"\n\nCandidate ([0-9]+):\n")
REFERENCE_ERROR = 0.0022  # gpt-4.1-mini's measured per-step error rate: the profile the base rates describe


@dataclass(frozen=True, slots=True)
class RoleRates:
    """Per-role error rates of the simulated model.

    decompose: chance a decomposer reply is a wrong split.
    solve: a solver asked for an m×n-digit product is wrong with chance 1 − exp(−solve·(m·n)²)
        (about 1% at 2×2 digits, a third at 5×5, almost always at 10×10 on the default profile).
    compose: chance per digit of the sum that a composer slips (a carry, a digit).
    judge: chance a judge names a wrong candidate (sometimes one that does not exist).
    malformed: replies no parser accepts.
    """

    decompose: float = 0.03
    solve: float = 0.000625
    compose: float = 0.002
    judge: float = 0.05
    malformed: float = 0.02


BASE = RoleRates()


def role_rates(profile: SimProfile) -> RoleRates:
    """The role rates of a profile: the base rates scaled by how error-prone the profile is.

    Scaled by the square root of its per-step error rate against gpt-4.1-mini's,
    so the paper's profiles keep their order without a bad one saturating every role.
    """
    if profile.error_rate <= 0:
        return RoleRates(0.0, 0.0, 0.0, 0.0, profile.malformed_rate)
    scale = math.sqrt(profile.error_rate / REFERENCE_ERROR)
    return RoleRates(
        decompose=min(0.9, BASE.decompose * scale),
        solve=BASE.solve * scale,
        compose=min(0.2, BASE.compose * scale),
        judge=min(0.9, BASE.judge * scale),
        malformed=min(0.9, profile.malformed_rate + BASE.malformed),
    )


@dataclass(frozen=True, slots=True)
class RoleAnswer:
    """The right (or a wrong) answer to one role prompt, with what rendering and mistakes need."""

    role: str
    value: Any
    size: int = 0  # solve: digits of a times digits of b; compose: digits of the sum; judge: candidates


class MultiplicationRoles:
    """An oracle (see `tasks.Oracle`) with per-prompt error rates: the `tune` hook of `SimModel`."""

    def __init__(self) -> None:
        self._tuned: dict[tuple[SimProfile, str, int], SimProfile] = {}

    def solve(self, messages: Messages) -> RoleAnswer | None:
        if not messages:
            return None
        text = messages[-1]["content"]
        question, mark, listing = text.partition(JUDGE_MARK)
        if mark:
            return _judge(question, listing)
        return _answer(text)

    def render(self, answer: RoleAnswer) -> str:
        if answer.role == "judge":
            return f"choice = {answer.value}"
        if answer.role == "decompose":
            return "\n" + mul.render_decomposition(answer.value)
        return "\n" + mul.render_product(answer.value)

    def wrong(self, answer: RoleAnswer, rng: Random) -> RoleAnswer:
        if answer.role == "judge":
            options = [i for i in range(1, answer.size + 2) if i != answer.value]  # size + 1: out of range
            return replace(answer, value=rng.choice(options))
        if answer.role == "decompose":
            return replace(answer, value=_wrong_split(answer.value, rng))
        return replace(answer, value=_slip(answer.value, rng))

    def tune(self, messages: Messages, answer: RoleAnswer, profile: SimProfile) -> SimProfile:
        key = (profile, answer.role, answer.size)
        tuned = self._tuned.get(key)
        if tuned is None:
            tuned = self._tuned[key] = _tuned(profile, answer)
        return tuned


def _tuned(profile: SimProfile, answer: RoleAnswer) -> SimProfile:
    rates = role_rates(profile)
    if answer.role == "solve":
        error = min(0.95, 1.0 - math.exp(-rates.solve * answer.size**2))
    elif answer.role == "compose":
        error = 1.0 - (1.0 - rates.compose) ** answer.size
    else:
        error = rates.decompose if answer.role == "decompose" else rates.judge
    return replace(profile, error_rate=error, malformed_rate=rates.malformed)


def _answer(text: str) -> RoleAnswer | None:
    m = mul.DECOMPOSE_RE.search(text)
    if m:
        return RoleAnswer("decompose", mul.expected_decomposition(m.group(1), m.group(2)))
    m = mul.SOLVE_RE.search(text)
    if m:
        a, b = m.group(1), m.group(2)
        return RoleAnswer("solve", str(int(a) * int(b)), len(a) * len(b))
    m = mul.COMPOSE_RE.search(text)
    if m:
        lines = mul.COMPOSE_LINE_RE.findall(text)
        total = mul.compose([p for p, _ in lines], [int(s) for _, s in lines])
        return RoleAnswer("compose", total, len(total))
    return None


def _judge(question: str, listing: str) -> RoleAnswer | None:
    """Read the question and the candidates; the right choice is the first candidate that is right."""
    right = _answer(question)
    if right is None:
        return None
    body = listing.split("\n\nWhich candidate is correct?")[0]
    texts = _CANDIDATE_RE.split(body)[2::2]  # [preamble, "1", text, "2", text, ...]
    parse = mul.parse_decomposition if right.role == "decompose" else mul.parse_product
    for i, shown in enumerate(texts, start=1):
        try:
            if parse(shown) == right.value:
                return RoleAnswer("judge", i, len(texts))
        except ParseError:
            continue
    return RoleAnswer("judge", 1, len(texts))  # none is right: a judge still names one


def _slip(product: str, rng: Random) -> str:
    """An off-by-one digit or a wrong carry (± a power of ten): never the right product, never negative."""
    value = int(product)
    for _ in range(8):
        if rng.random() < 0.5:
            i = rng.randrange(len(product))
            digit = (int(product[i]) + rng.choice((-1, 1))) % 10
            candidate = product[:i] + str(digit) + product[i + 1 :]
            candidate = str(int(candidate))
        else:
            candidate = str(max(0, value + rng.choice((-1, 1)) * 10 ** rng.randrange(max(1, len(product)))))
        if candidate != product:
            return candidate
    return str(value + 1)


def _wrong_split(d: dict[str, Any], rng: Random) -> dict[str, Any]:
    """A plausible wrong decomposition: a lost digit, a wrong shift, a part left out, or atomic."""
    if d.get("atomic"):
        return {"parts": [["1", "1"], ["1", "1"]], "rule": [0, 0]}  # splitting what needs no split, badly
    parts = [list(p) for p in d["parts"]]
    shifts = list(d["rule"])
    kind = rng.randrange(4)
    i = rng.randrange(len(parts))
    if kind == 0 and any(len(x) > 1 for x in parts[i]):  # a digit lost from one part
        j = 0 if len(parts[i][0]) > 1 else 1
        parts[i][j] = parts[i][j][:-1]
    elif kind == 1:
        shifts[i] = shifts[i] + 1 if shifts[i] == 0 or rng.random() < 0.5 else shifts[i] - 1
    elif kind == 2 and len(parts) > 1:
        del parts[i], shifts[i]
    else:
        return {"atomic": True}
    return {"parts": parts, "rule": shifts}


ROLE_ORACLES = (MultiplicationRoles(),)
