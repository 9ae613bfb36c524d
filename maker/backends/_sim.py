"""The simulated model: a controllable stand-in for an LLM, in-process.

It answers from the prompt alone (through each task's oracle, exactly what a
real model behind HTTP would see), writes replies in the task's own text format
so the strict parser and red flags run for real, and makes mistakes at the
rates its profile sets. Everything is a pure function of (seed, prompt, sample
index), so a run is reproducible and resumable.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields, replace
from random import Random
from typing import Any

import anyio

from maker.backends._protocol import Completion, Request
from maker.backends._sim_draft import draft_reply, latency_scale
from maker.errors import ConfigError
from maker.tasks import Messages, Oracle, oracles


@dataclass(frozen=True, slots=True)
class SimProfile:
    """The knobs of the simulated model.

    error_rate: chance that an ordinary reply is wrong (1 − p).
    hard_fraction / hard_error_rate: a share of steps that are much harder (the
        paper's step needing 18 rounds); chosen per prompt, so it is a property
        of the step, not of the sample.
    correlated: share of wrong replies that land on one plausible wrong answer
        per step (0 spreads errors out, 1 makes every mistake at a step agree).
    malformed_rate: replies the parser must reject.
    ramble_rate / ramble_error_rate: long replies, wrong more often (the paper
        saw errors rise past about 700 tokens); often long enough to be flagged.
    tokens_out: mean output tokens of an ordinary reply.
    latency / latency_sigma: mean seconds per call and log-normal spread.
    draft_accuracy / draft_tokens: the simulator as a drafter (`_sim_draft`): the
        chance each drafted step is right, and output tokens per drafted step.
    """

    error_rate: float = 0.0022
    hard_fraction: float = 0.0
    hard_error_rate: float = 0.5
    correlated: float = 0.0
    malformed_rate: float = 0.0
    ramble_rate: float = 0.0
    ramble_error_rate: float = 0.3
    tokens_out: int = 538
    latency: float = 0.0
    latency_sigma: float = 0.5
    draft_accuracy: float = 0.99
    draft_tokens: int = 40

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ConfigError(f"sim option {f.name} must be >= 0, got {value}")
        for name in (
            "error_rate",
            "hard_fraction",
            "hard_error_rate",
            "correlated",
            "malformed_rate",
            "ramble_rate",
            "ramble_error_rate",
            "draft_accuracy",
        ):
            if getattr(self, name) > 1:
                raise ConfigError(f"sim option {name} is a probability, got {getattr(self, name)}")

    def with_options(self, options: dict[str, str]) -> SimProfile:
        """Apply `name=value` overrides (from `sim/PROFILE?name=value&...`)."""
        known = {f.name: f.type for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, raw in options.items():
            if name not in known:
                raise ConfigError(f"unknown sim option {name!r} (known: {', '.join(sorted(known))})")
            try:
                changes[name] = int(raw) if known[name] in ("int", int) else float(raw)
            except ValueError:
                raise ConfigError(f"sim option {name} needs a number, got {raw!r}") from None
        return replace(self, **changes)


# Per-step error rates measured in the paper (method.md §6) and its output lengths.
PROFILES: dict[str, SimProfile] = {
    "gpt-4.1-mini": SimProfile(error_rate=0.0022, tokens_out=538),
    "gpt-4.1-mini-t1": SimProfile(error_rate=0.0040, tokens_out=580),
    "gpt-4.1-nano": SimProfile(error_rate=0.3571, tokens_out=842),
    "o3-mini": SimProfile(error_rate=0.0018, tokens_out=535),
    "haiku-4.5": SimProfile(error_rate=0.1839, tokens_out=588),
    "gpt-oss-20b": SimProfile(error_rate=0.0358, tokens_out=1104),
    "qwen3": SimProfile(error_rate=0.2342, tokens_out=449),
    "deepseek-v3.1": SimProfile(error_rate=0.0569, tokens_out=1004),
    "kimi-k2": SimProfile(error_rate=0.0393, tokens_out=925),
    "perfect": SimProfile(error_rate=0.0, tokens_out=400),
    # A deliberately bad model: voting with a large k must still get it right.
    "hostile": SimProfile(
        error_rate=0.1,
        malformed_rate=0.10,
        ramble_rate=0.05,
        hard_fraction=0.01,
        hard_error_rate=0.35,
        correlated=0.3,
        tokens_out=500,
    ),
}

_FILLER = "Let me look at the previous move and the current state, then apply the strategy. "
_RAMBLE = (
    "Hmm, wait. Let me reconsider every peg carefully, one at a time, and double-check the rules "
    "again before committing to an answer, because it is easy to lose track here. "
)


def _role_oracles() -> tuple[Oracle, ...]:
    """The roles of recursive multiplication (decomposer, solver, composer, judge), which no task registers."""
    from maker.backends._sim_roles import ROLE_ORACLES  # imports this module

    return ROLE_ORACLES


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


class SimModel:
    """The simulated model's brain: messages in, reply text and token counts out."""

    def __init__(self, profile: SimProfile, *, seed: int = 0, task_oracles: list[Oracle] | None = None) -> None:
        self.profile = profile
        self.seed = seed
        self._oracles = task_oracles if task_oracles is not None else [*oracles(), *_role_oracles()]
        self._last: tuple[str, tuple[Oracle | None, Any, int, bool]] = ("\0", (None, None, 0, False))

    def _solve(self, messages: Messages) -> tuple[Oracle | None, Any, int, bool]:
        """(oracle, right answer, the prompt's seed, is it a hard step), cached per prompt."""
        user = messages[-1]["content"] if messages else ""
        last = self._last
        if last[0] == user:  # the k samples of a step share one prompt
            return last[1]
        base = self.seed * 1_000_003 + _crc(user)
        hard = Random(base).random() < self.profile.hard_fraction
        found: tuple[Oracle | None, Any, int, bool] = (None, None, base, hard)
        for oracle in self._oracles:
            answer = oracle.solve(messages)
            if answer is not None:
                found = (oracle, answer, base, hard)
                break
        self._last = (user, found)
        return found

    def reply(self, messages: Messages, temperature: float, max_tokens: int, draw: int) -> tuple[str, str, int]:
        """Return (text, finish_reason, output tokens) for one sample.

        `draw` distinguishes samples of the same prompt; at temperature 0 it is
        ignored, so the greedy sample of a prompt is always the same reply.
        """
        drafted = draft_reply(self, messages, max_tokens, draw)
        if drafted is not None:
            return drafted
        p = self.profile
        oracle, answer, base, hard = self._solve(messages)
        if oracle is None:
            return "I am not sure what you are asking.", "stop", 12
        tune = getattr(oracle, "tune", None)  # an oracle with its own error rates per prompt (_sim_roles)
        if tune is not None:
            p = tune(messages, answer, p)
        rng = Random(base + 2 if temperature == 0 else base * 7919 + draw)
        roll = rng.random()
        if roll < p.malformed_rate:
            return self._malformed(oracle.render(answer), rng), "stop", self._tokens(rng, p.tokens_out)
        ramble = roll < p.malformed_rate + p.ramble_rate
        error_rate = p.hard_error_rate if hard else (p.ramble_error_rate if ramble else p.error_rate)
        if rng.random() < error_rate:
            # A correlated mistake is the same at every sample of the step.
            wrong_rng = Random(base + 1) if rng.random() < p.correlated else rng
            answer = oracle.wrong(answer, wrong_rng)
        body = oracle.render(answer)
        if getattr(oracle, "bare", False):
            # A task whose reply is the answer alone (count, letters): no thinking aloud, a token a character.
            return body, "stop", len(body)
        if ramble:
            tokens = self._tokens(rng, int(p.tokens_out * 1.7))
            text = _FILLER + _RAMBLE * 3 + body
        else:
            tokens = self._tokens(rng, p.tokens_out)
            text = _FILLER + body
        if tokens > max_tokens:
            # Cut off at the output cap: the answer at the end never got written.
            return text[: len(text) // 3], "length", max_tokens
        return text, "stop", tokens

    @staticmethod
    def _tokens(rng: Random, mean: int) -> int:
        return max(1, int(rng.gauss(mean, mean * 0.15)))

    @staticmethod
    def _malformed(body: str, rng: Random) -> str:
        kind = rng.randrange(4)
        if kind == 0:
            return body.splitlines()[0]  # the second required line is missing
        if kind == 1:
            return body.replace("[", "(").replace("]", ")")
        if kind == 2:
            return body.replace("=", ":")
        return "The next move is obvious: move the smallest disk to the right."

    def latency(self, rng: Random, messages: Messages | None = None) -> float:
        """Seconds for one reply; `messages` lets a draft take as long as its length says."""
        p = self.profile
        if p.latency <= 0:
            return 0.0
        s = p.latency_sigma
        return p.latency * math.exp(rng.gauss(0.0, s) - s * s / 2) * latency_scale(self, messages)


def input_tokens(messages: Messages) -> int:
    """A tokenizer-free estimate (about 4 characters a token), stable across runs."""
    return sum(len(m["content"]) for m in messages) // 4 + 4 * len(messages)


class SimBackend:
    """The simulated model as an in-process backend (`sim/PROFILE`)."""

    def __init__(self, model: str, profile: SimProfile, *, seed: int = 0, oracles: list[Oracle] | None = None) -> None:
        self.model = model
        # oracles: what the model knows (default: every registered task's).
        self.sim = SimModel(profile, seed=seed, task_oracles=oracles)
        self._seed = seed
        # Never waits, so the microagent may draw its samples in order, inline.
        self.instant = profile.latency <= 0

    async def complete(self, request: Request) -> Completion:
        text, finish, out = self.sim.reply(request.messages, request.temperature, request.max_tokens, request.sample)
        delay = 0.0
        if self.sim.profile.latency > 0:
            rng = Random(hash((self._seed, request.sample, out, len(text))))
            delay = self.sim.latency(rng, request.messages)
            await anyio.sleep(delay)
        return Completion(text, finish, input_tokens(request.messages), out, delay)

    async def aclose(self) -> None:
        return None
