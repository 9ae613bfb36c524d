"""`maker calibrate`: measure a model's per-step error rate before paying for a run.

As in the paper's error estimation: pick N random steps of a task whose correct
inputs are known, ask the model once at each (no voting), and score the answers
against ground truth. The steps run independently and concurrently through the
ordinary runtime (`arun(..., independent=steps)` with the `Single` rule), so a
calibration writes a trace like any run and `maker analyze` reads it too.

The result answers the question a user has before a big run: can voting fix
this model, and if so, at what k and what cost for the whole task?

With `repeats` > 1 each picked step is asked that many times (a fixed-size
majority vote, so every sample is recorded), which measures success per
input. That is where systematic errors show: an input the model answers
wrong most of the time (p̂ ≤ 0.5) is one where ahead-by-k voting makes the
wrong answer win with confidence, whatever the overall error rate says.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from maker._budget import Budget
from maker._independent import IndependentSteps, independent_steps
from maker._pricing import Price, load_prices, price_of
from maker._recorder import Progress
from maker._runner import DEFAULT_MODEL, arun, release_loop
from maker._settings import RunSettings
from maker.analysis._analyze import Analysis, analyze
from maker.analysis._estimate import Estimate, estimate
from maker.analysis._stats import Proportion
from maker.backends._protocol import Backend
from maker.errors import ConfigError
from maker.tasks._protocol import SampleableTask, Task
from maker.traces._reader import load_trace
from maker.voting import Majority, Single, Voting
from maker.voting._theory import k_min

DEFAULT_SAMPLES = 200
# Per step, as in a run: a step whose replies are all red-flagged this many times
# would stop a run too, so it ends the calibration (with a verdict).
DEFAULT_MAX_SAMPLES = 100
LOCK_IN_LINE = (
    "voting will make these answers confidently wrong: where p ≤ 0.5, more votes make the wrong answer likelier to win"
)


@dataclass(frozen=True, slots=True)
class InputRate:
    """How often the model answered one input right, over its repeated samples.

    step: the step index; inputs: that step's ground-truth inputs (JSON);
    success: right answers among valid (not red-flagged) replies, with its
    Wilson interval; answers: how often each vote key came back.
    """

    step: int
    inputs: dict[str, Any]
    truth: str | None
    success: Proportion
    answers: dict[str, int]

    @property
    def systematic(self) -> bool:
        """Right at most half the time: voting locks in the wrong answer here."""
        return self.success.n > 0 and self.success.value <= 0.5

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.inputs.items())
        s = self.success
        top = ", ".join(f"{n}× {key!r}" for key, n in sorted(self.answers.items(), key=lambda kv: -kv[1])[:3])
        return (
            f"step {self.step} ({shown}): p̂ = {s.value:.2f} ({s.hits}/{s.n}, 95% CI {s.low:.2f}–{s.high:.2f}); "
            f"expected {self.truth!r}, got {top}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "inputs": self.inputs,
            "truth": self.truth,
            "success": self.success.to_json(),
            "answers": self.answers,
            "systematic": self.systematic,
        }


def input_rates(trace: str | Path, task: SampleableTask | None = None) -> tuple[InputRate, ...]:
    """Per-input success from a calibration trace (any trace with ground truth works).

    Counts every valid sample, late ones included: each is an independent
    draw of the model at that input, whatever the vote did with it.
    """
    t = load_trace(trace)
    truth = {_step_int(d["step"]): str(d["truth"]) for d in t.decisions if d.get("truth") is not None}
    out = []
    for step, samples in sorted(((_step_int(k), v) for k, v in t.samples_by_step().items()), key=lambda kv: kv[0]):
        if step not in truth:
            continue
        keys = [s["key"] for s in samples if s.get("key") is not None]
        answers: dict[str, int] = {}
        for key in keys:
            answers[key] = answers.get(key, 0) + 1
        inputs = dict(task.step_inputs(step)) if task is not None else {}
        hits = answers.get(truth[step], 0)
        out.append(InputRate(step, inputs, truth[step], Proportion(hits, len(keys)), answers))
    return tuple(out)


def _step_int(step: Any) -> int:
    return int(step) if isinstance(step, int | str) and str(step).isdigit() else -1


@dataclass(frozen=True, slots=True)
class Calibration:
    """What one calibration measured, and the verdict.

    voting_helps: True when a vote is right more than half the time (the lower
        end of its 95% interval above 0.5); False when it is not (at or under 0.5,
        or no reply ever became a vote); None when the interval straddles 0.5.
    verdict: the same, as one plain sentence for people.
    """

    task: str
    params: dict[str, Any]
    model: str
    steps: tuple[int, ...]
    analysis: Analysis
    estimate: Estimate | None
    k_min_pessimistic: int | None
    voting_helps: bool | None
    verdict: str
    outcome: str
    stopped: str | None
    trace: Path | None
    repeats: int = 1
    inputs: tuple[InputRate, ...] = ()

    @property
    def systematic(self) -> tuple[InputRate, ...]:
        """Inputs answered right at most half the time (only measurable with repeats > 1)."""
        return tuple(r for r in self.inputs if self.repeats > 1 and r.systematic)

    @property
    def systematic_verdict(self) -> str | None:
        """One line naming the inputs voting will get confidently wrong, or None when there are none."""
        bad = self.systematic
        if not bad:
            return None
        return f"{len(bad)} input(s) with p̂ ≤ 0.5: {LOCK_IN_LINE}"

    @property
    def error(self) -> Proportion:
        """Wrong answers among valid replies (1 − p), with its Wilson interval."""
        return self.analysis.vote_error

    @property
    def valid(self) -> Proportion:
        """Replies that passed the red flags (v)."""
        return self.analysis.valid

    @property
    def p(self) -> float:
        return self.analysis.p

    @property
    def mean_tokens_out(self) -> float:
        return self.analysis.mean_tokens_out

    def to_json(self) -> dict[str, Any]:
        a = self.analysis
        return {
            "task": self.task,
            "params": self.params,
            "model": self.model,
            "steps_sampled": len(self.steps),
            "outcome": self.outcome,
            "stopped": self.stopped,
            "trace": None if self.trace is None else str(self.trace),
            "error_rate": self.error.to_json(),
            "p": None if self.error.n == 0 else self.p,
            "valid_rate": self.valid.to_json(),
            "red_flags": a.flags,
            "samples": a.samples,
            "mean_tokens_in": a.mean_tokens_in,
            "mean_tokens_out": a.mean_tokens_out,
            "by_length": [b.to_json() for b in a.by_length],
            "k_min": None if self.estimate is None else self.estimate.k_min,
            "k_min_pessimistic": self.k_min_pessimistic,
            "estimate": None if self.estimate is None else self.estimate.to_json(),
            "voting_helps": self.voting_helps,
            "verdict": self.verdict,
            "repeats": self.repeats,
            "inputs": [r.to_json() for r in self.inputs] if self.repeats > 1 else [],
            "systematic": [r.to_json() for r in self.systematic],
            "systematic_verdict": self.systematic_verdict,
        }


def pick_steps(total: int, samples: int, seed: int) -> list[int]:
    """`samples` distinct random steps of `total`, sorted; the seed makes the draw repeatable."""
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    if samples > total:
        raise ConfigError(
            f"asked for {samples} samples but the task has only {total} steps; ask for fewer or pick a bigger task"
        )
    return list(IndependentSteps(total, samples, seed))  # the one choice every independent run makes


async def acalibrate(
    task: Task,
    *,
    model: str = DEFAULT_MODEL,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    concurrency: int = 16,
    temperature: float = 0.1,
    max_output_tokens: int = 750,
    max_samples_per_step: int = DEFAULT_MAX_SAMPLES,
    target: float = 0.95,
    repeats: int = 1,
    trace: str | Path | Literal[False] | None = None,
    backend: Backend | None = None,
    progress: Progress | None = None,
    prices: Mapping[str, Price] | None = None,
    budget: Budget | None = None,
) -> Calibration:
    """Calibrate `model` on `samples` random steps of `task`; see `Calibration`.

    trace: a path to keep the calibration's trace at; None (the default) or False
        keeps none (the samples go through a temporary trace, which is then deleted).
    max_samples_per_step: cap on redraws after red flags; a step that hits it
        stops the calibration (the verdict then says so).
    repeats: samples per picked step (> 1: per-input success, which finds
        systematic errors; see `Calibration.systematic`).
    backend, progress, budget: as for `maker.arun` (an open backend is not closed here).
    """
    if not isinstance(task, SampleableTask):
        raise ConfigError(f"task {task.name!r} has no ground-truth step inputs, so it cannot be calibrated")
    pick_steps(task.steps, samples, seed)  # refuses what cannot be picked
    steps = independent_steps(task, samples, seed=seed)  # recorded in the trace by count and seed
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    voting = Voting(
        rule=Single() if repeats == 1 else Majority(repeats),
        first_temperature=temperature,
        temperature=temperature,
        max_output_tokens=max_output_tokens,
        max_samples_per_step=max_samples_per_step,
    )
    run = {
        "model": model,
        "voting": voting,
        "settings": RunSettings(concurrency=concurrency, seed=seed),
        "backend": backend,
        "progress": progress,
        "budget": budget,
        "independent": steps,
        "repeats": repeats,
    }
    prices = prices if prices is not None else load_prices()
    if trace is None or trace is False:
        with tempfile.TemporaryDirectory(prefix="maker-calibrate-") as tmp:
            return await _calibrate(task, Path(tmp) / "calibration.jsonl", False, prices, target, run)
    return await _calibrate(task, trace, True, prices, target, run)


async def _calibrate(
    task: SampleableTask,
    trace: str | Path | None,
    keep: bool,
    prices: Mapping[str, Price],
    target: float,
    run: dict[str, Any],
) -> Calibration:
    repeats = run.pop("repeats")
    result = await arun(task, trace=trace, **run)
    assert result.trace is not None
    analysis = analyze(result.trace, prices=prices)
    est, pessimistic = _project(analysis, task.steps, target, price_of(result.model, prices), result.model)
    helps, verdict = _verdict(analysis, est, pessimistic, task.steps, result.error)
    return Calibration(
        task.name,
        task.params(),
        result.model,
        tuple(run["independent"]),
        analysis,
        est,
        pessimistic,
        helps,
        verdict,
        result.outcome,
        None if result.error is None else str(result.error),
        result.trace if keep else None,
        repeats,
        input_rates(result.trace, task),
    )


def calibrate(task: Task, **options: Any) -> Calibration:
    """Blocking `acalibrate` for scripts and notebooks; a `backend=` stays yours, as with `maker.run`."""

    async def calibrate_then_release() -> Calibration:
        try:
            return await acalibrate(task, **options)
        finally:
            await release_loop(options.get("backend"))

    return anyio.run(calibrate_then_release)


def _project(
    a: Analysis, steps: int, target: float, price: Price | None, model: str
) -> tuple[Estimate | None, int | None]:
    error, valid = a.vote_error, a.valid
    if not error.n or not valid.hits:
        return None, None
    est = estimate(
        error.value,
        steps,
        target=target,
        valid_rate=valid.value,
        tokens_in=a.mean_tokens_in,
        tokens_out=a.mean_tokens_out,
        price=price,
        price_source=model,
    )
    pessimistic = k_min(1.0 - error.high, steps, target) if error.high < 0.5 else None
    return est, pessimistic


def _verdict(
    a: Analysis, est: Estimate | None, pessimistic: int | None, steps: int, error: Exception | None
) -> tuple[bool | None, str]:
    stopped = f" (calibration stopped early: {error})" if error is not None else ""
    e = a.vote_error
    if not e.n:
        return False, (
            f"voting cannot help this model: none of its {a.samples:,} replies passed the red flags, "
            f"so no answer ever got a vote{stopped}"
        )
    p, p_low, p_high = 1 - e.value, 1 - e.high, 1 - e.low
    ci = f"{p:.1%} of the time (95% CI {p_low:.1%}–{p_high:.1%})"
    if p <= 0.5:
        return False, (
            f"voting cannot help this model: a vote is right only {ci}, at most half the time, so "
            f"more votes make a wrong answer likelier to win{stopped}"
        )
    if p_low <= 0.5:
        return None, (
            f"cannot tell yet: a vote is right {ci}; the interval reaches 50%, where voting stops "
            f"helping: calibrate with more samples{stopped}"
        )
    assert est is not None and est.k_min is not None
    row = est.at_k_min
    cost = "" if row is None or row.cost is None else f", about ${row.cost:,.0f}"
    worst = f" ({pessimistic} at the pessimistic end of the interval)" if pessimistic not in (None, est.k_min) else ""
    return True, (
        f"voting can help: a vote is right {ci}; {steps:,} steps need k = {est.k_min}{worst} for "
        f"{est.target:.0%} success, {row.samples_per_step if row else 0:.2f} samples per step{cost}"
        f"{stopped}"
    )
