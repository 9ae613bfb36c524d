"""The microagent: one step, from prompt to voted answer.

It asks the decision rule how many samples could still decide the step, draws
exactly that many at once, judges each reply as it arrives (red flags, vote
key), and launches more as soon as the best case needs them. It never sees
ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from maker._recorder import Decision, Recorder
from maker.backends._protocol import Backend, Completion, Request
from maker.errors import BudgetExceeded, ConfigError, VoteUndecided
from maker.tasks._protocol import Inputs, LLMStep, Messages
from maker.traces._schema import prompt_digest
from maker.voting import Reply, Tally, Verdict, Voting, judge

# A guard sees each request right before it is sent and may refuse it by
# raising (a budget); it may return a callback that is told how the request
# ended (the completion, or None if it failed), so spending can be settled.
# A callback that takes a `lost` keyword is told `lost=True` for a request
# cancelled in flight (the run stopped): possibly paid for, never answered.
Settle = Callable[..., None]
Guard = Callable[[Request], Settle | None]


class _Ballot:
    """One step's voting state: what was launched, what arrived, who leads."""

    __slots__ = (
        "answers",
        "failed",
        "in_flight",
        "launched",
        "node",
        "open",
        "prompt",
        "recorder",
        "rounds",
        "step",
        "tally",
        "voting",
    )

    def __init__(self, node: Hashable, step: LLMStep, voting: Voting, recorder: Recorder) -> None:
        self.node, self.step, self.voting, self.recorder = node, step, voting, recorder
        self.tally = Tally()
        self.answers: dict[str, Any] = {}
        self.launched = self.in_flight = self.rounds = 0
        self.open = True  # samples arriving after the step closes are recorded as late
        # A step stopped without a decision (interrupted, a budget, another step's failure): the
        # samples still arriving are not "after the decision", there is none. They are recorded as
        # plain samples, which a resume reuses as the votes they are, and a replay counts alike.
        self.failed = False
        self.prompt: str | None = None

    def launch(self) -> range:
        """Indices of the samples to send now: the leader's deficit not already in flight."""
        needed = self.voting.rule.needed(self.tally)
        if needed <= self.in_flight:
            if needed <= 0 and self.in_flight == 0:
                # Only a broken custom rule gets here; waiting would hang the run.
                raise ConfigError(
                    f"decision rule {self.voting.rule.name!r} names no winner at step {self.node!r}"
                    " yet asks for no more samples"
                )
            return range(0)
        want = min(needed - self.in_flight, self.voting.max_samples_per_step - self.launched)
        if want <= 0:
            if self.in_flight == 0:
                error = VoteUndecided(self.node, self.tally.counts, self.launched, self.tally.flagged)
                self.recorder.step_error(self.node, error, self.tally, self.launched)
                raise error
            return range(0)
        first = self.launched
        self.launched += want
        self.in_flight += want
        self.rounds += 1
        return range(first, first + want)

    def count(self, index: int, completion: Completion) -> str | None:
        """Judge and record one arrived sample; return the winner once decided."""
        self.in_flight -= 1
        verdict = self._judge(completion)
        self.recorder.sample(self.node, index, self.voting.temperature_for(index), completion, verdict, False)
        if verdict.key is None:
            self.tally.flagged += 1
            return None
        self.tally.add(verdict.key)
        self.answers.setdefault(verdict.key, verdict.answer)
        return self.voting.rule.winner(self.tally)

    def late(self, index: int, completion: Completion) -> None:
        verdict = self._judge(completion)
        after = not self.failed
        self.recorder.sample(self.node, index, self.voting.temperature_for(index), completion, verdict, after)

    def close(self, winner: str) -> Decision:
        self.open = False
        t = self.tally
        return Decision(
            self.node,
            winner,
            self.answers[winner],
            dict(t.counts),
            self.launched - self.in_flight,
            t.flagged,
            self.rounds,
            self.prompt,
        )

    def _judge(self, completion: Completion) -> Verdict:
        reply = Reply(completion.text, completion.finish_reason, completion.output_tokens)
        v = self.voting
        return judge(
            reply, self.step.parse, self.step.vote_key, max_output_tokens=v.max_output_tokens, extra_flags=v.red_flags
        )


class Microagent:
    """Runs LLM steps against one backend under one in-flight request limit."""

    def __init__(
        self,
        backend: Backend,
        recorder: Recorder,
        limiter: anyio.CapacityLimiter,
        group: TaskGroup,
        guard: Guard | None = None,
    ) -> None:
        self.backend = backend
        self.recorder = recorder
        self.limiter = limiter
        # Samples run in the run-wide group, not the step's, so a step decided
        # while some of its samples are still out does not wait for them.
        self.group = group
        self.guard = guard
        # A backend that answers without ever waiting (the in-process simulator
        # with no latency) gains nothing from concurrent samples: draw them in
        # order, in this task, and skip the task spawning that would dominate.
        self.instant = bool(getattr(backend, "instant", False))
        self._sending = 0  # requests on the wire
        self._unjudged = 0  # replies landed in a vote loop's inbox, not yet judged and recorded
        self._quiet: anyio.Event | None = None  # set when both are back to zero

    async def vote(self, node: Hashable, step: LLMStep, inputs: Inputs, voting: Voting) -> Decision:
        ballot = _Ballot(node, step, voting, self.recorder)
        messages = step.prompt(inputs)
        ballot.prompt = prompt_digest(messages)
        if self.instant:
            return await self._vote_in_order(ballot, messages)
        return await self._vote_concurrently(ballot, messages)

    async def _vote_in_order(self, ballot: _Ballot, messages: Messages) -> Decision:
        pending: list[int] = []
        winner = None
        while winner is None:
            pending.extend(ballot.launch())
            index = pending.pop(0)
            winner = ballot.count(index, await self._call(ballot, messages, index))
        decision = ballot.close(winner)
        for index in pending:  # launched in the deciding round, answered after the decision
            ballot.late(index, await self._call(ballot, messages, index))
        return decision

    async def _vote_concurrently(self, ballot: _Ballot, messages: Messages) -> Decision:
        send, receive = anyio.create_memory_object_stream[tuple[int, Completion]](math.inf)
        winner = None
        with send, receive:
            try:
                while winner is None:
                    for index in ballot.launch():
                        self.group.start_soon(self._draw, ballot, messages, index, send)
                    index, completion = await receive.receive()
                    self.judged()  # judged and recorded right now, with no await in between
                    winner = ballot.count(index, completion)
            except BaseException:
                ballot.open = False  # the step failed: samples still out are recorded, undecided
                ballot.failed = True
                with suppress(Exception):  # the step's own error is the one to report
                    self.drain(ballot, receive)
                raise
            decision = ballot.close(winner)
            self.drain(ballot, receive)  # replies that arrived while the deciding one was judged
        return decision

    def deliver(self, ballot: _Ballot, send: MemoryObjectSendStream[Any], index: int, c: Completion) -> None:
        """Hand an arrived reply to its step's vote loop, or record it as late once the loop is done with it.

        A reply in an inbox counts as not yet judged until the loop takes it,
        so that a budget stop waits for it to reach the trace (it is paid for).
        Shared by this vote loop and the speculative one.
        """
        if not ballot.open:
            ballot.late(index, c)
            return
        try:
            send.send_nowait((index, c))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            ballot.late(index, c)  # the step failed just now; the sample is paid for: keep it
        else:
            self._unjudged += 1

    def drain(self, ballot: _Ballot, receive: MemoryObjectReceiveStream[Any]) -> None:
        """Record every reply still in a vote loop's inbox as late (a loop's wake-ups, `(i, None)`, aside)."""
        while True:
            try:
                index, completion = receive.receive_nowait()
            except anyio.WouldBlock:
                return
            if completion is None:
                continue
            self.judged()
            ballot.late(index, completion)

    def judged(self) -> None:
        """A vote loop took one delivered reply from its inbox."""
        self._unjudged -= 1
        self._wake()

    def _wake(self) -> None:
        if self._sending == 0 and self._unjudged == 0 and self._quiet is not None:
            self._quiet.set()
            self._quiet = None

    async def _draw(
        self, ballot: _Ballot, messages: Messages, index: int, send: MemoryObjectSendStream[tuple[int, Completion]]
    ) -> None:
        async with self.limiter:
            completion = await self._call(ballot, messages, index)
        self.deliver(ballot, send, index, completion)

    async def _call(self, ballot: _Ballot, messages: Messages, index: int) -> Completion:
        v = ballot.voting
        request = Request(messages, v.temperature_for(index), v.max_output_tokens, ballot.node, index)
        return await self.send(request, index)

    async def send(self, request: Request, index: int, backend: Backend | None = None) -> Completion:
        """Send one request past the guard (a budget check right before sending), booking what it spends.

        Samples and drafts both go through here, so a budget counts both and a
        stop waits for both. `index` is what a request cancelled in flight is
        recorded as (a sample's index; -1 for a draft). `backend`: where it goes,
        if not the run's own model (a draft model).
        """
        try:
            settle = self.guard(request) if self.guard is not None else None
        except BudgetExceeded:
            await self._land_in_flight()  # what is out is paid for: let it land and be recorded first
            raise
        self._sending += 1
        try:
            completion = await (backend or self.backend).complete(request)
        except anyio.get_cancelled_exc_class():
            # The run is stopping with this request out: the server may have done (and billed) the work.
            self.recorder.lost_request(request.step, index)
            if settle is not None:
                _settle_lost(settle)
            raise
        except BaseException:
            if settle is not None:
                settle(None)
            raise
        finally:
            self._sending -= 1
            self._wake()
        if settle is not None:
            settle(completion)
        return completion

    async def _land_in_flight(self) -> None:
        """Before a budget stops the run, let requests already sent come back and be recorded: they are paid for.

        Waits until every request on the wire has come back and every reply
        that landed in a vote loop's inbox has been judged and recorded.
        """
        while self._sending or self._unjudged:
            self._quiet = self._quiet or anyio.Event()
            await self._quiet.wait()
        await anyio.lowlevel.checkpoint()


def _settle_lost(settle: Settle) -> None:
    try:
        settle(None, lost=True)
    except TypeError:  # a user's guard that knows no `lost`
        settle(None)
