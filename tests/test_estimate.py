"""`maker estimate` against the paper: method.md §6's table and §4's worked figures."""

from __future__ import annotations

import json
import math
import random

import pytest

from maker import Price
from maker.analysis import estimate, majority_equivalent
from maker.cli._app import main
from maker.errors import ConfigError

S20 = 2**20 - 1  # 1,048,575 steps: 20-disk Hanoi

# method.md §6 (paper, Figure 6b; t = 0.95, 20 disks): model, $/M out, mean output tokens, 1−p, k_min, cost $K.
PAPER = [
    ("gpt-4.1-nano", 0.4, 842, 0.3571, 29, 41.9),
    ("gpt-4.1-mini (τ=1.0)", 1.6, 580, 0.0040, 4, 4.9),
    ("gpt-4.1-mini (τ=0.1)", 1.6, 538, 0.0022, 3, 3.5),
    ("o3-mini (low)", 4.4, 535, 0.0018, 3, 9.4),
    ("haiku-4.5", 5.0, 588, 0.1839, 12, 71.2),
    ("llama-3.2-3B", 0.06, 434, 1.0, None, None),
    ("gpt-oss-20B", 0.2, 1104, 0.0358, 6, 1.7),
    ("qwen3", 0.6, 449, 0.2342, 15, 11.5),
    ("deepseek-v3.1", 1.7, 1004, 0.0569, 6, 14.6),
    ("kimi-k2", 3.0, 925, 0.0393, 6, 22.9),
]


@pytest.mark.parametrize(
    ("model", "price", "tokens", "error_rate", "k_min", "cost_k"), PAPER, ids=[row[0] for row in PAPER]
)
def test_k_min_matches_every_row_of_the_papers_table(model, price, tokens, error_rate, k_min, cost_k):
    est = estimate(error_rate, S20, target=0.95, tokens_out=tokens, price=Price(None, price))
    assert est.k_min == k_min
    assert est.voting_helps is (k_min is not None)
    if k_min is None:
        assert est.rows == () and "voting cannot help" in est.notes[0]
        return
    row = est.at_k_min
    assert row is not None and row.p_task >= 0.95
    below = estimate(error_rate, S20, ks=(k_min - 1,)).rows[0] if k_min > 1 else None
    assert below is None or below.p_task < 0.95
    # The paper's cost recipe is not given; its figures are 1.1–1.4× the plain formula
    # (output tokens only, v = 1), consistent with v < 1 and input-token cost (method.md §6).
    assert 1.1 <= cost_k * 1000 / row.cost <= 1.45


@pytest.mark.parametrize(("k", "p_full", "tolerance"), [(2, 0.006, 0.0005), (3, 0.989, 0.0005), (4, 0.99998, 0.000005)])
def test_worked_figures_of_section_4(k, p_full, tolerance):
    row = estimate(1 - 0.9978, S20, ks=(k,)).rows[0]
    assert row.p_task == pytest.approx(p_full, abs=tolerance)


def test_expected_votes_at_k3_is_3_013_and_majority_needs_7():
    est = estimate(1 - 0.9978, S20)
    assert est.k_min == 3
    assert round(est.at_k_min.votes_per_step, 3) == 3.013
    assert est.majority_n == 7 == majority_equivalent(0.9978, 3)
    assert est.majority_savings == pytest.approx(0.57, abs=0.005)  # "saves about 57% of samples"


def test_rows_span_k_min_and_samples_scale_with_the_valid_rate():
    est = estimate(0.0022, S20, valid_rate=0.8, tokens_in=450, tokens_out=538, price=Price(0.4, 1.6))
    assert [r.k for r in est.rows] == [1, 2, 3, 4, 5]
    for r in est.rows:
        assert r.samples_per_step == pytest.approx(r.votes_per_step / 0.8)
        assert r.total_samples == pytest.approx(S20 * r.samples_per_step)
        assert r.cost == pytest.approx((0.4 * r.tokens_in + 1.6 * r.tokens_out) / 1e6)
    costs = [r.cost for r in est.rows]
    assert costs == sorted(costs)
    assert est.notes == ()


@pytest.mark.parametrize(
    ("price", "tokens_in", "tokens_out", "note"),
    [
        (None, None, 500, "no model or price given"),
        (Price(None, 0.6), 400, 500, "input price unknown: cost counts output tokens only"),
        (Price(0.4, 1.6), None, 500, "no input tokens per call given"),
        (Price(0.4, 1.6), 400, None, "no output tokens per call given"),
    ],
)
def test_what_the_cost_leaves_out_is_said_not_invented(price, tokens_in, tokens_out, note):
    est = estimate(0.01, 10_000, price=price, tokens_in=tokens_in, tokens_out=tokens_out)
    assert any(note in n for n in est.notes)
    if price is None or tokens_out is None:
        assert all(r.cost is None for r in est.rows)


def test_a_vote_right_half_the_time_cannot_be_voted_into_reliability():
    est = estimate(0.5, 1000)
    assert est.k_min is None and not est.voting_helps and est.rows == ()
    assert est.to_json()["voting_helps"] is False


def test_a_perfect_model_needs_one_vote():
    est = estimate(0.0, S20)
    assert est.k_min == 1
    assert est.rows[0].p_task == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"error_rate": 1.5, "steps": 10}, "error rate"),
        ({"error_rate": 0.1, "steps": 0}, "steps"),
        ({"error_rate": 0.1, "steps": 10, "target": 1.0}, "target"),
        ({"error_rate": 0.1, "steps": 10, "valid_rate": 0.0}, "valid rate"),
        ({"error_rate": 0.1, "steps": 10, "tokens_out": -1}, "tokens out"),
    ],
)
def test_bad_settings_are_config_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        estimate(**args)


def test_cli_json_is_the_library_estimate(capsys):
    code = main(
        [
            "estimate",
            "--error-rate",
            "0.0022",
            "--steps",
            "1048575",
            "--model",
            "gpt-4.1-mini",
            "--tokens-in",
            "450",
            "--tokens-out",
            "538",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    lib = estimate(0.0022, S20, tokens_in=450, tokens_out=538, price=Price(0.4, 1.6), price_source="gpt-4.1-mini")
    assert out == json.loads(json.dumps(lib.to_json()))
    assert out["k_min"] == 3 and out["price"] == {"input": 0.4, "output": 1.6}


def test_cli_table_names_k_min_and_says_when_a_model_has_no_price(capsys):
    assert (
        main(["estimate", "--error-rate", "0.0393", "--steps", "1e6", "--model", "my-own-model", "--tokens-out", "925"])
        == 0
    )
    out = capsys.readouterr().out
    assert "k_min = 6" in out
    assert "no price for model 'my-own-model'" in out
    assert "$" not in out


def test_cli_given_prices_are_used(capsys):
    assert (
        main(
            [
                "estimate",
                "--error-rate",
                "0.0022",
                "--steps",
                "1048575",
                "--tokens-out",
                "538",
                "--price-out",
                "1.6",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    at = next(r for r in out["rows"] if r["k"] == out["k_min"])
    assert math.isclose(at["cost"], at["tokens_out"] * 1.6 / 1e6)
    assert out["price_source"] == "given"


@pytest.mark.parametrize(
    "argv",
    [
        ["estimate", "--error-rate", "2", "--steps", "10"],
        ["estimate", "--error-rate", "0.1", "--steps", "1.5"],
        ["estimate", "--error-rate", "0.1"],
        ["estimate", "--error-rate", "0.1", "--steps", "10", "--price-in", "1"],
        ["estimate", "--error-rate", "0.1", "--steps", "10", "--model", "x", "--price-out", "1"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_a_chain_takes_s_times_latency_and_speculation_brings_it_to_the_fastest_first_sample():
    # Every call exactly L: a round is one L, with or without speculation.
    flat = estimate(0.0022, S20, latency=7.9, latency_sigma=0.0).wall
    assert flat is not None and flat.k == 3
    assert flat.plain_s == pytest.approx(S20 * 7.9) and flat.speculative_s == pytest.approx(S20 * 7.9)
    # Spread latencies: the slowest of k first samples sets a plain step, the fastest a speculative one.
    # The floors (mean of the fastest of 3 log-normal latencies): 0.62 at S = 0.5, 0.34 at S = 1.
    for sigma, fastest in ((0.5, 0.62), (1.0, 0.34)):
        w = estimate(0.0022, S20, latency=0.05, latency_sigma=sigma).wall
        assert w is not None and w.per_step_speculative == pytest.approx(fastest, abs=0.01)
        assert w.per_step_plain > 1.0 > w.per_step_speculative
    draws = random.Random(1)
    slowest = sum(max(math.exp(draws.gauss(0, 1) - 0.5) for _ in range(3)) for _ in range(40_000)) / 40_000
    assert estimate(0.0022, S20, latency=1.0, latency_sigma=1.0).wall.per_step_plain == pytest.approx(slowest, rel=0.03)  # type: ignore[union-attr]


def test_cli_says_a_chain_is_latency_bound(capsys):
    argv = ["estimate", "--error-rate", "0.0022", "--steps", "1048575", "--latency", "7.9"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "latency-bound, not rate-bound" in out and "days without speculation" in out
    assert main([*argv, "--json"]) == 0
    wall = json.loads(capsys.readouterr().out)["wall_time"]
    assert wall["bound"] == "latency" and wall["speculative_s"] < wall["plain_s"]
    with pytest.raises(SystemExit) as exc:
        main(["estimate", "--error-rate", "0.0022", "--steps", "10", "--latency", "0"])
    assert exc.value.code == 2


@pytest.mark.parametrize("steps", [10**17, 10**300])
def test_astronomical_step_counts_stay_exact(steps):
    """1 − p_step cancels to 0 and (1 − e)^S to 1.0 in plain floats; the estimate must not."""
    e = estimate(0.01, steps)
    rows = {row.k: row for row in e.rows}
    k = e.k_min
    assert k is not None and rows[k].p_task >= 0.95 and rows[k - 1].p_task < 0.95
    assert all(row.step_error > 0 for row in e.rows)
    # S·(r^k / (1 + r^k)) small means success near e^(−S·error): the figure the table shows.
    assert rows[k].p_task == pytest.approx(math.exp(-steps * rows[k].step_error), rel=1e-9)


def test_cli_estimate_of_1e17_steps_is_a_table_not_a_domain_error(capsys):
    assert main(["estimate", "--error-rate", "0.01", "--steps", "1e17"]) == 0
    assert "k_min = 10" in capsys.readouterr().out
