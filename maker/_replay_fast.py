"""Replay of a plain chain, in one tight loop: the same checks, without the runtime around them.

`maker replay` normally re-executes the run with the whole runtime (planner,
scheduler, async microagent, a backend that hands recorded samples back one
turn at a time). For a chain run without speculation or resumes (a Hanoi
run, the common million-step case) every step runs alone, so its samples
can be fed straight to the same ballot (`_Ballot`: the vote loop's own
launch, judge, count and close) in recorded order, by the same verifier that
checks every sample's vote and timing and every decision field against the
trace. Nothing waits on an event loop, which is most of the full replay's time.

The loop only ever says "reproduced". Anything else (a mismatch, a step the
trace does not finish, a hole, a resume, an error) sends the trace to the
full replay, which diagnoses it with the message it always gave: the fast
loop never changes what replay concludes, only how soon it gets there.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

from maker._history import settings_of
from maker._microagent import _Ballot
from maker._recorder import Progress, Totals
from maker._replay import ReplayReport, _finish, _Verifier
from maker._steps import step_voting
from maker.backends._replay import Tape, completion_of
from maker.errors import MakerError
from maker.tasks._protocol import Chain, Inputs, LLMStep, Messages, Task
from maker.traces._reader_lean import read_lean
from maker.traces._schema import prompt_digest
from maker.voting import ParseError, Voting


class Fallback(Exception):
    """This trace needs the full replay (which will say what, if anything, is wrong)."""


class _Memo:
    """One step's parser and vote key, each reply text judged once.

    A step's samples often repeat the same reply word for word (a model that
    knows the answer says it the same way); the strict parser is a function
    of the text, so a repeated text has the same answer, key or format error.
    Red flags on length and the user's flags still see every sample.
    """

    __slots__ = ("_keys", "_parsed", "step")

    def __init__(self, step: LLMStep) -> None:
        self.step = step
        self._parsed: dict[str, Any] = {}  # text -> answer, or the ParseError it raised
        self._keys: dict[int, str] = {}  # id(answer) -> key; the answers stay alive in _parsed

    def prompt(self, inputs: Inputs) -> Messages:
        return self.step.prompt(inputs)

    def expected(self, inputs: Inputs) -> Any | None:
        return self.step.expected(inputs)

    def parse(self, text: str) -> Any:
        try:
            answer = self._parsed[text]
        except KeyError:
            try:
                answer = self.step.parse(text)
            except ParseError as exc:
                answer = exc
            self._parsed[text] = answer
        if isinstance(answer, ParseError):
            raise answer.with_traceback(None)
        return answer

    def vote_key(self, answer: Any) -> str:
        key = self._keys.get(id(answer))
        if key is None:
            key = self._keys[id(answer)] = self.step.vote_key(answer)
        return key


class _Window(dict[Hashable, Any]):
    """`Tape._steps` for a chain: the steps it is done with, 0 up to `done`, held as one number.

    A tape remembers every step it has dropped (so that a late sample of one is
    ignored and a second decision of one is refused), which for a million-step
    chain is a million entries. A chain's steps are dropped in order, so here
    they are `done`: memory stays flat, and every lookup answers as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.done = 0  # every step 0 <= s < done is dropped

    def get(self, key: Hashable, default: Any = None) -> Any:
        if type(key) is int and 0 <= key < self.done:
            return None
        return dict.get(self, key, default)

    def __setitem__(self, key: Hashable, value: Any) -> None:
        if value is None and key == self.done and type(key) is int:
            dict.pop(self, key, None)
            self.done += 1
        else:
            dict.__setitem__(self, key, value)

    def __getitem__(self, key: Hashable) -> Any:
        if type(key) is int and 0 <= key < self.done:
            return None
        return dict.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        return (type(key) is int and 0 <= key < self.done) or dict.__contains__(self, key)


class OnceProgress:
    """Progress shown once across a fast attempt and a full replay after it: one bar, not two."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.started = False

    def start(self, total_steps: int) -> None:
        if not self.started:
            self.started = True
            self.inner.start(total_steps)

    def update(self, totals: Totals) -> None:
        self.inner.update(totals)

    def stop(self) -> None:
        """Deferred to `close`: a full replay may still follow."""

    def close(self) -> None:
        if self.started:
            self.inner.stop()


def fast_chain(header: dict[str, Any], task: Task, independent: Any) -> Chain | None:
    """The chain to replay in the tight loop, or None when this trace needs the full runtime."""
    if independent is not None or header.get("mode", "sequential") != "sequential" or header.get("shard"):
        return None
    if settings_of(header).speculate:
        return None
    plan = task.plan()
    if not isinstance(plan, Chain) or not isinstance(plan.step, LLMStep):
        return None
    return plan


def replay_chain(
    path: Path, task: Task, chain: Chain, voting: Voting, model: str, progress: Progress | None
) -> ReplayReport:
    """Replay a chain trace step by step; raises `Fallback` unless every check passes."""
    events = read_lean(path)  # lean samples and decisions read like dicts, and have every field replay reads
    next(events)
    tape = Tape(events, name=str(path))
    tape._steps = _Window()  # a chain's steps are dropped in order: remember how far, not each one
    verifier = _Verifier(tape, progress)
    report = ReplayReport(path, task.name, model, 0, 0, chain.length, None, "")
    step = chain.step
    voting = step_voting(step, None, voting)
    if progress is not None:
        progress.start(chain.length)
    try:
        answer = chain.first
        for node in range(chain.length):
            answer = _step(node, step, {"prev": answer}, voting, tape, verifier)
        outputs: dict[Hashable, Any] = {chain.length - 1: answer} if chain.length else {}
        report.outcome = "solved" if task.solved(outputs, verifier.totals.errors) else "failed"
        _finish(report, verifier, tape)
    except (MakerError, Fallback):
        raise Fallback from None
    except Exception as exc:  # the task's own code raised: the full replay reports it as the run did
        raise Fallback from exc
    if not report.reproduced or tape.segment or verifier.unrecorded:
        raise Fallback
    return report


def _step(
    node: Hashable, step: LLMStep, inputs: dict[str, Any], voting: Voting, tape: Tape, verifier: _Verifier
) -> Any:
    st = tape.step(node)
    if st is None or st.decision is None or st.error is not None or st.bases is not None or tape.segment:
        raise Fallback  # not decided in one session: a resume, an error, the history's end
    memo = _Memo(step)
    ballot = _Ballot(node, memo, voting, verifier)
    ballot.prompt = prompt_digest(step.prompt(inputs))
    out: set[int] = set()  # launched, not yet counted
    winner = None
    pending = st.pending  # recorded order; the verifier pops each sample as it is counted
    while winner is None:
        out.update(ballot.launch())
        if not pending or pending[0] not in out:
            raise Fallback  # the samples run out, or the next one recorded was never asked for
        index = pending[0]
        out.discard(index)
        winner = ballot.count(index, completion_of(st.samples[index]))
    decision = ballot.close(winner)
    _late(ballot, st.samples, pending, out)  # recorded before the decision line
    while out:  # still out at the decision: recorded later in the session, or lost in flight
        index = min(out)
        if tape.late(node, index) is None:
            out.discard(index)
        _late(ballot, st.samples, pending, out)
    truth = step.expected(inputs)
    verifier.decision(decision, None if truth is None else step.vote_key(truth))
    # The tape keeps a decided step a while, to refuse a sample recorded twice: the indices
    # are enough for that, and the events (their reply texts) need not wait with them.
    st.samples = dict.fromkeys(st.samples)  # type: ignore[assignment]
    return decision.answer


def _late(ballot: _Ballot, samples: dict[int, dict[str, Any]], pending: Any, out: set[int]) -> None:
    """Judge the late samples read so far, in recorded order; each must have been launched."""
    while pending:
        index = pending[0]
        if index not in out:
            raise Fallback
        out.discard(index)
        ballot.late(index, completion_of(samples[index]))
