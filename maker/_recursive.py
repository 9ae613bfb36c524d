"""Recursive planning: the model decomposes the problem, and every decision is voted (the paper's Appendix F).

A problem is first offered to a decomposer step, which answers either "atomic"
or a split into sub-problems plus a composition rule. That proposal is voted.
An atomic problem is then solved by a voted solver step; a split one has its
sub-problems solved the same way, recursively and in parallel, and a voted
composer step turns their answers into the problem's answer::

    p:decompose ──(atomic)──→ p:solve                       p's answer
    p:decompose ──(split)───→ p.0:decompose … p.n:decompose
                             (each sub-problem's answer) ──→ p:compose   p's answer

The networkx DAG grows while the run executes: a decided decomposition adds
its nodes and edges (`RecursivePlan.extend`), and the ordinary scheduler runs
whatever became ready under the usual limits. Each role is voted either by
its vote keys (ahead-by-k over canonical answers) or by judges (`voting.Judged`:
candidates collected, then judge samples pick one by number).

A depth cap and a node cap turn runaway decomposition into a
`DecompositionError` naming the problem path, and so does a split that refers
back to its own problem or to an ancestor (a cycle). Ground truth, where a
problem has it, only scores decisions after they are made.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import networkx as nx

from maker._microagent import Microagent
from maker._planner import Plan
from maker._recorder import Decision, Recorder
from maker._steps import Prompt, _messages
from maker.errors import ConfigError, DecompositionError, MakerError, PlanError, StepFailed
from maker.tasks._protocol import Inputs, Messages, StepGraph
from maker.voting import Candidates, Collect, Judged, ParseError, Voting, choice_parser, judge_prompt

DECOMPOSE, SOLVE, COMPOSE = "decompose", "solve", "compose"
ATOMIC: dict[str, Any] = {"atomic": True}


def atomic() -> dict[str, Any]:
    """The decomposer's answer for a problem to solve directly."""
    return dict(ATOMIC)


def split(parts: Sequence[Any], rule: Any = None) -> dict[str, Any]:
    """The decomposer's answer for a problem split into `parts` (JSON values), composed by `rule`."""
    if not parts:
        raise ParseError("a split needs at least one sub-problem")
    return {"parts": list(parts), "rule": rule}


def is_atomic(decomposition: Mapping[str, Any]) -> bool:
    return bool(decomposition.get("atomic"))


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys: the default vote key of an answer and key of a problem."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class RecursiveRole:
    """One role of a recursive problem: its prompt, strict parser and vote key.

    prompt: the role's inputs → the user message (a string) or the whole chat.
        decompose and solve get `problem`; compose gets `problem`, `parts`,
        `rule` and `answers` (the sub-problems' answers, in the order of `parts`).
    parse: reply text → answer (a JSON value); raise `voting.ParseError` on anything
        not in the required format (a red flag, never repaired). A decomposer's
        answer is `atomic()` or `split(parts, rule)`.
    key: answer → canonical vote key (default: canonical JSON). Two samples are
        the same vote, or the same candidate of a judged vote, only if keys agree.
    show: answer → how judges see a candidate (default: canonical JSON); write it
        in the reply format so a judge can check it the way it would answer.
    expected: the role's inputs → the right answer, or None; scoring only.
    judged: decide by judges choosing among collected candidates instead of by keys.
    """

    prompt: Callable[..., Prompt]
    parse: Callable[[str], Any]
    key: Callable[[Any], str] | None = None
    show: Callable[[Any], str] | None = None
    expected: Callable[..., Any] | None = None
    judged: bool = False

    def vote_key(self, answer: Any) -> str:
        return (self.key or canonical)(answer)

    def shown(self, answer: Any) -> str:
        return (self.show or canonical)(answer)


@dataclass(frozen=True, slots=True)
class RecursiveProblem:
    """A user's recursive problem: the three roles; maker does voting, red flags, traces, resume, replay.

    problem_key: a problem → its canonical key (cycles and self-references are found by it).
    describe: a problem in a few words, for error messages.
    judge: (question, candidates as shown) → the judge prompt; the question is the
        role's own prompt, so judges see exactly what the role was asked.
    system: a system message sent before every prompt (roles and judges).
    """

    decompose: RecursiveRole
    solve: RecursiveRole
    compose: RecursiveRole
    problem_key: Callable[[Any], str] = canonical
    describe: Callable[[Any], str] = str
    judge: Callable[[str, Sequence[str]], Prompt] = judge_prompt
    system: str | None = None

    def role(self, name: str) -> RecursiveRole:
        role: RecursiveRole = getattr(self, name)
        return role


@dataclass(frozen=True, slots=True)
class RecursiveLimits:
    """Caps on decomposition, and how judged roles vote.

    max_depth: deepest sub-problem (the root is depth 0); a split below it is an error.
    max_nodes: most DAG nodes one root problem's tree may have.
    judged: candidates per judged vote and the judges' rule (default 2k − 1, the run's rule).
    """

    max_depth: int = 5
    max_nodes: int = 1_000
    judged: Judged = field(default_factory=Judged)

    def __post_init__(self) -> None:
        if self.max_depth < 0:
            raise ConfigError(f"max_depth must be >= 0, got {self.max_depth}")
        if self.max_nodes < 2:
            raise ConfigError(f"max_nodes must be >= 2, got {self.max_nodes}")

    def describe(self) -> dict[str, Any]:
        return {"max_depth": self.max_depth, "max_nodes": self.max_nodes, **self.judged.describe()}


class RoleStep:
    """A role as an LLM step: the planner, red flags and trace see an ordinary step."""

    __slots__ = ("accepts", "inputs", "name", "problem", "role")

    def __init__(self, problem: RecursiveProblem, name: str) -> None:
        self.problem, self.name, self.role = problem, name, problem.role(name)
        names = {"problem"} if name != COMPOSE else {"problem", "parts", "rule", "answers"}
        self.inputs = self.accepts = frozenset(names)

    def prompt(self, inputs: Inputs) -> Messages:
        return _messages(self.role.prompt(**inputs), self.problem.system, f"recursive role {self.name}")

    def parse(self, text: str) -> Any:
        return self.role.parse(text)

    def vote_key(self, answer: Any) -> str:
        return self.role.vote_key(answer)

    def expected(self, inputs: Inputs) -> Any | None:
        return None if self.role.expected is None else self.role.expected(**inputs)

    def __repr__(self) -> str:
        return f"<recursive {self.name} step>"


class _Collecting:
    """A role step that remembers the answer behind each vote key (a judged vote's candidates)."""

    def __init__(self, step: RoleStep) -> None:
        self.step = step
        self.seen: dict[str, Any] = {}

    def prompt(self, inputs: Inputs) -> Messages:
        return self.step.prompt(inputs)

    def parse(self, text: str) -> Any:
        return self.step.parse(text)

    def vote_key(self, answer: Any) -> str:
        key = self.step.vote_key(answer)
        self.seen.setdefault(key, answer)
        return key

    def expected(self, inputs: Inputs) -> Any | None:
        return None


@dataclass(frozen=True, slots=True)
class JudgeStep:
    """Judges of one judged vote: the role's question and the numbered candidates; the answer is a number."""

    messages: Messages
    count: int

    def prompt(self, inputs: Inputs) -> Messages:
        return self.messages

    def parse(self, text: str) -> int:
        return choice_parser(self.count)(text)

    def vote_key(self, answer: int) -> str:
        return str(answer)

    def expected(self, inputs: Inputs) -> Any | None:
        return None


@dataclass(slots=True)
class _Problem:
    """One problem of the tree: where it is, what it is, and what its split still waits for."""

    path: str
    problem: Any
    depth: int
    root: str
    parent: str | None
    keys: tuple[str, ...]  # problem keys of it and its ancestors, itself last
    parts: list[str] = field(default_factory=list)  # sub-problem paths, in order
    waiting: int = 0  # sub-problems not answered yet
    final: str | None = None  # the node whose answer is this problem's answer


def node_id(path: str, role: str) -> str:
    return f"{path}:{role}"


def candidates_id(node: Hashable) -> str:
    """Where a judged vote's candidates are recorded: the judges' votes are the node's own samples."""
    return f"{node}:candidates"


class RecursiveDAG(nx.DiGraph):  # type: ignore[type-arg]
    """The plan a recursive task hands the runtime: a networkx DiGraph holding the root problems,
    which `maker.run` turns into a `RecursivePlan` that grows it while the run executes.

    The problem, roots and limits live in the graph's attributes (`graph`), because networkx
    builds copies, subgraphs and views with a bare `__class__()` and then copies `graph`:
    that way `dag.copy()` and `dag.subgraph(...)` are RecursiveDAGs that still know their problem."""

    plan: RecursivePlan | None = None  # the plan of the latest run, for its tree

    def __init__(
        self,
        problem: RecursiveProblem | None = None,
        roots: Mapping[str, Any] | None = None,
        limits: RecursiveLimits | None = None,
    ) -> None:
        super().__init__()
        if problem is None and roots is None:
            return  # networkx making a copy or a view: it fills `graph` and the nodes itself
        if problem is None or not roots:
            raise PlanError("a recursive plan needs a problem and at least one root problem")
        self.graph.update(problem=problem, limits=limits or RecursiveLimits(), roots=dict(roots))
        # The graph itself holds only the roots' first steps, so it looks the same before every
        # run (resume and replay check it); each run grows its own copy.
        for root, value in self.roots.items():
            self.add_node(node_id(root, DECOMPOSE), step=RoleStep(problem, DECOMPOSE), args={"problem": value})

    @property
    def problem(self) -> RecursiveProblem:
        return cast("RecursiveProblem", self.graph["problem"])

    @property
    def limits(self) -> RecursiveLimits:
        return cast("RecursiveLimits", self.graph["limits"])

    @property
    def roots(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self.graph["roots"])

    def as_plan(self, window: int = 64) -> RecursivePlan:
        """A fresh plan for one run (kept in `plan`, so the caller can look at its tree afterwards)."""
        self.plan = RecursivePlan(self)
        return self.plan


class RecursivePlan(Plan):
    """A DAG that grows as decompositions are decided; it votes its own steps (judged or keyed)."""

    keep = "sinks"  # each root problem's answer (its final node); sub-answers are dropped once composed

    def __init__(self, dag: RecursiveDAG) -> None:
        super().__init__(nx.DiGraph())
        self.dag = dag
        self.problem, self.limits = dag.problem, dag.limits
        self.steps = {name: RoleStep(dag.problem, name) for name in (DECOMPOSE, SOLVE, COMPOSE)}
        self.problems: dict[str, _Problem] = {}
        self.answers: dict[Hashable, Any] = {}  # every decided node's answer (compositions read them)
        self.committed: Mapping[Hashable, Any] = {}  # resume: answers the trace already holds
        self.sizes: dict[str, int] = {}  # root → nodes in its tree
        for root, problem in dag.roots.items():
            if not isinstance(root, str) or not root or any(c in root for c in ".:"):
                raise PlanError(f"recursive problem id {root!r} must be a non-empty string without '.' or ':'")
            key = self.problem.problem_key(problem)
            self._add_problem(_Problem(root, problem, 0, root, None, (key,)))

    # -- growth --------------------------------------------------------------------------

    def _add_problem(self, p: _Problem) -> str:
        self.problems[p.path] = p
        node = node_id(p.path, DECOMPOSE)
        self._add_node(node, p, DECOMPOSE)
        if p.parent is not None:
            self.graph.add_edge(node_id(p.parent, DECOMPOSE), node, name="parent")
        return node

    def _add_node(self, node: str, p: _Problem, role: str) -> None:
        self.graph.add_node(
            node, step=self.steps[role], args={"problem": p.problem}, role=role, path=p.path, depth=p.depth
        )
        self.sizes[p.root] = self.sizes.get(p.root, 0) + 1
        # Steps as the totals count decisions: a judged node decides its candidates, then its choice.
        self.total += 2 if self.steps[role].role.judged else 1

    def extend(self, done: Hashable) -> Iterable[Hashable]:
        data = self.graph.nodes[done]
        p = self.problems[data["path"]]
        role = data["role"]
        if role == DECOMPOSE:
            return self._decomposed(done, p, self.answers[done])
        p.final = str(done)
        parent = self.problems.get(p.parent) if p.parent is not None else None
        if parent is None:
            return ()
        parent.waiting -= 1
        if parent.waiting:
            return ()
        compose = node_id(parent.path, COMPOSE)
        self._add_node(compose, parent, COMPOSE)
        for i, sub in enumerate(parent.parts):
            self.graph.add_edge(self.problems[sub].final, compose, name=f"part{i}")
        return (compose,)

    def _decomposed(self, node: Hashable, p: _Problem, decomposition: Mapping[str, Any]) -> list[Hashable]:
        if is_atomic(decomposition):
            solve = node_id(p.path, SOLVE)
            self._add_node(solve, p, SOLVE)
            self.graph.add_edge(node, solve, name="parent")
            return [solve]
        new: list[Hashable] = []
        for i, part in enumerate(decomposition["parts"]):
            sub = _Problem(
                f"{p.path}.{i}", part, p.depth + 1, p.root, p.path, (*p.keys, self.problem.problem_key(part))
            )
            p.parts.append(sub.path)
            new.append(self._add_problem(sub))
        p.waiting = len(new)
        return new

    def check(self, node: Hashable, decomposition: Any) -> None:
        """Refuse a decided split that cannot end: a cap reached, or a part that is its own ancestor."""
        p = self.problems[self.graph.nodes[node]["path"]]
        if not isinstance(decomposition, Mapping) or not (
            is_atomic(decomposition) or (isinstance(decomposition.get("parts"), list) and decomposition["parts"])
        ):
            raise self._error(node, p, f"the decomposer's answer {_short(decomposition)} is neither atomic nor a split")
        if is_atomic(decomposition):
            return
        parts = decomposition["parts"]
        if p.depth + 1 > self.limits.max_depth:
            raise self._error(node, p, f"the depth cap ({self.limits.max_depth}) is reached: it was split again")
        if self.sizes[p.root] + 2 * len(parts) > self.limits.max_nodes:
            raise self._error(
                node, p, f"the node cap ({self.limits.max_nodes} nodes per problem tree) would be exceeded"
            )
        for i, part in enumerate(parts):
            key = self.problem.problem_key(part)
            if key == p.keys[-1]:
                raise self._error(node, p, f"part {i} is the problem itself (a self-reference)")
            if key in p.keys:
                ancestor = ".".join(p.path.split(".")[: p.keys.index(key) + 1])
                raise self._error(
                    node, p, f"part {i} is the problem at {ancestor} again (a cycle: {ancestor} → … → {p.path})"
                )

    def _error(self, node: Hashable, p: _Problem, why: str) -> DecompositionError:
        return DecompositionError(
            f"problem {p.path} ({_short(self.problem.describe(p.problem))}): {why}", step=node, path=p.path
        )

    def inputs(self, node: Hashable, outputs: dict[Hashable, Any]) -> dict[str, Any]:
        data = self.graph.nodes[node]
        p = self.problems[data["path"]]
        if data["role"] != COMPOSE:
            return {"problem": p.problem}
        decomposition = self.answers[node_id(p.path, DECOMPOSE)]
        answers = [self.answers[self.problems[sub].final] for sub in p.parts]
        return {
            "problem": p.problem,
            "parts": list(decomposition["parts"]),
            "rule": decomposition.get("rule"),
            "answers": answers,
        }

    # -- running -------------------------------------------------------------------------

    def resume_from(self, committed: Mapping[Hashable, Any]) -> RecursivePlan:
        """Continue a run: committed nodes take their recorded answers, with no sampling and no new events."""
        self.committed = committed
        return self

    def executor(
        self, agent: Microagent, recorder: Recorder, voting: Voting
    ) -> Callable[[Hashable, dict[str, Any], dict[str, Any]], Awaitable[Any]]:
        decider = _Decider(self, agent, recorder, voting)

        async def execute(node: Hashable, data: dict[str, Any], inputs: dict[str, Any]) -> Any:
            answer = self.committed[node] if node in self.committed else await decider.decide(node, data, inputs)
            self.answers[node] = answer
            return answer

        return execute

    def answer(self, root: str) -> Any:
        """A root problem's answer, once decided."""
        final = self.problems[root].final
        return None if final is None else self.answers.get(final)

    def tree(self, root: str) -> StepGraph:
        """One root problem's part of the DAG (its decomposition tree), as a networkx DiGraph."""
        return self.graph.subgraph(n for n, d in self.graph.nodes(data=True) if _under(d["path"], root)).copy()


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + ".")


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else canonical(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Decider:
    """Votes one node: by keys, or by judges over collected candidates; scores it; records it."""

    def __init__(self, plan: RecursivePlan, agent: Microagent, recorder: Recorder, voting: Voting) -> None:
        self.plan, self.agent, self.recorder, self.voting = plan, agent, recorder, voting
        self.judged = plan.limits.judged

    async def decide(self, node: Hashable, data: dict[str, Any], inputs: dict[str, Any]) -> Any:
        try:
            return await self._decide(node, data["step"], inputs)
        except MakerError:
            raise
        except Exception as exc:  # a bug in the user's prompt builder, parser, key or ground truth
            error = StepFailed(f"step {node!r} raised {type(exc).__name__}: {exc}", step=node)
            self.recorder.step_error(node, error)
            raise error from exc

    async def _decide(self, node: Hashable, step: RoleStep, inputs: dict[str, Any]) -> Any:
        if step.role.judged:
            decision, truth = await self._judged(node, step, inputs)
        else:
            decision = await self.agent.vote(node, step, inputs, self.voting)
            expected = step.expected(inputs)
            truth = None if expected is None else step.vote_key(expected)
        if step.name == DECOMPOSE:
            try:
                self.plan.check(node, decision.answer)
            except DecompositionError as error:
                self.recorder.step_error(node, error)
                raise
        self.recorder.decision(decision, truth)
        return decision.answer

    async def _judged(self, node: Hashable, step: RoleStep, inputs: dict[str, Any]) -> tuple[Decision, str | None]:
        candidates = await self._candidates(node, step, inputs)
        expected = step.expected(inputs)
        if expected is None:
            truth = None
        else:
            right = step.vote_key(expected)
            truth = candidates.truth(lambda answer: step.vote_key(answer) == right)
        if candidates.lone:  # nothing to choose between: no judge is asked
            return Decision(node, "1", candidates.answer(1), {}, 0, 0, 0, None), truth
        question = "\n\n".join(m["content"] for m in step.prompt(inputs) if m["role"] != "system")
        shown = [step.role.shown(a) for a in candidates.answers]
        messages = _messages(self.plan.problem.judge(question, shown), self.plan.problem.system, "recursive judge")
        judges = replace(self.voting, rule=self.judged.judge_rule(self.voting.rule))
        decision = await self.agent.vote(node, JudgeStep(messages, len(candidates)), {}, judges)
        return replace(decision, answer=candidates.answer(int(decision.winner))), truth

    async def _candidates(self, node: Hashable, step: RoleStep, inputs: dict[str, Any]) -> Candidates:
        where = candidates_id(node)
        recorded = self.plan.committed.get(where)
        if recorded is not None:  # resume: collected before the interruption
            return Candidates.of({step.vote_key(a): 1 for a in recorded}, {step.vote_key(a): a for a in recorded})
        collecting = _Collecting(step)
        n = self.judged.count_for(self.voting.rule)
        decision = await self.agent.vote(where, collecting, inputs, replace(self.voting, rule=Collect(n)))
        candidates = Candidates.of(decision.votes, collecting.seen)
        self.recorder.decision(replace(decision, answer=list(candidates.answers), kind="candidates"), None)
        return candidates


def recursive_plan(
    problem: RecursiveProblem, problems: Mapping[str, Any] | Sequence[Any], *, limits: RecursiveLimits | None = None
) -> RecursiveDAG:
    """A plan that decomposes each of `problems` recursively; pass it to `maker.run` (or return it
    from a task's `plan()`). A sequence is named "0", "1", …; a mapping by its keys."""
    roots = dict(problems) if isinstance(problems, Mapping) else {str(i): p for i, p in enumerate(problems)}
    return RecursiveDAG(problem, roots, limits)


@dataclass(slots=True)
class TreeNode:
    """One problem of a recorded decomposition tree (`decomposition_tree`)."""

    path: str
    problem: Any = None  # from its parent's decided split; None for a root (the trace holds only its id)
    decomposition: Any = None
    answer: Any = None
    role: str | None = None  # the role that answered it: solve or compose
    samples: int = 0  # every sample drawn for it: candidates, judges, keyed votes
    wrong: list[str] = field(default_factory=list)  # roles whose decision ground truth scored wrong
    error: str | None = None
    children: list[TreeNode] = field(default_factory=list)


def decomposition_tree(events: Iterable[Mapping[str, Any]], root: str) -> TreeNode:
    """Rebuild one root problem's decomposition tree from a trace's events (`maker trace show --tree`)."""
    nodes: dict[str, TreeNode] = {}
    for e in events:
        step = e.get("step")
        if e.get("type") not in ("decision", "step_error") or not isinstance(step, str):
            continue
        path, _, role = step.partition(":")
        if not _under(path, root):
            continue
        node = nodes.setdefault(path, TreeNode(path))
        _take(node, role, e)
    if root not in nodes:
        raise ConfigError(f"the trace has no decisions of problem {root!r}")
    for path, node in sorted(nodes.items(), key=lambda kv: [int(x) if x.isdigit() else -1 for x in kv[0].split(".")]):
        parent = nodes.get(path.rpartition(".")[0]) if "." in path else None
        if parent is not None:
            parent.children.append(node)
            parts = (parent.decomposition or {}).get("parts") or []
            index = int(path.rpartition(".")[2])
            node.problem = parts[index] if index < len(parts) else None
    return nodes[root]


def _take(node: TreeNode, role: str, e: Mapping[str, Any]) -> None:
    node.samples += int(e.get("samples") or 0)
    if e["type"] == "step_error":
        node.error = str(e.get("message"))
        return
    if role.endswith(":candidates"):
        return
    if e.get("correct") is False:
        node.wrong.append(role)
    if role == DECOMPOSE:
        node.decomposition = e.get("answer")
    else:
        node.answer, node.role = e.get("answer"), role


def render_tree(node: TreeNode, describe: Callable[[Any], str] = _short) -> list[str]:
    """The tree as indented text lines, one problem a line."""
    lines: list[str] = []

    def walk(n: TreeNode, prefix: str, last: bool, top: bool) -> None:
        what = describe(n.problem) if n.problem is not None else ""
        if n.decomposition is None:
            how = "undecided"
        elif is_atomic(n.decomposition):
            how = "atomic"
        else:
            how = f"split into {len(n.decomposition.get('parts') or [])}"
        answer = "" if n.role is None else f" → {_short(n.answer, 40)}"
        verdict = f"  ✗ wrong: {', '.join(n.wrong)}" if n.wrong else ""
        error = f"  ERROR: {n.error}" if n.error else ""
        branch = "" if top else ("└── " if last else "├── ")
        body = f"{n.path}  {what}  [{how}]{answer}  ({n.samples} samples){verdict}{error}"
        lines.append(prefix + branch + body.replace("    ", "  "))
        inner = prefix + ("" if top else ("    " if last else "│   "))
        for i, child in enumerate(n.children):
            walk(child, inner, i == len(n.children) - 1, False)

    walk(node, "", True, True)
    return lines
