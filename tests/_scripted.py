"""A scripted model and a tiny one-word task, for tests of voting logic.

The scripted backend answers each sample from a script the test writes, so a
test states exactly which replies a step gets. Gated, it also holds every
request until the test releases it, so the test decides the order in which
samples arrive and can look at what the microagent launched in between.
It is a real `Backend`: the runtime under test cannot tell it from any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from maker.backends import Completion, Request
from maker.tasks import Inputs, Messages
from maker.voting import ParseError

Scripted = str | Completion
Script = Sequence[Scripted] | Mapping[Hashable, Sequence[Scripted]] | Callable[[Request], Scripted]

GARBAGE = "I think the answer is probably the second one."  # no `answer:` line: a format red flag


def vote(word: str) -> str:
    """A well-formed reply voting for `word`."""
    return f"Let me think.\nanswer: {word}"


def cut_off(word: str, tokens: int = 750) -> Completion:
    """A reply that hit the output cap (a length red flag, however good it looks)."""
    return Completion(vote(word), "length", 30, tokens, 0.0)


def long_reply(word: str, tokens: int) -> Completion:
    """A finished reply with `tokens` output tokens."""
    return Completion(vote(word), "stop", 30, tokens, 0.0)


class WordStep:
    """An LLM step whose answer is one word: `answer: WORD` on the last line.

    The parser is strict (one format, no repair), like every task's parser.
    """

    def __init__(self, truth: str | None = None, name: str = "pick") -> None:
        self.truth = truth
        self.name = name

    def prompt(self, inputs: Inputs) -> Messages:
        return ({"role": "user", "content": f"{self.name}: {sorted(inputs.items())!r}"},)

    def parse(self, text: str) -> str:
        found = re.fullmatch(r"answer: ([A-Za-z]+)", text.strip().splitlines()[-1] if text.strip() else "")
        if found is None:
            raise ParseError("no 'answer: WORD' last line")
        return found.group(1)

    def vote_key(self, answer: str) -> str:
        return answer

    def expected(self, inputs: Inputs) -> str | None:
        return self.truth


class Meeting:
    """Holds whoever arrives until `size` have arrived, then lets everyone through.

    A test that claims "these ran at the same time" waits on this instead of a
    sleep: under any load, the first `size` arrivals were all in progress at once
    when it opens. If they never can be (the code under test runs them one after
    another), the test fails with a clear message instead of passing by luck.
    """

    def __init__(self, size: int, *, patience: float = 60.0) -> None:
        self.size, self.patience = size, patience
        self.arrived = 0
        self._open: anyio.Event | None = None  # made in the event loop of the first arrival

    async def arrive(self) -> None:
        self.arrived += 1
        if self._open is None:
            self._open = anyio.Event()
        if self.arrived >= self.size:
            self._open.set()
            return
        with anyio.move_on_after(self.patience) as scope:
            await self._open.wait()
        if scope.cancelled_caught:
            raise AssertionError(f"only {self.arrived} of {self.size} were ever in progress at once")


class ScriptedBackend:
    """Replies from a script: a list (every step), a {step: list} map, or a function of the request.

    gated: each request waits until `release` lets it answer, so the test picks the
    arrival order. instant: advertise `instant` so the microagent samples in order.
    meet: the first `meet` requests wait for each other (see `Meeting`) before answering.
    """

    def __init__(
        self,
        script: Script,
        *,
        gated: bool = False,
        instant: bool = False,
        delay: float = 0.0,
        tokens_out: int = 20,
        meet: int = 0,
    ) -> None:
        self.model = "scripted/test"
        self.script = script
        self.gated = gated
        self.delay = delay
        self.meeting = Meeting(meet) if meet else None
        self.tokens_out = tokens_out
        if instant:
            self.instant = True
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gates: dict[tuple[Hashable, int], anyio.Event] = {}

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.meeting is not None:
                await self.meeting.arrive()
            if self.gated:
                await self._gate(request.step, request.sample).wait()
            elif self.delay:
                await anyio.sleep(self.delay)
            else:
                await anyio.lowlevel.checkpoint()
        finally:
            self.in_flight -= 1
        return self._completion(self._reply(request))

    async def aclose(self) -> None:
        return None

    async def release(self, index: int, step: Hashable = "s") -> None:
        """Let sample `index` of `step` answer, then wait until the runtime has reacted."""
        self._gate(step, index).set()
        await settle(lambda: (len(self.requests), self.in_flight))

    def launched(self, step: Hashable = "s") -> list[int]:
        return [r.sample for r in self.requests if r.step == step]

    def _gate(self, step: Hashable, index: int) -> anyio.Event:
        return self._gates.setdefault((step, index), anyio.Event())

    def _reply(self, request: Request) -> Scripted:
        if callable(self.script):
            return self.script(request)
        replies = self.script[request.step] if isinstance(self.script, Mapping) else self.script
        if request.sample >= len(replies):
            raise AssertionError(f"the script has no sample {request.sample} for step {request.step!r}")
        return replies[request.sample]

    def _completion(self, reply: Scripted) -> Completion:
        if isinstance(reply, Completion):
            return reply
        return Completion(reply, "stop", 30, self.tokens_out, 0.0)


async def settle(probe: Callable[[], object], quiet: int = 50) -> None:
    """Let every other task run until they are all blocked again.

    `anyio.wait_all_tasks_blocked` alone can return while a finished task's
    completion callback is still queued, so first wait for `probe()` (what the
    test looks at) to stay unchanged for `quiet` scheduler passes.
    """
    last, still = probe(), 0
    for _ in range(100_000):
        await anyio.lowlevel.checkpoint()
        now = probe()
        still = still + 1 if now == last else 0
        last = now
        if still >= quiet:
            break
    await anyio.wait_all_tasks_blocked()


def one_step_graph(step: Any = None, node: Hashable = "s") -> Any:
    """A plan of a single LLM step named `node`."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_node(node, step=step or WordStep())
    return graph
