"""The microagent: one step, from prompt to voted answer.

It asks the decision rule how many samples could still decide the step, draws
exactly that many at once, judges each reply as it arrives (red flags, vote
key), and launches more as soon as the best case needs them. It never sees
ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from maker.backends._protocol import Backend, Completion, Request
from maker._recorder import Decision, Recorder
from maker.errors import VoteUndecided
from tasks._protocol import Inputs, LLMStep, Messages
from voting import Reply, Tally, Verdict, Voting, judge

Guard = Callable[[Request], None]


@dataclass(slots=True)
class _Open:
    """Whether the step still takes votes; samples arriving after it closes are late."""

    open: bool = True


class Microagent:
    """Runs LLM steps against one backend under one in-flight request limit."""

    def __init__(self, backend: Backend, recorder: Recorder, limiter: anyio.CapacityLimiter, group: TaskGroup,
                 guard: Guard | None = None) -> None:
        self.backend = backend
        self.recorder = recorder
        self.limiter = limiter
        # Samples run in the run-wide group, not the step's, so a step decided
        # while some of its samples are still out does not wait for them.
        self.group = group
        self.guard = guard

    async def vote(self, node: Hashable, step: LLMStep, inputs: Inputs, voting: Voting) -> Decision:
        messages = step.prompt(inputs)
        rule = voting.rule
        tally = Tally()
        answers: dict[str, Any] = {}
        state = _Open()
        send, receive = anyio.create_memory_object_stream[tuple[int, Completion]](math.inf)
        launched = in_flight = rounds = 0
        with send, receive:
            while True:
                if in_flight == 0 or rule.needed(tally) > in_flight:
                    want = min(rule.needed(tally) - in_flight, voting.max_samples - launched)
                    if want <= 0 and in_flight == 0:
                        error = VoteUndecided(node, tally.counts, launched, tally.flagged)
                        self.recorder.step_error(node, error, tally, launched)
                        raise error
                    if want > 0:
                        rounds += 1
                        for index in range(launched, launched + want):
                            self.group.start_soon(self._draw, node, step, messages, index, voting, state, send)
                        launched += want
                        in_flight += want
                index, completion = await receive.receive()
                in_flight -= 1
                verdict = self._judge(step, completion, voting)
                self.recorder.sample(node, index, voting.temperature_for(index), completion, verdict, False)
                if verdict.key is None:
                    tally.flagged += 1
                    continue
                tally.add(verdict.key)
                answers.setdefault(verdict.key, verdict.answer)
                winner = rule.winner(tally)
                if winner is not None:
                    break
            state.open = False
            decision = Decision(node, winner, answers[winner], dict(tally.counts), launched - in_flight,
                                tally.flagged, rounds)
            while True:  # replies that arrived while the deciding one was judged
                try:
                    index, completion = receive.receive_nowait()
                except anyio.WouldBlock:
                    break
                self._late(node, step, index, completion, voting)
        return decision

    async def _draw(self, node: Hashable, step: LLMStep, messages: Messages, index: int, voting: Voting,
                    state: _Open, send: MemoryObjectSendStream[tuple[int, Completion]]) -> None:
        request = Request(messages, voting.temperature_for(index), voting.max_output_tokens, node, index)
        async with self.limiter:
            if self.guard is not None:
                self.guard(request)  # a budget check, right before the request would go out
            completion = await self.backend.complete(request)
        if state.open:
            send.send_nowait((index, completion))
        else:
            self._late(node, step, index, completion, voting)

    def _late(self, node: Hashable, step: LLMStep, index: int, completion: Completion, voting: Voting) -> None:
        verdict = self._judge(step, completion, voting)
        self.recorder.sample(node, index, voting.temperature_for(index), completion, verdict, True)

    @staticmethod
    def _judge(step: LLMStep, completion: Completion, voting: Voting) -> Verdict:
        reply = Reply(completion.text, completion.finish_reason, completion.output_tokens)
        return judge(reply, step.parse, step.vote_key, max_output_tokens=voting.max_output_tokens,
                     extra_flags=voting.red_flags)
