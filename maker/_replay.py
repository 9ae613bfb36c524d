"""Exact replay: run the code again against a trace's recorded samples, with no model.

The run is re-executed by the same runtime that recorded it (planner,
scheduler, microagent, voting, the task's prompts, parser and vote keys); only
the backend differs: it answers each request with the recorded sample, in the
recorded order, and cannot reach a model at all. A recorder checks every
sample's vote and every decision against the trace as they happen and stops
at the first divergence with a `TraceMismatch` naming the step, what the trace
recorded and what the code decided: the durable-execution promise that code
which no longer matches its history says so.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from maker._history import independent_of, settings_of, task_of, voting_of
from maker._independent import HEADER_FIELD, recorded_steps
from maker._recorder import Decision, Progress, Recorder
from maker._runner import _plan_for, execute_plan
from maker._shards import Shard
from maker.backends._protocol import Completion
from maker.backends._replay import LOST, EndOfHistory, ReplayBackend, Tape, completion_of
from maker.errors import ConfigError, RunError, TraceError, TraceMismatch, VoteUndecided
from maker.tasks._protocol import StepGraph, Task
from maker.traces._reader import _Lines, _parse, read_events
from maker.voting import Tally, Verdict, Voting

if TYPE_CHECKING:
    from maker._replay_fast import OnceProgress

FINISHED = ("solved", "failed", "measured")

# Replay has no network to protect: every recorded sample may be "in flight" at
# once, so that none waits for a slot while an earlier one waits for its turn.
UNLIMITED = 1 << 30


@dataclass(slots=True)
class ReplayReport:
    """What an exact replay found. `reproduced` is True when every decision matched."""

    trace: Path
    task: str
    model: str
    steps: int  # decisions replayed and found equal to the trace's
    samples: int  # recorded samples voting counted again
    total_steps: int
    recorded_outcome: str | None  # the trace's last `end` event, if it has one
    outcome: str  # the replay's: solved, failed, undecided, or "history ends" (the trace stops early)
    stopped_at: Hashable | None = None  # the step the history ends at, if it does
    totals_match: bool | None = None  # vs the trace's end event; None without one
    totals_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reproduced: bool = True
    # Decided from the trace's samples where the trace lost the decision line itself
    # (the process died between the last sample and its decision): checked against nothing.
    unrecorded: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["trace"] = str(self.trace)
        data["totals_differences"] = {k: list(v) for k, v in self.totals_differences.items()}
        return data


class _Verifier(Recorder):
    """A recorder that checks what the code does against the trace instead of writing it."""

    def __init__(self, tape: Tape, progress: Progress | None) -> None:
        super().__init__(None, progress)
        self.tape = tape
        self.unrecorded = 0
        self.matched = 0  # decisions compared with the trace's and found equal
        self.holes: list[tuple[Hashable, int]] = []  # (step decided without a decision line, its last sample)

    def sample(
        self,
        step: Hashable,
        index: int,
        temperature: float,
        c: Completion,
        v: Verdict,
        late: bool,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if c is LOST:
            return
        st = self.tape.get(step)
        recorded = st.samples[index] if st is not None else {}
        if recorded.get("key") != v.key:
            raise TraceMismatch(step, f"sample {index} {_vote(recorded.get('key'))}", f"sample {index} {_vote(v.key)}")
        if bool(recorded.get("late")) != late:
            raise TraceMismatch(
                step, f"sample {index} {_timing(recorded.get('late'))}", f"sample {index} {_timing(late)}"
            )
        super().sample(step, index, temperature, c, v, late, extra)
        self.tape.delivered(step, index)

    def decision(self, d: Decision, truth: str | None) -> None:
        st = self.tape.get(d.step)
        if st is None and d.samples == 0:
            st = self.tape.step(d.step)  # decided without a sample (a judged vote's lone candidate): read it now
        if st is not None and st.decision is not None:
            _compare(
                d.step,
                st.decision,
                {
                    "winner": d.winner,
                    "votes": d.votes,
                    "samples": d.samples,
                    "flagged": d.flagged,
                    "rounds": d.rounds,
                    "truth": truth,
                    "answer": _as_recorded(d.answer, st.decision.get("answer")),
                    "prompt": d.prompt,
                },
            )
            self.matched += 1
        else:
            self.unrecorded += 1
            self.holes.append((d.step, st.last_sample_at if st is not None else -1))
        super().decision(d, truth)
        self.tape.decided(d.step)

    def python_step(self, step: Hashable, output: Any) -> None:
        st = self.tape.step(step)
        if st is not None and st.decision is not None:
            _compare(step, st.decision, {"answer": _plain(output)})
            self.matched += 1
        super().python_step(step, output)
        self.tape.decided(step)

    def step_error(self, step: Hashable, error: Exception, tally: Tally | None = None, samples: int = 0) -> None:
        st = self.tape.step(step)
        recorded = st.decision if st is not None else None
        if recorded is not None:
            raise TraceMismatch(step, f"decided {recorded.get('winner')}", f"{type(error).__name__}: {error}")


def _compare(step: Hashable, recorded: dict[str, Any], decided: dict[str, Any]) -> None:
    for name, value in decided.items():
        if name in recorded and recorded[name] != value:
            raise TraceMismatch(step, f"{name} {_show(recorded[name])}", f"{name} {_show(value)}")


def _as_recorded(value: Any, recorded: Any) -> Any:
    """`value` as the trace stores it, for comparing with `recorded` (what the trace holds).

    Equal as they are, there is nothing to convert: the JSON round trip (one
    dumps and one loads per decision, a tenth of a chain replay's time) turns
    tuples into lists and keys into strings, which can make unequal values
    equal, not equal ones unequal, for the JSON values answers are.
    """
    return value if value == recorded else _plain(value)


def _plain(value: Any) -> Any:
    """A value as the trace stores it (JSON): tuples become lists, and so on."""
    return json.loads(json.dumps(value))


def _show(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


def _vote(key: str | None) -> str:
    return "red-flagged" if key is None else f"voting {_show(key)}"


def _timing(late: Any) -> str:
    return "late (after the decision)" if late else "counted (before the decision)"


async def areplay(
    trace: str | Path,
    *,
    task: Task | StepGraph | None = None,
    voting: Voting | None = None,
    independent: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> ReplayReport:
    """Re-execute the run a trace recorded, from its samples alone, and check every decision.

    Raises `TraceMismatch` at the first step where the code decides differently
    from the trace. A trace that stops early (an interrupted run) replays up to
    where its history ends; the report says where.
    task / voting / independent: only for what a header cannot rebuild (a
        custom DAG, user red flags, the list of independent steps).
    """
    path = Path(trace)
    events = read_events(path)
    header = next(events)
    task = task_of(header, task)
    fast = _try_fast(path, header, task, voting, independent, progress)
    if isinstance(fast, ReplayReport):
        return fast
    try:
        return await _replay_full(path, events, header, task, voting, independent, fast)
    finally:
        if fast is not None:
            fast.close()


def _try_fast(
    path: Path,
    header: dict[str, Any],
    task: Task,
    voting: Voting | None,
    independent: Sequence[int] | None,
    progress: Progress | None,
) -> ReplayReport | OnceProgress | None:
    """The tight-loop replay's report, or the progress the full replay goes on with."""
    from maker._replay_fast import Fallback, OnceProgress, fast_chain, replay_chain  # it builds on this module

    chain = fast_chain(header, task, independent)
    if chain is None:
        return None if progress is None else OnceProgress(progress)
    once = None if progress is None else OnceProgress(progress)
    try:
        # Synchronous on purpose: nothing else runs in this event loop, and Ctrl-C stops it at once.
        report = replay_chain(path, task, chain, voting_of(header, voting), header["model"], once)
    except Fallback:
        return once
    if once is not None:
        once.close()
    return report


async def _replay_full(
    path: Path,
    events: Iterator[dict[str, Any]],
    header: dict[str, Any],
    task: Task,
    voting: Voting | None,
    independent: Sequence[int] | None,
    progress: Progress | None,
) -> ReplayReport:
    """Re-execute the run with the whole runtime (see the module's docstring)."""
    steps = independent_of(header, task, independent if independent is not None else _legacy_steps(path, header, task))
    voting = voting_of(header, voting)
    voting = replace(voting, max_samples_per_step=_largest_cap(path, voting.max_samples_per_step))
    recorded = settings_of(header)
    # Without speculation: a speculative run's decisions are those of its adopted ballots, which
    # the tape hands out as if they had been drawn from the decided inputs (discarded ones aside).
    settings = replace(
        recorded,
        concurrency=UNLIMITED,
        max_parallel_steps=recorded.step_limit,
        speculate=0,
        draft=0,
        draft_model=None,
    )
    plan = _plan_for(task, settings, steps, Shard.of_header(header))
    tape = Tape(events, name=str(path))
    backend = ReplayBackend(tape, header["model"])
    verifier = _Verifier(tape, progress)
    report = ReplayReport(path, task.name, header["model"], 0, 0, plan.total, None, "")
    try:
        result = await execute_plan(
            task,
            plan,
            backend=backend,
            voting=voting,
            settings=settings,
            recorder=verifier,
            run_id=header.get("run_id", ""),
        )
        result.raise_for_outcome()  # a run error is compared with the trace's, below
        report.outcome = result.outcome
    except EndOfHistory as end:
        report.outcome, report.stopped_at = "history ends", end.step
    except TraceMismatch:
        raise
    except RunError as error:
        # Reproduced only if the trace stopped at the same step with the same error.
        st = tape.step(error.step)
        recorded_error = st.error if st is not None else None
        if recorded_error is None or recorded_error.get("error") != type(error).__name__:
            raise TraceMismatch(error.step, "no error", f"{type(error).__name__}: {error}") from None
        report.outcome = "undecided" if isinstance(error, VoteUndecided) else "error"
        report.stopped_at = error.step
    _finish(report, verifier, tape)
    return report


def _largest_cap(path: Path, cap: int) -> int:
    """The largest per-step sample cap any session ran with.

    Resume may raise the cap (to get a step past it); a cap only matters when a
    step reaches it, so the largest one decides every step as its session did,
    and a step stopped at a smaller cap and continued later replays as continued.
    Found by a quick scan for resume lines, without parsing the others.
    """
    for raw in _Lines(path):
        if raw.startswith(b'{"type":"resume"'):
            # A torn or damaged line is skipped here: the reader reports it (or drops a
            # torn last line) when replay reaches it; only a well-formed cap counts.
            event = _parse(raw)
            more = event.get("max_samples") if event is not None else None
            if type(more) is int and more >= 1:
                cap = max(cap, more)
    return cap


def _legacy_steps(path: Path, header: dict[str, Any], task: Task) -> Sequence[int] | None:
    """The steps of an independent-steps trace from before the header recorded them (None: not needed).

    The CLI's choice (count and seed) when the trace's steps are all among it;
    else, a run given its steps from Python, the steps in the order the trace
    first has them.
    """
    if header.get("mode") != "independent" or HEADER_FIELD in header:
        return None
    seen = _seen_steps(path)
    try:
        chosen = recorded_steps(header, task)
    except (TraceError, ConfigError):
        return seen
    return chosen if chosen is not None and set(seen) <= set(chosen) else seen


def _seen_steps(path: Path) -> list[int]:
    """An independent-steps trace's steps, in the order they first appear in it."""
    seen: dict[int, None] = {}
    for event in read_events(path):
        if event["type"] in ("sample", "decision", "step_error"):
            seen.setdefault(event["step"], None)
    return list(seen)


def _finish(report: ReplayReport, verifier: _Verifier, tape: Tape) -> None:
    end = tape.read_to_end()
    _check_complete(report, verifier, tape, end)
    totals = verifier.totals
    counter = Recorder(None, totals=totals)  # discarded speculative samples: paid for, never voted
    for e in tape.drafts:  # drafts decide nothing; they are counted as the run counted them
        counter.draft(e, write=False)
    for e in tape.discarded:
        counter.sample(
            e["step"], e["i"], e["temperature"], completion_of(e), Verdict(e["key"], flag=e.get("flag")), e["late"]
        )
    report.steps, report.samples = totals.steps - verifier.unrecorded, totals.samples
    report.unrecorded = verifier.unrecorded
    if end is None:
        return
    report.recorded_outcome = end.get("outcome")
    if report.outcome == "history ends" or report.outcome != report.recorded_outcome:
        if report.recorded_outcome in FINISHED:
            report.reproduced = False  # the trace says it finished one way, its samples say otherwise
        return  # the replay stopped where the recording did not; totals cannot match
    replayed, recorded = totals.as_dict(), end.get("totals") or {}
    # Every total the trace's last `end` line has (all of them are counts, none is wall time),
    # but `lost`: requests cancelled in flight left no sample, so the end line is their only record.
    report.totals_differences = {
        k: (recorded[k], replayed[k]) for k in replayed if k in recorded and recorded[k] != replayed[k] and k != "lost"
    }
    report.totals_match = not report.totals_differences
    if not report.totals_match:
        report.reproduced = False


def _check_complete(report: ReplayReport, verifier: _Verifier, tape: Tape, end: dict[str, Any] | None) -> None:
    """The trace holds the run the plan describes: no hole, no step twice, no step the plan lacks.

    A decision line may be missing only at the very end (the process died
    between a step's last sample and its decision): a step decided from its
    samples alone must have no decision recorded after them.
    """
    for step, at in verifier.holes:
        if tape.last_decision_at > at:
            raise TraceError(
                f"{tape.name}: step {step!r} has no decision line, but steps recorded after it do: "
                "the trace has a hole (a line was removed)"
            )
    complete = report.outcome in FINISHED
    if complete and tape.decisions > verifier.matched:
        extra = next(
            (step for step, st in tape.steps().items() if st.decision is not None and not st.decided_now), None
        )
        raise TraceError(
            f"{tape.name}: the trace decides {tape.decisions - verifier.matched} step(s) the run does not have"
            + (f" (step {extra!r})" if extra is not None else "")
        )
    if end is not None and end.get("outcome") in FINISHED and report.outcome == "history ends":
        raise TraceError(
            f"{tape.name}: the trace's end line says {end.get('outcome')!r}, but its decisions stop at step "
            f"{report.stopped_at!r} of {report.total_steps}"
        )


def replay(trace: str | Path, **options: Any) -> ReplayReport:
    """Blocking `areplay`."""
    return anyio.run(lambda: areplay(trace, **options))
