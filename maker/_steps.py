"""Turning a user's functions into microsteps.

`@llm_step(parse=...)` wraps a prompt builder: the function's parameters are the
step's inputs, it returns the prompt, and the run samples a model, red-flags and
votes on the parsed replies. `@python_step` wraps a plain function (sync or
async) that runs once and is not voted. Both objects satisfy the protocols in
`tasks._protocol`, so they mix freely with task steps in one graph.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, ParamSpec, TypeVar, overload

from maker.errors import ConfigError
from maker.tasks._protocol import Inputs, Messages
from maker.voting import ParseError, RedFlag, Voting

# What a prompt builder may return: the user message, or the whole chat.
Prompt = str | Sequence[Mapping[str, str]]

# A decorated function keeps its parameters (P) and its answer (T) or result (R)
# types, so calling a step to preview its prompt or result type-checks.
P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class _Signature:
    """Which inputs a user function needs and which it accepts (None: any, it takes **kwargs)."""

    required: frozenset[str]
    accepted: frozenset[str] | None

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> _Signature:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # some builtins have no signature: check nothing
            return cls(frozenset(), None)
        if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params):
            raise ConfigError(
                f"step function {_name(fn)}: inputs are passed by name, so it cannot take "
                "positional-only or *args parameters"
            )
        named = [p for p in params if p.kind is not p.VAR_KEYWORD]
        required = frozenset(p.name for p in named if p.default is p.empty)
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
        return cls(required, None if takes_any else frozenset(p.name for p in named))


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _canonical(answer: Any) -> str:
    """Default vote key: the answer as compact JSON with sorted keys (answers are JSON values)."""
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _messages(out: Any, system: str | None, where: str) -> Messages:
    """A prompt builder may return the user message as a string, or the whole chat."""
    if isinstance(out, str):
        user = {"role": "user", "content": out}
        return ({"role": "system", "content": system}, user) if system else (user,)
    if (
        isinstance(out, Sequence)
        and out
        and all(
            isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in out
        )
    ):
        return tuple({"role": m["role"], "content": m["content"]} for m in out)
    raise TypeError(
        f"{where} must return a string or a list of {{'role': ..., 'content': ...}} messages, got {type(out).__name__}"
    )


class LLMFunctionStep(Generic[P, T]):
    """An LLM microstep built from user functions (see `llm_step`).

    inputs / accepts: the input names the prompt builder requires / takes; the
    planner checks them against the graph before anything runs.
    voting / red_flags: this step's own voting settings and extra red flags,
    layered over the run's (`step_voting`).
    """

    __slots__ = (
        "_build",
        "_expected",
        "_key",
        "_parse",
        "accepts",
        "inputs",
        "name",
        "red_flags",
        "system",
        "voting",
    )

    def __init__(
        self,
        build: Callable[P, Prompt],
        *,
        parse: Callable[[str], T],
        vote_key: Callable[[T], str] | None = None,
        expected: Callable[..., T | None] | None = None,
        system: str | None = None,
        voting: Voting | None = None,
        red_flags: Sequence[RedFlag] = (),
        name: str | None = None,
    ) -> None:
        if inspect.iscoroutinefunction(build):
            # The prompt must be a pure function of the inputs: replay and resume
            # rebuild it. Async work (fetching context) belongs in a python step before it.
            raise ConfigError(
                f"llm step {_name(build)}: the prompt builder must be a plain function, not async; "
                "do async work in a python step that feeds it"
            )
        for what, fn in (("parse", parse), ("vote_key", vote_key), ("expected", expected)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"llm step {_name(build)}: {what} must be callable, got {type(fn).__name__}")
        if voting is not None and not isinstance(voting, Voting):
            raise ConfigError(f"llm step {_name(build)}: voting must be a voting.Voting, got {type(voting).__name__}")
        signature = _Signature.of(build)
        self.name = name or _name(build)
        self._build = build
        self._parse = parse
        self._key: Callable[[T], str] = vote_key or _canonical
        self._expected = expected
        self.system, self.voting, self.red_flags = system, voting, tuple(red_flags)
        self.inputs, self.accepts = signature.required, signature.accepted

    def prompt(self, inputs: Inputs) -> Messages:
        # Inputs go by name, checked against the builder's signature by the
        # planner (`inputs`/`accepts`): a rule a ParamSpec cannot spell.
        build: Callable[..., Prompt] = self._build
        return _messages(build(**inputs), self.system, f"llm step {self.name}")

    def parse(self, text: str) -> T:
        return self._parse(text)

    def vote_key(self, answer: T) -> str:
        return self._key(answer)

    def expected(self, inputs: Inputs) -> T | None:
        return None if self._expected is None else self._expected(**inputs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Messages:
        """The prompt for these inputs: handy to check what the model will see."""
        return _messages(self._build(*args, **kwargs), self.system, f"llm step {self.name}")

    def __repr__(self) -> str:
        return f"<llm step {self.name}>"


class PythonFunctionStep(Generic[P, R]):
    """A plain Python microstep: runs once per run, is not voted (see `python_step`)."""

    __slots__ = ("_fn", "accepts", "inputs", "name")

    def __init__(self, fn: Callable[P, R], *, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(f"a python step needs a function, got {type(fn).__name__}")
        signature = _Signature.of(fn)
        self.name = name or _name(fn)
        self._fn = fn
        self.inputs, self.accepts = signature.required, signature.accepted

    def run(self, inputs: Inputs) -> R:
        # By name, as the planner checked (see LLMFunctionStep.prompt). An async
        # function returns a coroutine here; the runner awaits it.
        fn: Callable[..., R] = self._fn
        return fn(**inputs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<python step {self.name}>"


@overload
def llm_step(
    build: Callable[P, Prompt],
    *,
    parse: Callable[[str], T],
    vote_key: Callable[[T], str] | None = None,
    expected: Callable[..., T | None] | None = None,
    system: str | None = None,
    voting: Voting | None = None,
    red_flags: Sequence[RedFlag] = (),
    name: str | None = None,
) -> LLMFunctionStep[P, T]: ...


@overload
def llm_step(
    build: None = None,
    *,
    parse: Callable[[str], T],
    vote_key: Callable[[T], str] | None = None,
    expected: Callable[..., T | None] | None = None,
    system: str | None = None,
    voting: Voting | None = None,
    red_flags: Sequence[RedFlag] = (),
    name: str | None = None,
) -> Callable[[Callable[P, Prompt]], LLMFunctionStep[P, T]]: ...


def llm_step(
    build: Callable[P, Prompt] | None = None,
    *,
    parse: Callable[[str], T],
    vote_key: Callable[[T], str] | None = None,
    expected: Callable[..., T | None] | None = None,
    system: str | None = None,
    voting: Voting | None = None,
    red_flags: Sequence[RedFlag] = (),
    name: str | None = None,
) -> LLMFunctionStep[P, T] | Callable[[Callable[P, Prompt]], LLMFunctionStep[P, T]]:
    """Make a voted LLM microstep from a prompt builder.

    The builder's parameters name the step's inputs; it returns the user message
    (a string, sent after `system` if given) or the whole list of chat messages.

    parse: reply text → answer (a JSON value); raise `voting.ParseError` when the
        reply is not in the required format: that sample is red-flagged, never repaired.
    vote_key: answer → canonical string; two samples are the same vote only if
        their keys are equal (default: the answer as canonical JSON).
    expected: the step's inputs → the right answer, for scoring after the fact
        only (it never reaches voting); None when unknown.
    voting / red_flags: this step's own voting settings, and red flags added to
        the run's (each `flag(reply, answer) -> reason | None`).

    Use as `@llm_step(parse=...)` or `llm_step(build, parse=...)`.
    """

    def wrap(fn: Callable[P, Prompt]) -> LLMFunctionStep[P, T]:
        return LLMFunctionStep(
            fn,
            parse=parse,
            vote_key=vote_key,
            expected=expected,
            system=system,
            voting=voting,
            red_flags=red_flags,
            name=name,
        )

    return wrap if build is None else wrap(build)


@overload
def python_step(fn: Callable[P, R], *, name: str | None = None) -> PythonFunctionStep[P, R]: ...


@overload
def python_step(
    fn: None = None, *, name: str | None = None
) -> Callable[[Callable[P, R]], PythonFunctionStep[P, R]]: ...


def python_step(
    fn: Callable[P, R] | None = None, *, name: str | None = None
) -> PythonFunctionStep[P, R] | Callable[[Callable[P, R]], PythonFunctionStep[P, R]]:
    """Make a plain Python microstep (sync or async); its parameters name its inputs.

    Use as `@python_step`, `@python_step(name=...)` or `python_step(fn)`.
    """

    def wrap(f: Callable[P, R]) -> PythonFunctionStep[P, R]:
        return PythonFunctionStep(f, name=name)

    return wrap if fn is None else wrap(fn)


def as_step(step: Any) -> Any:
    """A step as given, or a plain function made into a python step."""
    if hasattr(step, "run") or hasattr(step, "prompt"):
        return step
    if callable(step):
        return PythonFunctionStep(step)
    return step


def step_voting(step: Any, node_voting: Voting | None, run_voting: Voting) -> Voting:
    """The voting a step gets: the node's, else the step's own, else the run's, plus the step's red flags.

    Only `llm_step` steps carry their own settings; any other step gets the
    node's or the run's (without a lookup: a million-step chain asks a million times).
    """
    if not isinstance(step, LLMFunctionStep):
        return node_voting or run_voting
    voting = node_voting or step.voting or run_voting
    if step.red_flags:
        voting = replace(voting, red_flags=(*voting.red_flags, *step.red_flags))
    return voting


@overload
def parse_last(pattern: str, *, what: str | None = None) -> Callable[[str], str]: ...


@overload
def parse_last(pattern: str, convert: Callable[[str], T], *, what: str | None = None) -> Callable[[str], T]: ...


def parse_last(pattern: str, convert: Callable[[str], Any] = str, *, what: str | None = None) -> Callable[[str], Any]:
    """A strict parser: the LAST match of `pattern` (its first group, else the whole match), converted.

    No match, or a conversion that raises, is a `ParseError` (a red flag). The
    last match wins so that a model thinking aloud is read by its final answer.
    """
    regex = re.compile(pattern)
    label = what or pattern

    def parse(text: str) -> Any:
        found = list(regex.finditer(text))
        if not found:
            raise ParseError(f"no match for {label}")
        last = found[-1]
        raw = last.group(1) if regex.groups else last.group(0)
        try:
            return convert(raw)
        except ParseError:
            raise
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ParseError(f"{label}: cannot read {raw[:40]!r} ({exc})") from None

    return parse
