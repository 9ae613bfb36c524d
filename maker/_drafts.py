"""Drafts: one call asks a model for the next M steps' answers, so that M steps can be verified at once.

A chain step's prompt needs its predecessor's decided answer, so a chain runs
one model latency per step at best. A draft guesses the next M answers in one
call, from a task-provided multi-step prompt (`draft_prompt`) read by a strict
parser (`parse_draft`). Each drafted answer builds the next step's prompt, and
the speculator (`maker._speculation`) holds the ordinary ballot on each such
prompt in parallel; the longest prefix the votes confirm is kept, exactly as a
first-sample prediction is kept. A draft never decides anything: it only says
which prompts are worth sampling now. Steps decide by their own votes on the
prompt their decided inputs build, so decisions are those of a plain run.

A draft is recorded as a `draft` event (its text, tokens, what it predicted),
counted in the totals and checked against budgets like any request; resume
serves recorded drafts again for free instead of asking twice.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from maker._microagent import Microagent
from maker._planner import Plan
from maker._recorder import Recorder
from maker.backends._protocol import Backend, Completion, Request
from maker.errors import BackendError, ConfigError
from maker.tasks._protocol import Inputs, LLMStep, Messages

TOKENS_PER_STEP = 128  # output cap per drafted step: a draft writes answers only, no reasoning


@runtime_checkable
class DraftableStep(LLMStep, Protocol):
    """An LLM step whose task can draft several steps at once (Hanoi: the next M moves)."""

    def draft_prompt(self, inputs: Inputs, m: int) -> Messages:
        """The prompt for the answers of this step and the `m - 1` after it, from this step's inputs."""
        ...

    def parse_draft(self, text: str, m: int) -> list[Any]:
        """Strictly parse a draft into `m` answers; raise `voting.ParseError`, never repair."""
        ...


def draftable(step: object) -> bool:
    return callable(getattr(step, "draft_prompt", None)) and callable(getattr(step, "parse_draft", None))


def check_draftable(plan: Plan, task: str, draft: int) -> None:
    """Refuse `--draft` for a task none of whose steps offers a draft prompt."""
    chain = getattr(plan, "chain", None)
    steps = [chain.step] if chain is not None else [d.get("step") for _, d in plan.graph.nodes(data=True)]
    if draft and not any(draftable(s) for s in steps):
        raise ConfigError(
            f"task {task!r} has no draft prompt, so it cannot run with --draft (--speculate works for any task)"
        )


@dataclass(slots=True)
class Draft:
    """What one draft predicted: the answers (and vote keys) of `nodes[:len(answers)]`, in chain order.

    nodes[len(answers)], if there, is the step the next draft starts from.
    """

    nodes: list[Hashable]
    answers: list[Any]
    keys: list[str]


class Drafter:
    """Asks for drafts, records them, and serves recorded ones again on resume."""

    def __init__(
        self,
        backend: Backend,
        m: int,
        agent: Microagent,
        recorder: Recorder,
        recorded: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.backend, self.m, self.agent, self.recorder = backend, m, agent, recorder
        self._recorded: dict[tuple[Hashable, str], Mapping[str, Any]] = {}
        for event in recorded:
            self._recorded.setdefault((event["step"], event["basis"]), event)
        self.served = 0

    async def fetch(
        self, step: DraftableStep, node: Hashable, basis: str, inputs: Inputs, nodes: list[Hashable], m: int
    ) -> Draft | None:
        """A draft of `m` answers from `inputs` (the inputs of `node`, whose prompt is `basis`); None if unusable."""
        recorded = self._recorded.pop((node, basis), None)
        if recorded is not None and recorded.get("m") == m:
            self.served += 1
            return _read(step, recorded.get("text"), recorded.get("finish"), m, nodes)
        messages = step.draft_prompt(inputs, m)
        request = Request(messages, 0.0, TOKENS_PER_STEP * m + 64, node, 0)
        try:
            completion = await self._call(request)
        except BackendError as exc:
            # A draft that cannot be had only costs speed: the steps run without it.
            self._record(node, basis, m, nodes, None, [], f"backend: {exc}")
            return None
        draft = _read(step, completion.text, completion.finish_reason, m, nodes)
        flag = None if draft is not None else _flag(step, completion, m)
        self._record(node, basis, m, nodes, completion, draft.keys if draft else [], flag)
        return draft

    async def _call(self, request: Request) -> Completion:
        async with self.agent.limiter:
            return await self.agent.send(request, -1, self.backend)  # budgets count drafts; a stop waits for them

    def _record(
        self,
        node: Hashable,
        basis: str,
        m: int,
        nodes: list[Hashable],
        c: Completion | None,
        keys: list[str],
        flag: str | None,
    ) -> None:
        self.recorder.draft(
            {
                "type": "draft",
                "step": node,
                "basis": basis,
                "m": m,
                "model": self.backend.model,
                "text": c.text if c else "",
                "finish": c.finish_reason if c else None,
                "tokens_in": c.input_tokens if c else 0,
                "tokens_out": c.output_tokens if c else 0,
                "latency": round(c.latency, 6) if c else 0.0,
                "retries": c.retries if c else 0,
                "flag": flag,
                "steps": nodes[:m],
                "keys": keys,
            }
        )


def _read(step: DraftableStep, text: Any, finish: Any, m: int, nodes: list[Hashable]) -> Draft | None:
    if not isinstance(text, str) or finish == "length":
        return None
    try:
        answers = step.parse_draft(text, m)
        keys = [step.vote_key(a) for a in answers]
    except Exception:  # a strict parser's ParseError, or a bug in it: either way no usable draft
        return None
    if len(answers) != m:
        return None
    return Draft(list(nodes), answers, keys)


def _flag(step: DraftableStep, c: Completion, m: int) -> str:
    if c.finish_reason == "length":
        return "length: the draft was cut off at its output cap"
    try:
        step.parse_draft(c.text, m)
    except Exception as exc:
        return f"format: {exc}"
    return f"format: not {m} answers"
