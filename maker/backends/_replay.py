"""A backend that answers from a trace: exact replay, and the reused samples of a resume.

Voting's decision depends on the order in which samples arrive, so replaying
a step means handing its recorded samples back in the order voting saw them.
The backend holds each request until every sample recorded before it has
been counted (the recorder calls `Tape.delivered`), which makes the arrival
order of a replay the recorded order, whatever the scheduling.

Two uses:
- replay (no fallback): a request the trace cannot answer is either the end of
  the recorded history (a step the trace never finished) or a `TraceMismatch`
  (the code asked for a sample the recorded run never drew).
- resume (a fallback backend): samples recorded for unfinished steps are
  served first, free, then the fallback draws the rest for real.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from maker.backends._protocol import Backend, Completion, Request
from maker.errors import TraceError, TraceMismatch

# A recorded sample that was lost: launched by the recorded run, still in flight
# when that run died. Only ever a late sample of a decided step, so it changes
# nothing; the replay recorder skips it.
LOST = Completion("", "lost", 0, 0, 0.0)

# Scheduler turns a held request waits without any progress at its step before
# concluding that the sample it waits for will never be asked for (the code
# diverged from the history). Progress normally comes within a few turns.
PATIENCE = 200

# Decided steps whose tapes are kept for their late samples before being dropped.
RETAIN = 1024


class EndOfHistory(Exception):
    """The code needs a sample of a step that the trace never finished: replay stops there."""

    def __init__(self, step: Hashable, index: int) -> None:
        super().__init__(f"the trace ends at step {step} (it holds no sample {index} for it)")
        self.step = step
        self.index = index


def completion_of(event: dict[str, Any]) -> Completion:
    """The completion a sample event records."""
    return Completion(
        event["text"],
        event["finish"],
        event["tokens_in"],
        event["tokens_out"],
        event["latency"],
        event.get("retries", 0),
    )


@dataclass(slots=True)
class StepTape:
    """One step's recorded samples, and which of them voting has not counted yet."""

    samples: dict[int, dict[str, Any]] = field(default_factory=dict)
    pending: deque[int] = field(default_factory=deque)  # recorded order, not yet counted
    decision: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    segment: int = 0  # the session (0, then one more per resume) that decided it
    decided_now: bool = False  # the replaying code has decided it too
    progress: int = 0  # bumped on every request and count: what held requests watch
    # A speculative run's samples, by the fingerprint of the prompt they answered, until the
    # decision says which prompt was the decided one (the others were discarded, never voted).
    bases: dict[str, list[dict[str, Any]]] | None = None
    last_sample_at: int = -1  # position in the trace of its latest recorded sample

    @property
    def decided(self) -> bool:
        return self.decision is not None


class Tape:
    """Recorded samples by step, read lazily from a trace's events (after its header).

    Reading is lazy so that replaying a million-step trace holds a window of
    it, not all of it: a step's events are read when the step is first asked
    for, and dropped once replay is done with them.
    """

    def __init__(self, events: Iterable[dict[str, Any]], *, lazy: bool = True, name: str = "the trace") -> None:
        self._events: Iterator[dict[str, Any]] = iter(events)
        self.name = name  # for messages: the trace's path
        self.position = 0  # events read so far
        self.decisions = 0  # decision events read so far
        self.last_decision_at = -1  # position of the latest one
        self._steps: dict[Hashable, StepTape | None] = {}  # None: done with, dropped
        self._eof = False
        self.segment = 0
        self.end: dict[str, Any] | None = None
        self.lazy = lazy
        self._retired: deque[Hashable] = deque()
        # Speculative samples no decision counted (their prompt was not the decided one): a
        # replay does not vote them, only adds them to the totals, as the recorded run did.
        self.discarded: list[dict[str, Any]] = []
        self.drafts: list[dict[str, Any]] = []  # drafts (docs/speculation.md#drafts): counted, never voted
        if not lazy:
            while self._pump():
                pass

    @classmethod
    def of_samples(cls, samples: dict[Hashable, list[dict[str, Any]]]) -> Tape:
        """A tape of given samples only (resume: the unfinished steps' samples)."""
        return cls((s for events in samples.values() for s in events), lazy=False)

    # -- reading -------------------------------------------------------------------------

    def _pump(self) -> bool:
        """Read one more event into the tape; False at the end of the trace."""
        if self._eof:
            return False
        event = next(self._events, None)
        if event is None:
            self._eof = True
            return False
        self.position += 1
        kind = event["type"]
        if kind == "resume":
            self.segment += 1
            self.end = None  # an earlier session's end; this one has not ended yet
        elif kind == "end":
            self.end = event
        elif kind in ("sample", "decision", "step_error"):
            self._file(event)
        elif kind == "draft":
            self.drafts.append(event)
        return True

    def _file(self, event: dict[str, Any]) -> None:
        step = event["step"]
        kind = event["type"]
        if kind == "sample" and event.get("discarded"):
            self.discarded.append(event)
            return
        st = self._steps.get(step, ...)
        if kind == "decision":
            self.decisions += 1
            self.last_decision_at = self.position
            if st is None or (st is not ... and st.decision is not None):
                raise TraceError(f"{self.name}: step {step!r} is decided twice (event {self.position + 1})")
        if st is None:
            return  # a late sample of a step replay is done with
        if st is ...:
            st = self._steps[step] = StepTape()
        if kind == "sample" and "basis" in event:
            self._file_speculative(st, event)
        elif kind == "sample":
            index = event["i"]
            if index in st.samples:
                raise TraceError(f"{self.name}: step {step!r}: sample {index} is recorded twice")
            st.samples[index] = event
            st.pending.append(index)
            st.last_sample_at = self.position
        elif kind == "decision":
            st.decision, st.segment = event, self.segment
            if st.bases is not None:
                for basis, events in st.bases.items():
                    if basis == event.get("prompt"):
                        for e in events:
                            self._file_sample(st, e)
                    else:
                        self.discarded.extend(events)
                st.bases = None
        else:
            st.error = event

    def _file_sample(self, st: StepTape, event: dict[str, Any]) -> None:
        index = event["i"]
        if index in st.samples:
            raise TraceError(f"step {event['step']}: sample {index} is recorded twice")
        st.samples[index] = event
        st.pending.append(index)

    def _file_speculative(self, st: StepTape, event: dict[str, Any]) -> None:
        """A sample that says which prompt it answered: voted only if that is the decided prompt."""
        if st.decision is None:
            if st.bases is None:
                st.bases = {}
            st.bases.setdefault(event["basis"], []).append(event)
        elif event["basis"] == st.decision.get("prompt"):
            self._file_sample(st, event)  # a late sample of the decided prompt
        else:
            self.discarded.append(event)

    def read_to_end(self) -> dict[str, Any] | None:
        """Read the rest of the trace; return its last `end` event, if any."""
        while self._pump():
            pass
        return self.end

    def step(self, node: Hashable) -> StepTape | None:
        """The tape of `node`, read until its decision (or the end of the trace)."""
        st = self._steps.get(node, ...)
        while st is not None and (st is ... or not st.decided) and self._pump():
            st = self._steps.get(node, ...)
        return None if st is ... else st

    def get(self, node: Hashable) -> StepTape | None:
        """The tape of `node` as read so far (no reading ahead)."""
        return self._steps.get(node)

    def late(self, node: Hashable, index: int) -> dict[str, Any] | None:
        """A sample of a decided step recorded after its decision, if the trace has it.

        Read ahead only to the end of the session that decided the step: a
        sample still in flight when that session died was never recorded.
        """
        st = self._steps.get(node)
        while st is not None and index not in st.samples and self.segment <= st.segment and self._pump():
            pass
        return st.samples.get(index) if st is not None else None

    def drop(self, node: Hashable) -> None:
        """Forget a step once replay is done with it (its later events are ignored)."""
        if self.lazy:
            self._steps[node] = None

    def steps(self) -> dict[Hashable, StepTape]:
        return {k: v for k, v in self._steps.items() if v is not None}

    # -- turns ---------------------------------------------------------------------------

    def delivered(self, node: Hashable, index: int) -> None:
        """Voting counted sample `index` of `node`: the next recorded one may go."""
        st = self._steps.get(node)
        if st is None:
            return
        if st.pending and st.pending[0] == index:
            st.pending.popleft()
        elif index in st.pending:
            st.pending.remove(index)
        st.progress += 1

    def decided(self, node: Hashable) -> None:
        """The replaying code decided `node`; its tape is dropped a while later.

        Not at once: samples launched in the deciding round may only now be
        asked for (they are late), and must still find their recording.
        """
        st = self._steps.get(node)
        if st is None:
            return
        st.decided_now = True
        st.progress += 1
        self._retired.append(node)
        if len(self._retired) > RETAIN:
            self.drop(self._retired.popleft())

    async def wait(self, st: StepTape, ready: Callable[[], bool]) -> bool:
        """Wait until `ready()`; False if the step stops making progress first."""
        idle, seen = 0, st.progress
        while not ready():
            await anyio.lowlevel.checkpoint()
            if st.progress != seen:
                idle, seen = 0, st.progress
            else:
                idle += 1
                if idle > PATIENCE:
                    return False
        return True


class ReplayBackend:
    """Serves recorded samples in recorded order; anything else goes to `fallback`, if any.

    strict (replay): a recorded sample asked for out of its turn for good, or a
    sample the trace lacks at a decided step, is a `TraceMismatch`; a sample
    the trace lacks at an unfinished step is the `EndOfHistory`. Out of turn
    for good without strict (resume): served anyway, the order is then lost.
    """

    def __init__(self, tape: Tape, model: str, *, fallback: Backend | None = None) -> None:
        self.tape = tape
        self.model = model
        self.fallback = fallback
        self.strict = fallback is None
        # An instant fallback keeps the microagent's fast in-order path; replay
        # always takes the concurrent path, where arrival order is ours to set.
        self.instant = bool(getattr(fallback, "instant", False))
        self.served = 0

    async def complete(self, request: Request) -> Completion:
        node, index = request.step, request.sample
        st = self.tape.step(node) if self.strict else self.tape.get(node)
        if st is not None:
            st.progress += 1
            event = st.samples.get(index)
            if event is None and self.strict and st.decided:
                event = self.tape.late(node, index)
            if event is not None:
                return await self._recorded(node, index, st, event)
        if self.fallback is None:
            return await self._missing(node, index, st)
        if st is not None and st.pending:
            # Recorded samples first, as the interrupted run saw them; then real ones.
            await self.tape.wait(st, lambda: not st.pending)
        return await self.fallback.complete(request)

    async def _recorded(self, node: Hashable, index: int, st: StepTape, event: dict[str, Any]) -> Completion:
        if index in st.pending:
            in_turn = await self.tape.wait(st, lambda: index not in st.pending or st.pending[0] == index)
            if not in_turn and self.strict:
                raise TraceMismatch(
                    node,
                    f"sample {st.pending[0]} arriving before sample {index}",
                    f"sample {st.pending[0]} never asked for",
                )
        self.served += 1
        return completion_of(event)

    async def _missing(self, node: Hashable, index: int, st: StepTape | None) -> Completion:
        # Lost in flight when the recorded run died, or never drawn by it? If the
        # code decides the step without it, it was a late sample: nothing depends on it.
        if st is not None and await self.tape.wait(st, lambda: st.decided_now):
            return LOST
        if st is None or not st.decided:
            raise EndOfHistory(node, index)
        drawn = len(st.samples)
        raise TraceMismatch(
            node, f"{drawn} sample{'s' if drawn != 1 else ''} drawn", f"the code asked for sample {index} to decide"
        )

    async def aclose(self) -> None:
        if self.fallback is not None:
            await self.fallback.aclose()
