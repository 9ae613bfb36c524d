"""Speculative execution: start a step from its predecessor's leading candidate, before the vote decides.

A dependent chain waits one model latency per step: a step's prompt is built
from its predecessor's decided answer. Here a step starts as soon as its
predecessor has a leading candidate (its first valid vote, or a new leader),
from the prompt that candidate's answer builds; up to `speculate` steps ahead
of the decided ones. Each such start is a *run*: one ballot on one prompt,
keyed by the step and the prompt's fingerprint (`prompt_digest`), exactly the
ballot a non-speculative run would hold on that prompt, only started earlier.

When a step's inputs are all decided, the run whose prompt they build is
adopted (its samples count as if launched then) and every other run of the
step is discarded: it launches nothing more, what it already sent lands and
is recorded and paid for, marked discarded. A step is therefore decided only
by votes on the prompt built from its decided inputs, and its decision is the
one a non-speculative run reaches from the same samples.

A discarded run's own successors are not stopped: their prompts may still turn
out right (two different predictions can build the same next prompt). They
spawn nothing further and finish their ballot at most; their own step's
decision settles them.

With drafts (`maker._drafts`), a run may also carry a drafted prediction of
its own answer: its successor then starts from that prediction, before any
of its samples lands, and so on down the draft, up to one draft's length of
undecided steps ahead. A drafted prediction is a prediction like a leader: the
successor's ballot is adopted only if the decided inputs build its prompt.

Python steps are not speculated: they run once their inputs are decided.
Every sample of a speculative session carries `basis` (the fingerprint of
the prompt it answered), so resume can reuse recorded samples by prompt and
replay can tell the voted ones from the discarded.
"""

from __future__ import annotations

import inspect
import math
from collections import ChainMap, OrderedDict, deque
from collections.abc import Hashable, Mapping
from contextlib import suppress
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from maker._drafts import Draft, DraftableStep, Drafter
from maker._microagent import Microagent, _Ballot
from maker._planner import Plan
from maker._recorder import Decision, Recorder
from maker._steps import step_voting
from maker.backends._protocol import Completion
from maker.backends._registry import open_backend
from maker.backends._replay import completion_of
from maker.errors import MakerError, StepFailed, VoteUndecided
from maker.tasks._protocol import LLMStep, Messages
from maker.traces._schema import prompt_digest
from maker.voting import Tally, Verdict, Voting

_WAKE = -1  # a message to a run's vote loop that is not a sample: look again
_DEAD = "\0discarded"  # what `_decide` returns for a run discarded before it decided


class Reuse:
    """Samples a crashed speculative session recorded for steps it never decided, by (step, prompt).

    Resume serves them again, free and in their recorded order, to the run
    that asks for the same sample of the same prompt. Samples marked discarded
    are not offered: replay does not count them for any decision.
    """

    def __init__(
        self, unfinished: Mapping[Hashable, list[dict[str, Any]]], drafts: list[dict[str, Any]] | None = None
    ) -> None:
        self.drafts = drafts or []  # recorded drafts, served again by the drafter (see maker._drafts)
        self._samples: dict[tuple[Hashable, str], dict[int, tuple[int, dict[str, Any]]]] = {}
        for step, events in unfinished.items():
            for position, event in enumerate(events):
                basis = event.get("basis")
                if basis is None or event.get("discarded"):
                    continue
                self._samples.setdefault((step, basis), {})[event["i"]] = (position, event)
        self.served = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._samples.values())

    def take(self, step: Hashable, basis: str, indices: range) -> list[tuple[int, Completion]]:
        """The recorded samples among `indices` of this prompt, in recorded order; they are handed out once."""
        recorded = self._samples.get((step, basis))
        if not recorded:
            return []
        found = sorted(((*recorded.pop(i), i) for i in indices if i in recorded), key=lambda t: t[0])
        self.served += len(found)
        return [(i, completion_of(event)) for _, event, i in found]


class _Run:
    """One ballot on one prompt of one step."""

    __slots__ = (
        "anchor",
        "assumed",
        "ballot",
        "children",
        "dead",
        "decision",
        "digest",
        "draft_child",
        "drafting",
        "failed",
        "inputs",
        "leader",
        "messages",
        "node",
        "parent",
        "predicted",
        "real",
        "receive",
        "reused",
        "send",
        "speculative",
        "started",
    )

    def __init__(
        self, node: Hashable, inputs: dict[str, Any], messages: Messages, digest: str, parent: _Run | None
    ) -> None:
        self.node, self.inputs, self.messages, self.digest = node, inputs, messages, digest
        self.parent = parent  # the run whose leading answer this prompt was built from (None: decided inputs)
        self.real = parent is None  # built from decided inputs (from the start, or adopted since)
        self.speculative = parent is not None  # started before its inputs were decided
        self.assumed: str | None = None  # the parent's candidate it assumed
        self.children: list[_Run] = []
        self.dead = False
        self.leader: str | None = None
        self.decision: Decision | None = None
        self.failed: BaseException | None = None
        self.reused: set[int] = set()
        self.started = False  # its ballot is running (a drafted run may wait for room first)
        self.predicted: tuple[Draft, int] | None = None  # a draft's prediction of its answer: (draft, position)
        self.draft_child: _Run | None = None  # its successor built from that prediction
        self.drafting = False  # a draft from its inputs was asked for
        self.anchor = False  # built from a draft's last answer: the next draft starts here
        self.ballot: _Ballot
        self.send: MemoryObjectSendStream[tuple[int, Completion | None]]
        self.receive: MemoryObjectReceiveStream[tuple[int, Completion | None]]

    def depth(self) -> int:
        """Undecided steps between this run and the decided ones (0: built from decided inputs)."""
        n, run = 0, self
        while not run.real and run.parent is not None:
            n, run = n + 1, run.parent
        return n

    def open_depth(self) -> int:
        """Undecided steps between this run and the decided ones whose ballots are still open.

        A run already decided on its predicted prompt waits only for its inputs: it
        draws nothing more, so it does not use up the speculation depth.
        """
        n, run = 0, self
        while not run.real and run.parent is not None:
            n, run = n + (run.decision is None), run.parent
        return n

    def alive(self) -> bool:
        """Worth speculating from: nothing it was built on is discarded, and each prediction still leads."""
        run = self
        while not run.real:
            parent = run.parent
            if run.dead or parent is None or parent.leader != run.assumed:
                return False
            run = parent
        return not run.dead

    def plausible(self) -> bool:
        """Nothing it was built on is discarded, and no vote so far contradicts a prediction it assumed."""
        run = self
        while not run.real:
            parent = run.parent
            if run.dead or parent is None:
                return False
            seen = parent.decision.winner if parent.decision is not None else parent.leader
            if seen is not None and seen != run.assumed:
                return False
            run = parent
        return not run.dead


class _Log:
    """A run's recorder as its ballot sees it: samples go to the trace with their prompt's fingerprint."""

    __slots__ = ("run", "spec")

    def __init__(self, spec: Speculator, run: _Run) -> None:
        self.spec, self.run = spec, run

    def sample(self, step: Hashable, index: int, temperature: float, c: Completion, v: Verdict, late: bool) -> None:
        self.spec.record(self.run, index, temperature, c, v, late)

    def step_error(self, step: Hashable, error: Exception, tally: Tally | None = None, samples: int = 0) -> None:
        # A speculative run's failure is its own until it is adopted (see Speculator._adopt).
        if self.run.real:
            self.spec.recorder.step_error(step, error, tally, samples)


class Speculator:
    """Runs a plan with speculation `depth` steps ahead (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        agent: Microagent,
        recorder: Recorder,
        voting: Voting,
        *,
        depth: int,
        max_steps: int,
        reuse: Reuse | None = None,
        drafter: Drafter | None = None,
    ) -> None:
        self.plan, self.agent, self.recorder, self.voting = plan, agent, recorder, voting
        self.graph = plan.graph
        self.depth, self.max_steps, self.reuse = depth, max_steps, reuse
        self.outputs: dict[Hashable, Any] = {}
        self.waiting = {n: self.graph.in_degree(n) for n in self.graph.nodes}
        self.unread = {n: self.graph.out_degree(n) for n in self.graph.nodes}
        self.runs: dict[Hashable, dict[str, _Run]] = {}
        self.queue: deque[Hashable] = deque()  # ready steps waiting for a slot
        self.live = 0  # steps in progress from decided inputs (bounded by max_steps)
        self.commits: deque[_Run] = deque()
        self.committing = False
        self.drafter = drafter
        # Drafted ballots start at most one draft's length of undecided steps ahead: a wrong
        # drafted answer wastes only the ballots started on it, and a draft's verification
        # takes about one model latency, the time a pipelined next draft needs to arrive.
        self.horizon = drafter.m if drafter is not None else 0
        self.covered: dict[Hashable, int] = {}  # steps an outstanding draft will predict
        self.settled: OrderedDict[Hashable, _Run] = OrderedDict()  # recently committed runs (drafts walk them)
        self.tg: TaskGroup

    async def run(self) -> dict[Hashable, Any]:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for node in [n for n, d in self.waiting.items() if d == 0]:
                self._ready(node)
        return self.outputs

    # -- steps whose inputs are decided ------------------------------------------------------

    def _ready(self, node: Hashable) -> None:
        if self.live >= self.max_steps:
            self.queue.append(node)
            return
        self.live += 1
        inputs = self.plan.inputs(node, self.outputs)
        for pred in list(self.graph.predecessors(node)):
            self.unread[pred] -= 1
            if self.unread[pred] == 0:
                self._forget(pred)
        data = self.graph.nodes[node]
        step = data["step"]
        if not isinstance(step, LLMStep):
            self.tg.start_soon(self._python, node, step, inputs)
            return
        try:
            messages = step.prompt(inputs)
        except Exception as exc:
            raise _failed(self.recorder, node, exc) from exc
        digest = prompt_digest(messages)
        runs = self.runs.get(node, {})
        chosen = runs.pop(digest, None)
        for other in runs.values():
            self._discard(other)
        self.runs[node] = {}
        if chosen is None:
            self._wish_draft(self._start(node, inputs, messages, digest, None))
        else:
            self._adopt(chosen)

    def _adopt(self, run: _Run) -> None:
        """Its inputs are decided and build its prompt: what it drew counts, as if launched now."""
        run.real, run.parent = True, None
        self.runs[run.node] = {run.digest: run}
        if not run.started:
            self._begin(run)
        if run.failed is not None:
            error = run.failed
            if not isinstance(error, MakerError):
                raise _failed(self.recorder, run.node, cast(Exception, error)) from error
            tally = run.ballot.tally
            self.recorder.step_error(run.node, cast(Exception, error), tally, run.ballot.launched)
            raise error
        if run.decision is not None:
            self._commit(run)
            return
        self._wish_draft(run)
        self._spread(run)  # it and its descendants are one step closer to the decided ones

    def _spread(self, run: _Run) -> None:
        """Speculate from `run` and from every run built on it, as far as the depth now allows."""
        todo = [run]
        while todo:
            r = todo.pop()
            self._speculate(r)
            if self.drafter is not None and not r.dead:
                self._follow_draft(r)
            todo.extend(r.children)

    async def _python(self, node: Hashable, step: Any, inputs: dict[str, Any]) -> None:
        try:
            output = step.run(inputs)
            if inspect.isawaitable(output):
                output = await output
        except Exception as exc:
            raise _failed(self.recorder, node, exc) from exc
        self.recorder.python_step(node, output)
        self._done(node, output)

    def _commit(self, run: _Run) -> None:
        # Committing one step may adopt a successor that has already decided, which commits in
        # turn: a queue, not recursion, however deep the speculation went.
        self.commits.append(run)
        if self.committing:
            return
        self.committing = True
        try:
            while self.commits:
                self._commit_now(self.commits.popleft())
        finally:
            self.committing = False

    def _commit_now(self, run: _Run) -> None:
        decision = run.decision
        assert decision is not None
        step = run.ballot.step
        try:
            # Scored only now, after the decision: ground truth never reaches voting.
            truth = step.expected(run.inputs)
            truth_key = None if truth is None else step.vote_key(truth)
        except Exception as exc:
            raise _failed(self.recorder, run.node, exc) from exc
        self.recorder.decision(decision, truth_key)
        del self.runs[run.node]
        if self.drafter is not None:
            self.settled[run.node] = run
            while len(self.settled) > 4 * self.horizon + 8:
                self.settled.popitem(last=False)
        self._done(run.node, decision.answer)

    def _done(self, node: Hashable, output: Any) -> None:
        graph = self.graph
        successors = list(graph.successors(node))
        if successors or self.plan.keep != "none":
            self.outputs[node] = output
        if not successors:
            del self.unread[node]
        del self.waiting[node]
        self.live -= 1
        ready: list[Hashable] = []
        for new in self.plan.extend(node):
            preds = list(graph.predecessors(new))
            self.waiting[new] = sum(1 for p in preds if p not in self.outputs)
            self.unread[new] = 0
            for pred in preds:
                self.unread[pred] += 1
            if self.waiting[new] == 0:
                ready.append(new)
            else:
                self._speculate_into(new)
        for succ in successors:
            self.waiting[succ] -= 1
            if self.waiting[succ] == 0:
                ready.append(succ)
            elif self.waiting[succ] == 1:
                self._speculate_into(succ)
        slots = self.max_steps - self.live
        queued = [self.queue.popleft() for _ in range(min(slots, len(self.queue)))]
        for r in queued + ready:
            self._ready(r)

    def _forget(self, node: Hashable) -> None:
        del self.unread[node]
        if self.plan.keep != "all":
            self.outputs.pop(node, None)
        self.plan.release(node)

    # -- speculation ---------------------------------------------------------------------

    def _speculate_into(self, node: Hashable) -> None:
        """`node` waits for one undecided input: speculate it from that input's live runs."""
        for pred in self.graph.predecessors(node):
            if pred not in self.outputs:
                for run in list(self.runs.get(pred, {}).values()):
                    self._speculate(run)

    def _speculate(self, run: _Run) -> None:
        """Start `run`'s successors from its leading answer, as far as the depth allows."""
        key = run.leader
        if key is None or self.depth <= 0 or not run.alive() or run.open_depth() >= self.depth:
            return
        answer = run.ballot.answers[key]
        graph = self.graph
        for succ in graph.successors(run.node):
            if (
                succ not in self.waiting
                or self.waiting[succ] != 1
                or not isinstance(graph.nodes[succ]["step"], LLMStep)
            ):
                continue  # other inputs undecided, or a python step (they wait)
            step = graph.nodes[succ]["step"]
            view = cast(dict[Hashable, Any], ChainMap({run.node: answer}, self.outputs))
            try:
                inputs = self.plan.inputs(succ, view)
                messages = step.prompt(inputs)
            except Exception:
                continue  # this prediction cannot even build a prompt: it will not be the decided one
            digest = prompt_digest(messages)
            runs = self.runs.setdefault(succ, {})
            existing = runs.get(digest)
            if existing is None:
                child = self._start(succ, inputs, messages, digest, run)
            elif existing.parent is not run and not existing.real:
                child = existing  # another prediction built the same prompt: follow this one now
                child.parent = run
            else:
                continue
            child.assumed = key
            run.children.append(child)

    # -- drafts (maker._drafts) ------------------------------------------------------------

    def _wish_draft(self, run: _Run) -> None:
        """Ask for a draft from `run`'s inputs, if nothing predicts it and it is worth one."""
        drafter = self.drafter
        if drafter is None or run.dead or run.drafting or run.predicted is not None:
            return
        if not (run.real or run.anchor) or (run.real and self.covered.get(run.node)):
            return  # a draft already out will predict it
        if run.depth() > self.horizon or not run.plausible():
            return  # too far ahead for now: asked again as the steps before it decide
        step = self.graph.nodes[run.node]["step"]
        nodes = self._line(run.node, step, drafter.m + 1)
        if len(nodes) < 2:
            return  # nothing after it to start from a draft
        m = min(drafter.m, len(nodes))
        run.drafting = True
        for node in nodes[:m]:
            self.covered[node] = self.covered.get(node, 0) + 1
        self.agent.group.start_soon(self._draft, run, step, nodes, m)

    def _line(self, node: Hashable, step: DraftableStep, n: int) -> list[Hashable]:
        """Up to `n` steps from `node` along its chain: each the only successor, fed only by the one before."""
        graph, line = self.graph, [node]
        while len(line) < n:
            succs = list(graph.successors(line[-1]))
            if len(succs) != 1 or graph.in_degree(succs[0]) != 1 or graph.nodes[succs[0]]["step"] != step:
                break
            line.append(succs[0])
        return line

    async def _draft(self, run: _Run, step: DraftableStep, nodes: list[Hashable], m: int) -> None:
        assert self.drafter is not None
        try:
            draft = await self.drafter.fetch(step, run.node, run.digest, run.inputs, nodes, m)
        finally:
            # `drafting` stays set: one draft per ballot, even if it failed (a greedy draft asked
            # again would fail again), so a (step, prompt) is drafted at most once in a run.
            for node in nodes[:m]:
                self.covered[node] -= 1
                if not self.covered[node]:
                    del self.covered[node]
        if draft is not None:
            self._apply(run, draft)
        for node in nodes:  # a real step the draft was to predict, and does not: it may ask for its own
            for other in list(self.runs.get(node, {}).values()):
                if other.real:
                    self._wish_draft(other)

    def _apply(self, run: _Run, draft: Draft) -> None:
        """Attach a landed draft's predictions, from its first step down to the first undecided one."""
        for pos in range(len(draft.answers)):
            if run.dead or (run.predicted is not None and run.predicted[0] is not draft):
                return  # built on a discarded prompt, or an earlier draft predicts it already
            run.predicted = (draft, pos)
            key = draft.keys[pos]
            if run.decision is not None and run.decision.winner != key:
                return  # the votes already say otherwise
            if not (run.real and run.decision is not None and run.node not in self.waiting):
                self._spread(run)  # undecided: its successors start from the prediction
                return
            nxt = self._decided_successor(run, draft, pos)  # committed as drafted: go on
            if nxt is None:
                return
            if pos + 1 == len(draft.answers):
                nxt.anchor = True
                self._wish_draft(nxt)
                return
            run = nxt

    def _decided_successor(self, run: _Run, draft: Draft, pos: int) -> _Run | None:
        """The real run after committed `run`, if it is the one the drafted answer builds."""
        if pos + 1 >= len(draft.nodes):
            return None
        succ = draft.nodes[pos + 1]
        nxt = self.settled.get(succ)
        if nxt is None:
            nxt = next((r for r in self.runs.get(succ, {}).values() if r.real), None)
        built = self._prompt_from(run.node, succ, draft.answers[pos])
        return nxt if nxt is not None and built is not None and built[2] == nxt.digest else None

    def _prompt_from(self, node: Hashable, succ: Hashable, answer: Any) -> tuple[dict[str, Any], Messages, str] | None:
        view = cast(dict[Hashable, Any], ChainMap({node: answer}, self.outputs))
        try:
            inputs = self.plan.inputs(succ, view)
            messages = self.graph.nodes[succ]["step"].prompt(inputs)
        except Exception:
            return None  # this prediction cannot even build a prompt: it will not be the decided one
        return inputs, messages, prompt_digest(messages)

    def _follow_draft(self, run: _Run) -> None:
        """Start (or plan) the ballot its drafted answer builds for its successor; begin it if there is room."""
        if not run.started and not run.real and run.depth() <= self.horizon and run.plausible():
            self._begin(run)
        if run.anchor:
            self._wish_draft(run)
        if run.predicted is None:
            return
        draft, pos = run.predicted
        key = draft.keys[pos]
        if run.decision is not None and run.decision.winner != key:
            return
        child = run.draft_child
        if child is None:
            child = self._drafted_child(run, draft, pos)
            if child is None:
                return
            run.draft_child = child
            if pos + 1 < len(draft.answers):
                if child.predicted is None:
                    child.predicted = (draft, pos + 1)
            elif child.predicted is None:
                child.anchor = True

    def _drafted_child(self, run: _Run, draft: Draft, pos: int) -> _Run | None:
        if pos + 1 >= len(draft.nodes):
            return None
        succ = draft.nodes[pos + 1]
        if self.waiting.get(succ) != 1:
            return None
        built = self._prompt_from(run.node, succ, draft.answers[pos])
        if built is None:
            return None
        inputs, messages, digest = built
        child = self.runs.setdefault(succ, {}).get(digest)
        if child is None:
            child = self._start(succ, inputs, messages, digest, run, begin=False)
        elif child.real:
            return None
        elif child.parent is not run:
            child.parent = run  # another prediction built the same prompt: follow this one now
        child.assumed = draft.keys[pos]
        if child not in run.children:
            run.children.append(child)
        return child

    def _start(
        self,
        node: Hashable,
        inputs: dict[str, Any],
        messages: Messages,
        digest: str,
        parent: _Run | None,
        *,
        begin: bool = True,
    ) -> _Run:
        data = self.graph.nodes[node]
        step = data["step"]
        run = _Run(node, inputs, messages, digest, parent)
        run.ballot = _Ballot(node, step, step_voting(step, data.get("voting"), self.voting), _Log(self, run))  # type: ignore[arg-type]
        run.ballot.prompt = digest
        self.runs.setdefault(node, {})[digest] = run
        if begin:
            self._begin(run)
        return run

    def _begin(self, run: _Run) -> None:
        run.started = True
        run.send, run.receive = anyio.create_memory_object_stream[tuple[int, Completion | None]](math.inf)
        self.tg.start_soon(self._vote, run)

    def _discard(self, run: _Run) -> None:
        """Its prompt is not the one the decided inputs build: it launches nothing more."""
        run.dead = True
        if not run.started:
            return  # a drafted ballot that never had room to start: nothing was spent on it
        if self.recorder.writer is not None:
            self.recorder.writer.write(
                {
                    "type": "discard",
                    "step": run.node,
                    "basis": run.digest,
                    "samples": run.ballot.launched,
                    "in_flight": run.ballot.in_flight,
                }
            )
        if run.ballot.open:
            run.send.send_nowait((_WAKE, None))

    # -- one ballot ----------------------------------------------------------------------

    async def _vote(self, run: _Run) -> None:
        ballot = run.ballot
        winner = None
        with run.send, run.receive:
            try:
                winner = await self._decide(run)
            except MakerError as exc:
                if run.real or not _held(exc):
                    raise
                run.failed = exc  # a speculative run's failure: raised only if it is adopted
                return
            except Exception as exc:
                if run.real:
                    raise _failed(self.recorder, run.node, exc) from exc
                run.failed = exc
                return
            finally:
                if winner is None or winner is _DEAD:
                    ballot.open = False  # what lands from now on is recorded, never sent here
                    with suppress(Exception):  # replies already here are paid for: recorded, as late
                        self.agent.drain(ballot, run.receive)
            if winner is _DEAD:
                return
            run.decision = ballot.close(winner)
            self.agent.drain(ballot, run.receive)  # replies that arrived while the deciding one was judged
        if run.real:
            self._commit(run)
        elif self.depth:
            self._spread(run)  # decided on its predicted prompt: no longer counts against the depth

    async def _decide(self, run: _Run) -> str:
        """Draw and count until the ballot names a winner (or the run is discarded: `_DEAD`)."""
        ballot = run.ballot
        winner = None
        while winner is None:
            if run.dead:
                return _DEAD
            self._launch(run, ballot.launch())
            index, completion = await run.receive.receive()
            if index == _WAKE or completion is None:
                continue
            self.agent.judged()
            winner = ballot.count(index, completion)
            leader = winner or ballot.tally.leader()[0]
            if leader != run.leader:
                run.leader = leader
                self._spread(run)  # and revive what was built on this leader, if it led before
        return winner

    def _launch(self, run: _Run, indices: range) -> None:
        if not indices:
            return
        if self.reuse is not None:
            for index, completion in self.reuse.take(run.node, run.digest, indices):
                run.reused.add(index)
                self.agent.deliver(run.ballot, run.send, index, completion)
        for index in indices:
            if index not in run.reused:
                self.agent.group.start_soon(self._draw, run, index)

    async def _draw(self, run: _Run, index: int) -> None:
        async with self.agent.limiter:
            completion = await self.agent._call(run.ballot, run.messages, index)
        if run.dead:
            run.ballot.late(index, completion)  # recorded as discarded
        else:
            self.agent.deliver(run.ballot, run.send, index, completion)

    # -- the trace -----------------------------------------------------------------------

    def record(self, run: _Run, index: int, temperature: float, c: Completion, v: Verdict, late: bool) -> None:
        """A sample, counted and written as `Recorder.sample` does, with what it was built from."""
        if index in run.reused:
            return  # already in the trace and its totals
        extra: dict[str, Any] = {"basis": run.digest}
        if run.speculative:
            extra["spec"] = True
        if run.dead:
            extra["discarded"] = True
        # The base class's own counting, never a resume's or replay's override: reused samples
        # of a speculative run are handled above, by its own ledger.
        Recorder.sample(self.recorder, run.node, index, temperature, c, v, late, extra)


def _held(error: MakerError) -> bool:
    """Failures of a speculative run that wait for its adoption; the rest (a budget) stop the run now."""
    return isinstance(error, VoteUndecided | StepFailed)


def _failed(recorder: Recorder, node: Hashable, exc: Exception) -> StepFailed:
    error = StepFailed(f"step {node!r} raised {type(exc).__name__}: {exc}", step=node)
    recorder.step_error(node, error)
    return error


async def run_speculative(
    plan: Plan,
    agent: Microagent,
    recorder: Recorder,
    voting: Voting,
    *,
    depth: int,
    max_steps: int,
    reuse: Reuse | None = None,
    draft: int = 0,
    draft_model: str | None = None,
    seed: int = 0,
) -> dict[Hashable, Any]:
    """Run `plan` to the end with speculation up to `depth` steps ahead, and drafts of `draft` steps.

    draft_model: the model that writes drafts (default: the run's own backend).
    Returns the outputs the plan keeps.
    """
    if not draft:
        return await Speculator(plan, agent, recorder, voting, depth=depth, max_steps=max_steps, reuse=reuse).run()
    backend = open_backend(draft_model, seed=seed) if draft_model else agent.backend
    try:
        recorded = reuse.drafts if reuse is not None else []
        drafter = Drafter(backend, draft, agent, recorder, recorded)
        speculator = Speculator(
            plan, agent, recorder, voting, depth=depth, max_steps=max_steps, reuse=reuse, drafter=drafter
        )
        return await speculator.run()
    finally:
        if backend is not agent.backend:
            await backend.aclose()
