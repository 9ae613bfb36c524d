"""`maker calibrate`: single samples at random steps, scored against ground truth."""

from __future__ import annotations

import json
import math
import sys

import anyio
import pytest

from maker.analysis import analyze
from maker.analysis._calibrate import acalibrate, calibrate, pick_steps
from maker.backends import SimServerConfig, open_backend, serve_sim
from maker.cli._app import main
from maker.errors import ConfigError
from maker.tasks import build_task
from maker.traces import read_events
from maker.voting import k_min

pytestmark = pytest.mark.timeout(120)

HANOI_14 = build_task("hanoi", disks=14)


def _valid_share(mean_tokens: int, cap: int = 750) -> float:
    """The simulator's valid rate: its token counts are int(gauss(mean, 0.15·mean)); above the cap is cut off."""
    z = (cap + 1 - mean_tokens) / (0.15 * mean_tokens)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize(
    ("model", "error_rate", "valid_rate", "seed"),
    [
        ("sim/gpt-4.1-mini?error_rate=0.05", 0.05, _valid_share(538), 0),
        ("sim/qwen3", 0.2342, _valid_share(449), 1),
        ("sim/gpt-4.1-nano", 0.3571, _valid_share(842), 2),
    ],
)
def test_the_95_percent_interval_covers_the_profiles_true_rates(model, error_rate, valid_rate, seed):
    cal = calibrate(HANOI_14, model=model, samples=800, seed=seed, trace=False)
    assert cal.outcome == "measured" and cal.stopped is None
    assert cal.error.n == 800  # one vote per step: red-flagged replies are redrawn
    assert cal.error.covers(error_rate), (cal.error.value, cal.error.interval)
    assert cal.valid.covers(valid_rate), (cal.valid.value, cal.valid.interval)
    assert cal.error.high - cal.error.low < 0.08


def test_a_good_model_gets_k_min_and_a_cost_for_the_whole_task():
    cal = calibrate(build_task("hanoi", disks=20), model="sim/gpt-4.1-mini?error_rate=0.01", samples=400, trace=False)
    assert cal.voting_helps is True
    assert cal.estimate is not None and cal.estimate.steps == 2**20 - 1
    assert cal.estimate.k_min == k_min(cal.p, 2**20 - 1)
    assert cal.k_min_pessimistic == k_min(1 - cal.error.high, 2**20 - 1)
    assert cal.k_min_pessimistic >= cal.estimate.k_min
    row = cal.estimate.at_k_min
    assert row.cost is not None and row.cost > 0  # gpt-4.1-mini has a price
    assert cal.verdict.startswith("voting can help") and f"k = {cal.estimate.k_min}" in cal.verdict
    assert 500 < cal.mean_tokens_out < 560


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("sim/gpt-4.1-mini?error_rate=0.7", "a vote is right only"),
        ("sim/gpt-4.1-mini?error_rate=1", "a vote is right only 0.0%"),
        ("sim/gpt-4.1-mini?malformed_rate=1", "none of its"),
    ],
)
def test_a_model_voting_cannot_help_gets_a_plain_verdict(model, words):
    cal = calibrate(HANOI_14, model=model, samples=200, max_samples_per_step=5, trace=False)
    assert cal.voting_helps is False
    assert cal.verdict.startswith("voting cannot help this model")
    assert words in cal.verdict
    assert cal.to_json()["voting_helps"] is False


def test_steps_that_never_get_a_valid_reply_are_measured_not_fatal():
    # Independent steps are measurements: a step that hits its cap is recorded
    # as undecided and calibration goes on to the next one.
    cal = calibrate(
        HANOI_14, model="sim/gpt-4.1-mini?malformed_rate=1", samples=50, max_samples_per_step=4, trace=False
    )
    assert cal.outcome == "measured" and cal.stopped is None
    assert cal.voting_helps is False and "none of its 200 replies passed the red flags" in cal.verdict
    # Every recorded sample is counted, including those of steps that never decided.
    a = cal.analysis
    assert a.undecided == 50 and a.samples == 4 * a.undecided
    assert sum(b.count for b in a.by_length) == sum(b.flagged for b in a.by_length) == a.samples


def test_an_interval_straddling_one_half_cannot_tell_yet():
    cal = calibrate(HANOI_14, model="sim/gpt-4.1-mini?error_rate=0.48", samples=60, seed=5, trace=False)
    assert 1 - cal.error.high <= 0.5 < 1 - cal.error.low  # the interval reaches 0.5 from above
    assert cal.voting_helps is None and cal.verdict.startswith("cannot tell yet")


def test_the_trace_is_a_run_trace_that_analyze_reads(tmp_path):
    path = tmp_path / "cal.jsonl"
    cal = calibrate(HANOI_14, model="sim/gpt-4.1-mini?error_rate=0.05", samples=300, seed=7, trace=path)
    assert cal.trace == path
    events = list(read_events(path))
    header = events[0]
    assert header["mode"] == "independent" and header["voting"]["rule"] == "single"
    assert header["voting"]["first_temperature"] == header["voting"]["temperature"] == 0.1
    steps = [e["step"] for e in events if e["type"] == "decision"]
    assert sorted(steps) == list(cal.steps) == pick_steps(HANOI_14.steps, 300, 7)
    a = analyze(path)
    assert a.reference == "ground truth" and a.vote_error == cal.error and a.convergence is None


def test_steps_are_a_seeded_random_sample_without_repeats():
    a, b, c = pick_steps(1023, 200, 1), pick_steps(1023, 200, 1), pick_steps(1023, 200, 2)
    assert a == b != c
    assert len(set(a)) == 200 and a == sorted(a) and a[0] >= 0 and a[-1] < 1023
    with pytest.raises(ConfigError, match="only 1023 steps"):
        pick_steps(1023, 1024, 0)


def test_a_task_without_ground_truth_inputs_cannot_be_calibrated():
    with pytest.raises(ConfigError, match="cannot be calibrated"):
        calibrate(build_task("sorting"), samples=5, trace=False)


@pytest.mark.anyio
async def test_calibration_over_real_http_through_the_openai_client(tmp_path):
    config = SimServerConfig(profile="gpt-4.1-mini?error_rate=0.1", models=("gpt-4.1-mini",))
    async with serve_sim(config) as server:
        backend = open_backend("openai/gpt-4.1-mini", base_url=server.base_url, api_key="sk-test")
        try:
            cal = await acalibrate(
                build_task("hanoi", disks=12),
                model="openai/gpt-4.1-mini",
                samples=400,
                concurrency=8,
                backend=backend,
                trace=tmp_path / "http.jsonl",
            )
        finally:
            await backend.aclose()
        stats = server.stats
    assert cal.model == "openai/gpt-4.1-mini" and cal.outcome == "measured"
    assert cal.error.covers(0.1)
    assert cal.analysis.samples == stats.completions  # every reply the server sent is in the trace
    assert cal.analysis.tokens_out > 0


def test_cli_json_verdict_for_a_bad_model(capsys, tmp_path):
    code = main(
        [
            "calibrate",
            "hanoi",
            "--disks",
            "12",
            "--samples",
            "150",
            "--model",
            "sim/gpt-4.1-mini?error_rate=0.6",
            "--json",
            "--trace",
            str(tmp_path / "c.jsonl"),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["voting_helps"] is False and out["k_min"] is None
    assert out["verdict"].startswith("voting cannot help this model")
    assert out["steps_sampled"] == 150 and out["trace"] == str(tmp_path / "c.jsonl")


def test_cli_table_shows_the_rates_and_the_verdict(capsys):
    code = main(["calibrate", "hanoi", "--disks", "12", "--samples", "150", "--quiet", "--no-trace"])
    assert code == 0
    out = capsys.readouterr().out
    for words in ("error rate 1 − p", "valid rate v", "error rate by response length", "k_min", "voting can help"):
        assert words in out


@pytest.mark.anyio
async def test_cli_calibrates_an_openai_compatible_server(tmp_path):
    config = SimServerConfig(profile="gpt-4.1-mini?error_rate=0.65", models=("tiny",))
    async with serve_sim(config) as server:
        done = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "maker.cli",
                "calibrate",
                "hanoi",
                "--disks",
                "10",
                "--samples",
                "100",
                "--model",
                "openai/tiny",
                "--base-url",
                server.base_url,
                "--json",
                "--no-trace",
            ],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
        )
    assert done.returncode == 0, done.stderr.decode()
    out = json.loads(done.stdout)
    assert out["model"] == "openai/tiny" and out["voting_helps"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "sorting", "--samples", "5"], "cannot be calibrated"),
        (["calibrate", "hanoi", "--disks", "3", "--samples", "8"], "only 7 steps"),
        (["calibrate", "hanoi", "--model", "nope/x"], "unknown model provider"),
        (["calibrate", "hanoi", "--temperature", "3"], "temperature"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
