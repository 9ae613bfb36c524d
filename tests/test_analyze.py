"""`maker analyze`: traces from the simulated model at known settings, checked against the theory.

The statistical checks use fixed seeds and runs large enough (8,191 steps,
about 27,000 votes) that each claim holds by a wide margin; the flags they test
are themselves tests with a false-alarm rate of ALPHA = 0.001.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import pytest

import maker
import maker.analysis
from maker import RunSettings
from maker.analysis import ALPHA, analyze, undecided, wilson
from maker.analysis._stats import binom_cdf, binom_sf, chi2_sf, fisher_greater
from maker.cli._app import main
from maker.tasks import build_task
from maker.traces import read_events
from maker.voting import expected_votes

pytestmark = pytest.mark.timeout(180)

HANOI_13 = build_task("hanoi", disks=13)
BASE = "sim/gpt-4.1-mini?error_rate=0.05"


def independent_trace(directory: Path, knobs: str = "", seed: int = 11) -> Path:
    """Every step of 13-disk Hanoi from its ground-truth input, voted ahead-by-3: one clean sample per step."""
    path = directory / "trace.jsonl"
    maker.run(
        HANOI_13,
        model=BASE + knobs,
        settings=RunSettings(seed=seed),
        trace=path,
        independent=range(HANOI_13.steps),
    )
    return path


@pytest.fixture(scope="module")
def spread(tmp_path_factory):
    """Independent errors, mistakes spread over the several wrong answers a step has."""
    return analyze(independent_trace(tmp_path_factory.mktemp("spread")))


@pytest.fixture(scope="module")
def worst_case(tmp_path_factory):
    """Independent errors that all agree on one wrong answer: exactly the theory's two-candidate model."""
    return analyze(independent_trace(tmp_path_factory.mktemp("worst"), "&correlated=1"))


@pytest.fixture(scope="module")
def agreeing(tmp_path_factory):
    return analyze(independent_trace(tmp_path_factory.mktemp("agree"), "&correlated=0.8"))


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    """5% of steps are hard (half their replies wrong): the heterogeneity the paper saw at step 10241."""
    return analyze(independent_trace(tmp_path_factory.mktemp("hard"), "&hard_fraction=0.05"))


@pytest.fixture(scope="module")
def hard_agreeing(tmp_path_factory):
    return analyze(independent_trace(tmp_path_factory.mktemp("hardagree"), "&hard_fraction=0.05&correlated=0.8"))


# -- the error rate ----------------------------------------------------------------------------------------------


def test_estimated_error_rate_lies_within_its_interval_of_the_true_rate(spread, worst_case):
    for a in (spread, worst_case):
        assert a.reference == "ground truth" and a.mode == "independent"
        assert a.vote_error.n > 3 * HANOI_13.steps
        assert a.vote_error.covers(0.05), a.vote_error.interval
        assert a.first_vote_error.covers(0.05) and a.first_vote_error.n == HANOI_13.steps
        assert a.vote_error.high - a.vote_error.low < 0.006
        # The valid rate: token counts above the 750 cap are cut off (about 0.4% at a mean of 538).
        assert a.valid.covers(0.5 * (1 + math.erf((751 - 538) / (0.15 * 538) / math.sqrt(2))))


def test_error_rate_by_length_and_by_step_add_up_to_the_whole(spread):
    assert sum(b.count for b in spread.by_length) == spread.samples
    assert sum(b.flagged for b in spread.by_length) == sum(spread.flags.values())
    assert all(b.error.n == 0 for b in spread.by_length if b.low > 750)  # nothing past the cap is a vote
    assert sum(b.count for b in spread.by_step) == HANOI_13.steps
    assert sum(b.error.hits for b in spread.by_step) == spread.first_vote_error.hits
    assert spread.drift_p_value is not None and not spread.drifts


def test_longer_replies_are_wrong_more_often_when_the_model_rambles(tmp_path):
    a = analyze(independent_trace(tmp_path, "&ramble_rate=0.3&ramble_error_rate=0.4"))
    short = [b.error for b in a.by_length if b.high <= 700 and b.error.n > 100]
    long = [b.error for b in a.by_length if b.low >= 700 and b.error.n > 100]
    assert short and long
    assert min(e.low for e in long) > max(e.high for e in short)  # intervals apart, not just point estimates
    assert a.flags["length"] > 0.2 * a.samples * 0.3  # most rambles run past the cap and are flagged


# -- convergence against the theory -------------------------------------------------------------------------------


def test_convergence_matches_the_independent_error_theory_within_sampling_error(worst_case):
    c = worst_case.convergence
    assert c is not None and c.k == 3 and c.steps == HANOI_13.steps
    assert not c.slower and not c.faster
    # Against the true p (not the estimate): every point within 4 standard deviations.
    theory = undecided(0.95, 3, len(c.observed) - 1)
    n = c.steps
    for j, seen in enumerate(c.observed):
        s = theory[j]
        assert abs(seen - n * s) <= 4 * math.sqrt(n * s * (1 - s)) + 1, (j, seen, n * s)
    # And the mean votes per step: E[N] = Σ P(N > j), Var from E[N²] = Σ (2j + 1) P(N > j).
    long = undecided(0.95, 3, 400)
    mean = sum(long)
    var = sum((2 * j + 1) * s for j, s in enumerate(long)) - mean**2
    assert mean == pytest.approx(expected_votes(0.95, 3))
    assert abs(worst_case.mean_votes - mean) < 4 * math.sqrt(var / n)


def test_mistakes_that_spread_over_several_answers_converge_faster_than_the_worst_case(spread, worst_case):
    assert spread.convergence.faster and not spread.convergence.slower
    assert "faster than the two-candidate worst case" in " ".join(spread.findings())
    assert not worst_case.convergence.faster


# -- heterogeneity and collisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spread", "worst_case", "agreeing"])
def test_independent_errors_raise_no_flag(name, request):
    a = request.getfixturevalue(name)
    assert not a.heterogeneity.flagged and a.heterogeneity.count == 0
    assert not a.collisions.excess and a.collisions.p_value >= ALPHA
    assert not a.excess_wrong_steps
    assert any(f.startswith("errors look independent") for f in a.findings())


def test_collisions_on_one_wrong_answer_are_counted(spread, worst_case):
    # With every mistake at a step agreeing, every collision is on the same wrong answer.
    assert worst_case.collisions.observed > 5
    assert worst_case.collisions.same_answer == worst_case.collisions.observed
    assert spread.collisions.same_answer < spread.collisions.observed


@pytest.mark.parametrize("name", ["hard", "hard_agreeing"])
def test_hard_steps_are_flagged_as_heterogeneity_and_excess_collisions(name, request):
    a = request.getfixturevalue(name)
    h = a.heterogeneity
    assert h.flagged and h.count >= 3 and h.slow_convergence
    assert all(o.votes >= h.threshold and o.tail < ALPHA / a.decided for o in h.outliers)
    assert a.collisions.excess and a.collisions.observed > 2 * a.collisions.expected
    text = " ".join(a.findings())
    assert "heterogeneous steps" in text and "excess collisions" in text
    assert "errors look independent" not in text


def test_hard_steps_whose_mistakes_agree_are_decided_wrong_far_more_than_predicted(hard_agreeing):
    a = hard_agreeing
    assert a.excess_wrong_steps and a.wrong_steps.hits > 5 * a.wrong_steps_expected
    assert "more wrong decisions than independent errors predict" in " ".join(a.findings())


# -- cost and projections -----------------------------------------------------------------------------------------


def test_observed_cost_and_projections_to_a_million_and_a_billion_steps(worst_case):
    a = worst_case
    assert a.price is not None and a.cost == pytest.approx((0.4 * a.tokens_in + 1.6 * a.tokens_out) / 1e6)
    million, billion = a.projections
    assert (million.steps, billion.steps) == (10**6, 10**9)
    assert million.k == billion.k == 3
    assert billion.p_task < million.p_task < 1
    assert million.k_min <= billion.k_min <= million.k_min + 3  # k_min grows like ln s
    assert billion.k_min_pessimistic >= billion.k_min
    assert billion.k_min_cost > 1000 * million.k_min_cost * 0.99  # cost grows like s·ln s


# -- traces of every kind -----------------------------------------------------------------------------------------


def test_a_trace_without_ground_truth_is_scored_against_the_winner(tmp_path, worst_case):
    stripped = tmp_path / "no-truth.jsonl"
    with open(worst_case.path) as src, open(stripped, "w") as dst:
        for line in src:
            event = json.loads(line)
            if event["type"] == "decision":
                event["truth"] = event["correct"] = None
            dst.write(json.dumps(event) + "\n")
    a = analyze(stripped)
    assert a.reference == "voted winner" and a.wrong_steps is None
    assert a.vote_error.n == worst_case.vote_error.n
    assert a.vote_error.hits <= worst_case.vote_error.hits
    assert "no ground truth" in a.notes[0]


def test_a_resumed_trace_counts_every_sample_once(tmp_path):
    from maker._budget import Budget

    path = tmp_path / "resumed.jsonl"
    hanoi8 = build_task("hanoi", disks=8)
    first = maker.run(hanoi8, model=BASE + "&malformed_rate=0.1", trace=path, budget=Budget(max_samples=300))
    assert first.outcome == "budget"
    assert maker.resume(path).solved
    a = analyze(path)
    samples = [e for e in read_events(path) if e["type"] == "sample"]
    votes = [e for e in samples if e["key"] is not None and not e["late"]]
    # The step cut off by the budget is finished after the resume from its recorded samples
    # (never written twice), so it is one decided step whose votes span both sessions.
    assert a.decided == 255 and a.undecided == 0
    assert a.samples == len(samples) and sum(b.count for b in a.by_length) == len(samples)
    assert a.vote_error.n == len(votes) == sum(a.votes[n] * n for n in a.votes)


def test_a_gzip_trace_reads_like_a_plain_one(tmp_path, worst_case):
    packed = tmp_path / "t.jsonl.gz"
    with open(worst_case.path, "rb") as src, gzip.open(packed, "wb") as dst:
        dst.write(src.read())
    a = analyze(packed)
    assert a.to_json() | {"trace": None} == worst_case.to_json() | {"trace": None}


def test_a_sequential_run_and_its_plots(tmp_path, capsys):
    trace, plots = tmp_path / "hanoi10.jsonl", tmp_path / "plots"
    assert main(["hanoi", "--disks", "10", "--trace", str(trace), "--quiet", "--json"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(trace), "--plots", str(plots), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "sequential" and out["outcome"] == "solved" and out["decided_steps"] == 1023
    names = sorted(Path(p).name for p in out["plots"])
    assert names == ["convergence.png", "error_vs_length.png", "error_vs_step.png", "kmin_cost.png", "rounds.png"]
    for name in names:
        data = (plots / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_the_tables_name_every_section(tmp_path, capsys, worst_case):
    assert main(["analyze", str(worst_case.path)]) == 0
    out = capsys.readouterr().out
    for words in (
        "trace analysis",
        "error rate by response length",
        "first-vote error rate by step",
        "rounds and votes",
        "undecided steps after each vote",
        "collisions",
        "the same setup at scale",
        "errors look independent",
    ):
        assert words in out


def test_missing_matplotlib_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, worst_case):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what an install without the extra looks like
    assert main(["analyze", str(worst_case.path), "--plots", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'maker[plots]'" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty trace"),
        (b"not json\n", "not a maker trace"),
    ],
)
def test_bad_trace_files_are_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_bytes(content)
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_public_api_is_exactly_this():
    assert sorted(maker.analysis.__all__) == sorted(
        [
            "ALPHA",
            "Analysis",
            "Bin",
            "Calibration",
            "Collisions",
            "Convergence",
            "Estimate",
            "Heterogeneity",
            "KRow",
            "Outlier",
            "Projection",
            "Proportion",
            "acalibrate",
            "analyze",
            "calibrate",
            "estimate",
            "majority_equivalent",
            "undecided",
            "wilson",
            "write_plots",
        ]
    )


# -- the statistics underneath ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),  # Wilson 1927 / Newcombe 1998 table values
        (1, 29, 0.0061, 0.1718),
        (81, 263, 0.2553, 0.3662),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_published_values(hits, n, low, high):
    lo, hi = wilson(hits, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(("x", "n", "p"), [(0, 10, 0.3), (3, 10, 0.3), (9, 10, 0.3), (2, 50, 0.001), (40, 50, 0.9)])
def test_binomial_tails_match_exact_sums(x, n, p):
    exact = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    assert binom_sf(x, n, p) == pytest.approx(sum(exact[x:]), rel=1e-9, abs=1e-300)
    assert binom_cdf(x, n, p) == pytest.approx(sum(exact[: x + 1]), rel=1e-9, abs=1e-300)


def test_fisher_exact_matches_the_hypergeometric_sum():
    total, first, second = 40, 9, 12

    def pmf(x):
        return math.comb(first, x) * math.comb(total - first, second - x) / math.comb(total, second)

    for both in range(10):
        assert fisher_greater(both, first, second, total) == pytest.approx(sum(pmf(x) for x in range(both, 10)))


@pytest.mark.parametrize(
    ("x", "df", "p"), [(3.841459, 1, 0.05), (18.307038, 10, 0.05), (2.705543, 1, 0.1), (0.5, 4, 0.973500)]
)
def test_chi_square_tail(x, df, p):
    assert chi2_sf(x, df) == pytest.approx(p, rel=1e-5)


@pytest.mark.parametrize(("p", "k"), [(0.9978, 3), (0.9, 5), (0.6, 2), (0.95, 1)])
def test_the_walk_gives_the_gamblers_ruin_expected_votes(p, k):
    assert sum(undecided(p, k, 2000)) == pytest.approx(expected_votes(p, k), rel=1e-9)


def test_the_python_examples_in_docs_analysis_run(tmp_path):
    import re
    import subprocess

    page = Path(__file__).resolve().parent.parent / "docs" / "analysis.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    assert len(blocks) == 2
    for code in blocks:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0].startswith("False voting cannot help this model")


def test_the_figures_say_what_they_show(hard):
    """No empty panel, a labelled run size, a legend off the error bars, the outlier threshold always drawn."""
    from dataclasses import replace

    from maker.analysis import _plots

    assert hard.price is not None
    priced, unpriced = _plots._kmin_cost(hard), _plots._kmin_cost(replace(hard, price=None))
    assert len(priced.axes) == 2 and len(unpriced.axes) == 1  # no cost panel without a price
    assert "no price" in unpriced._suptitle.get_text()
    assert any(label.startswith("this run (") for label in unpriced.axes[0].get_legend_handles_labels()[1])

    by_length = _plots._error_vs_length(hard)
    assert by_length.legends and all(ax.get_legend() is None for ax in by_length.axes)  # outside the axes

    rounds = _plots._rounds(hard)
    threshold = hard.heterogeneity.threshold
    assert threshold is not None and rounds.axes[1].get_xlim()[1] >= threshold
    assert any("outlier at" in label for label in rounds.axes[1].get_legend_handles_labels()[1])

    convergence = _plots._convergence(hard)
    # Where the band reaches zero it runs to the bottom of the axis (and the legend says so), not to a floor above it.
    assert convergence.axes[0].get_ylim()[0] == 0.005
    assert any("down to 0" in label for label in convergence.axes[0].get_legend_handles_labels()[1])
