"""The simulated model: deterministic, wrong as often as its profile says, and
misbehaving in the ways the red flags are for.

Rates are measured the way a user would measure a real model: draw samples at
many Hanoi steps, parse them with the task's strict parser, and compare with
ground truth. Bounds are four standard errors wide, so a correct simulator
fails them about once in 16,000 runs and a wrong rate fails them for sure.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

import maker
from maker.backends import PROFILES, Request, SimBackend, SimModel, SimProfile, open_backend
from maker.errors import ConfigError
from maker.tasks import build_task
from maker.tasks.hanoi import Hanoi, HanoiStep
from maker.traces import load_trace
from maker.voting import AheadByK, ParseError, Voting

TASK, STEP = Hanoi(8), HanoiStep(8)
PROMPTS = [
    (STEP.prompt(TASK.step_inputs(i)), STEP.vote_key(STEP.expected(TASK.step_inputs(i)))) for i in range(TASK.steps)
]


def sample(
    profile: SimProfile, draws: int, *, temperature: float = 0.1, max_tokens: int = 10_000, seed: int = 0
) -> list[tuple[int, str | None, str]]:
    """(step, vote key or None if flagged, finish reason) for `draws` samples at each of 255 steps."""
    model = SimModel(profile, seed=seed)
    out = []
    for step, (messages, _) in enumerate(PROMPTS):
        for draw in range(1, draws + 1):
            text, finish, tokens = model.reply(messages, temperature, max_tokens, draw)
            key = None
            if finish != "length" and tokens <= max_tokens:
                with contextlib.suppress(ParseError):
                    key = STEP.vote_key(STEP.parse(text))
            out.append((step, key, finish))
    return out


def wrong_rate(samples: list[tuple[int, str | None, str]]) -> tuple[float, int]:
    votes = [(step, key) for step, key, _ in samples if key is not None]
    wrong = sum(key != PROMPTS[step][1] for step, key in votes)
    return wrong / len(votes), len(votes)


def within(measured: float, rate: float, n: int) -> bool:
    return abs(measured - rate) <= 4 * math.sqrt(rate * (1 - rate) / n) + 1e-9


# ---------------------------------------------------------------------------
# Profiles


@pytest.mark.parametrize(
    ("name", "error_rate", "tokens_out"),
    [
        ("gpt-4.1-mini", 0.0022, 538),
        ("gpt-4.1-mini-t1", 0.0040, 580),
        ("gpt-4.1-nano", 0.3571, 842),
        ("gpt-oss-20b", 0.0358, 1104),
        ("o3-mini", 0.0018, 535),
        ("haiku-4.5", 0.1839, 588),
        ("qwen3", 0.2342, 449),
        ("deepseek-v3.1", 0.0569, 1004),
        ("kimi-k2", 0.0393, 925),
    ],
)
def test_profiles_carry_the_papers_measured_rates(name: str, error_rate: float, tokens_out: int) -> None:
    profile = PROFILES[name]
    assert (profile.error_rate, profile.tokens_out) == (error_rate, tokens_out)
    assert open_backend(f"sim/{name}").model == f"sim/{name}"


def test_the_hostile_profile_is_the_issues_hostile_model() -> None:
    hostile = PROFILES["hostile"]
    assert (hostile.error_rate, hostile.malformed_rate, hostile.ramble_rate, hostile.hard_fraction) == (
        0.1,
        0.10,
        0.05,
        0.01,
    )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("sim/nope", "unknown simulated model 'nope'"),
        ("sim/hostile?error_rate=2", "is a probability"),
        ("sim/hostile?error_rate=-1", "must be >= 0"),
        ("sim/hostile?latency=soon", "needs a number"),
        ("sim/hostile?colour=red", "unknown sim option 'colour'"),
    ],
)
def test_bad_profiles_and_options_are_config_errors(model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_backend(model)


def test_options_override_a_profile() -> None:
    backend = open_backend("sim/gpt-4.1-mini?error_rate=0.25&tokens_out=100")
    assert isinstance(backend, SimBackend)
    assert backend.sim.profile == replace(PROFILES["gpt-4.1-mini"], error_rate=0.25, tokens_out=100)


# ---------------------------------------------------------------------------
# Determinism


def test_the_same_seed_gives_the_same_replies_in_any_order() -> None:
    profile = PROFILES["hostile"]
    forward = [SimModel(profile, seed=7).reply(m, 0.1, 750, d) for m, _ in PROMPTS[:40] for d in range(4)]
    model = SimModel(profile, seed=7)
    backward = {
        (i, d): model.reply(m, 0.1, 750, d)
        for i, (m, _) in reversed(list(enumerate(PROMPTS[:40])))
        for d in reversed(range(4))
    }
    assert forward == [backward[i, d] for i in range(40) for d in range(4)]


def test_another_seed_gives_other_replies() -> None:
    a = sample(PROFILES["hostile"], 2, seed=1)
    b = sample(PROFILES["hostile"], 2, seed=2)
    assert a != b


def test_the_greedy_sample_of_a_prompt_never_varies() -> None:
    model = SimModel(PROFILES["hostile"], seed=0)
    messages = PROMPTS[10][0]
    assert len({model.reply(messages, 0.0, 750, draw) for draw in range(20)}) == 1
    assert len({model.reply(messages, 0.1, 750, draw) for draw in range(20)}) > 1


def test_a_whole_run_is_reproducible(tmp_path: Path) -> None:
    def run(name: str) -> list[tuple[object, ...]]:
        result = maker.run(
            build_task("hanoi", disks=5),
            model="sim/hostile",
            voting=Voting(rule=AheadByK(4)),
            settings=maker.RunSettings(seed=11),
            trace=tmp_path / name,
        )
        return [(s["step"], s["i"], s["text"], s["tokens_out"], s["flag"]) for s in load_trace(result.trace).samples]

    assert run("a.jsonl") == run("b.jsonl")


# ---------------------------------------------------------------------------
# Error rates


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.45])
def test_the_measured_error_rate_matches_the_knob(rate: float) -> None:
    measured, n = wrong_rate(sample(SimProfile(error_rate=rate), 8))
    assert n == 8 * 255
    assert within(measured, rate, n), (measured, rate)


@pytest.mark.parametrize(
    ("name", "draws"), [("gpt-4.1-mini", 80), ("gpt-4.1-nano", 8), ("haiku-4.5", 8), ("gpt-oss-20b", 20)]
)
def test_the_measured_error_rate_matches_the_profile(name: str, draws: int) -> None:
    profile = PROFILES[name]
    measured, n = wrong_rate(sample(profile, draws))
    assert within(measured, profile.error_rate, n), (measured, profile.error_rate)


def test_greedy_samples_across_steps_are_wrong_at_the_same_rate() -> None:
    profile = SimProfile(error_rate=0.3)
    measured, n = wrong_rate(sample(profile, 1, temperature=0.0))
    assert within(measured, 0.3, n), measured


def test_hard_steps_are_a_property_of_the_step() -> None:
    profile = SimProfile(error_rate=0.0, hard_fraction=0.2, hard_error_rate=0.6)
    wrong_per_step = Counter(step for step, key, _ in sample(profile, 12) if key != PROMPTS[step][1])
    hard = [step for step in range(TASK.steps) if wrong_per_step[step] > 0]
    # Easy steps are never wrong; hard ones are wrong more than half the time.
    assert within(len(hard) / TASK.steps, 0.2, TASK.steps)
    assert within(sum(wrong_per_step.values()) / (12 * len(hard)), 0.6, 12 * len(hard))


@pytest.mark.parametrize(("correlated", "agree"), [(1.0, True), (0.0, False)])
def test_correlated_errors_land_on_one_wrong_answer(correlated: float, agree: bool) -> None:
    profile = SimProfile(error_rate=0.5, correlated=correlated)
    wrong_keys: dict[int, set[str]] = {}
    for step, key, _ in sample(profile, 10):
        if key is not None and key != PROMPTS[step][1]:
            wrong_keys.setdefault(step, set()).add(key)
    if agree:
        assert all(len(keys) == 1 for keys in wrong_keys.values())
    else:
        assert sum(len(keys) > 1 for keys in wrong_keys.values()) > TASK.steps // 2


# ---------------------------------------------------------------------------
# Misbehaviour the red flags are for


def test_malformed_replies_are_format_flags() -> None:
    samples = sample(SimProfile(error_rate=0.0, malformed_rate=0.3), 8)
    flagged = [s for s in samples if s[1] is None]
    assert within(len(flagged) / len(samples), 0.3, len(samples))
    assert all(finish == "stop" for _, _, finish in flagged)  # rejected by the parser, not by length


def test_rambling_replies_are_long_flagged_and_more_often_wrong() -> None:
    profile = SimProfile(error_rate=0.02, ramble_rate=0.3, ramble_error_rate=0.5, tokens_out=500)
    capped = sample(profile, 8, max_tokens=750)
    cut = [s for s in capped if s[2] == "length"]
    assert 0.15 < len(cut) / len(capped) < 0.35  # most rambles run past 750 tokens and are cut off
    # Without the cap, rambles are kept and pull the error rate up towards 0.3·0.5 + 0.7·0.02.
    measured, n = wrong_rate(sample(profile, 8))
    assert within(measured, 0.3 * 0.5 + 0.7 * 0.02, n)


def test_output_tokens_follow_the_profile() -> None:
    model = SimModel(SimProfile(error_rate=0.0, tokens_out=500), seed=0)
    tokens = [model.reply(m, 0.1, 10_000, d)[2] for m, _ in PROMPTS for d in range(4)]
    assert 480 < sum(tokens) / len(tokens) < 520
    assert min(tokens) < 450 < 550 < max(tokens)  # spread, not a constant


def test_an_unknown_prompt_gets_a_reply_the_parser_rejects() -> None:
    text, _finish, _ = SimModel(PROFILES["perfect"]).reply(({"role": "user", "content": "Hello?"},), 0.0, 750, 0)
    with pytest.raises(ParseError):
        STEP.parse(text)


def test_latency_is_simulated_only_when_asked_for() -> None:
    assert open_backend("sim/gpt-4.1-mini").instant  # type: ignore[attr-defined]
    slow = open_backend("sim/gpt-4.1-mini?latency=0.002")
    assert not getattr(slow, "instant", False)
    request = Request(PROMPTS[0][0], 0.0, 750, 0, 0)
    completion = anyio.run(slow.complete, request)
    assert completion.latency > 0 and completion.input_tokens > 0
    assert STEP.vote_key(STEP.parse(completion.text)) == PROMPTS[0][1]
