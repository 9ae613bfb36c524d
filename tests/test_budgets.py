"""Budgets: a run stops before the request that would cross a limit, never after.

Runs go over real HTTP to `serve-sim`, and the server's own count of requests
is the witness that nothing past the limit was sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _http import FAST_RETRIES, clean_env, run_maker, server_stats, sim_server_process

import maker
from maker import Budget, Price
from maker.backends import Completion, Request, SimServerConfig, open_backend, serve_sim
from maker.errors import BudgetExceeded, ConfigError
from maker.tasks import build_task
from maker.traces import load_trace

pytestmark = pytest.mark.timeout(120)

HANOI = build_task("hanoi", disks=8)
PRICE = maker.PRICES["gpt-4.1-mini"]


async def run_with(budget: Budget, tmp_path: Path, **options: Any) -> tuple[Any, Any, Any]:
    """Hanoi on serve-sim under `budget`; returns (result, trace, server stats)."""
    async with serve_sim(SimServerConfig(profile="gpt-4.1-mini?latency=0.002")) as server:
        http = open_backend(f"openai/gpt-4.1-mini?{FAST_RETRIES}", base_url=server.base_url)
        try:
            result = await maker.arun(HANOI, backend=http, budget=budget, trace=tmp_path / "t.jsonl", **options)
        finally:
            await http.aclose()
        return result, load_trace(tmp_path / "t.jsonl"), server.stats


@pytest.mark.anyio
async def test_max_samples_stops_the_run_at_exactly_the_limit(tmp_path):
    result, trace, stats = await run_with(Budget(max_samples=40), tmp_path)
    assert result.outcome == "budget"
    assert isinstance(result.error, BudgetExceeded) and result.error.limit == "max_samples"
    assert stats.chat_requests == 40 == len(trace.samples)  # sent = recorded = the limit
    assert trace.end["outcome"] == "budget" and "max_samples" in trace.end["message"]


@pytest.mark.anyio
async def test_max_tokens_is_never_crossed_even_by_requests_in_flight(tmp_path):
    limit = 40_000
    result, trace, stats = await run_with(Budget(max_tokens=limit), tmp_path, settings=maker.RunSettings(concurrency=8))
    used = sum(s["tokens_in"] + s["tokens_out"] for s in trace.samples)
    assert result.error.limit == "max_tokens"  # type: ignore[union-attr]
    assert used <= limit
    assert used > limit / 2  # it did not stop absurdly early either
    assert stats.chat_requests == len(trace.samples)


@pytest.mark.anyio
async def test_max_cost_is_never_crossed(tmp_path):
    limit = 0.05
    result, trace, stats = await run_with(Budget(max_cost=limit), tmp_path, settings=maker.RunSettings(concurrency=1))
    spent = sum(PRICE.cost(s["tokens_in"], s["tokens_out"]) for s in trace.samples)
    assert result.error.limit == "max_cost"  # type: ignore[union-attr]
    assert 0 < spent <= limit
    # It stopped only because the next request could have crossed: what is left is less than
    # one request's worst case (a full 750-token output, and its input generously bounded).
    assert limit - spent < PRICE.cost(2 * max(s["tokens_in"] for s in trace.samples), 750)
    assert stats.chat_requests == len(trace.samples)
    assert "max_cost" in str(result.error) and "can be resumed" in str(result.error)


@pytest.mark.anyio
async def test_a_limit_below_one_request_sends_nothing(tmp_path):
    result, trace, stats = await run_with(Budget(max_tokens=500), tmp_path)
    assert result.outcome == "budget"
    assert stats.chat_requests == 0 and trace.samples == []


@pytest.mark.anyio
async def test_a_run_within_its_budget_is_untouched(tmp_path):
    task = build_task("hanoi", disks=4)
    result = await maker.arun(task, budget=Budget(max_cost=10, max_samples=10_000), trace=False)
    assert result.solved


def test_input_tokens_are_bounded_from_above_then_learned_from_replies():
    spending = Budget(max_tokens=10**9).guard("openai/gpt-4.1-mini")
    messages = [{"role": "system", "content": "ab" * 500}, {"role": "user", "content": "é" * 100}]
    size = 1000 + 200  # UTF-8 bytes
    assert spending.estimate_input(messages) >= size  # a token is never less than a byte
    settle = spending(Request(messages, 0.0, 100))
    settle(Completion("x", "stop", 330, 10, 0.0))
    learned = spending.estimate_input(messages)
    assert 330 <= learned < size  # never below what the server counted; far below the blind bound
    assert spending.spent.tokens == 340 and spending.reserved.tokens == 0


def test_a_failed_request_releases_its_reservation():
    spending = Budget(max_samples=2).guard("openai/gpt-4.1-mini")
    first = spending(Request([{"role": "user", "content": "hi"}], 0.0, 10))
    spending(Request([{"role": "user", "content": "hi"}], 0.0, 10))
    with pytest.raises(BudgetExceeded, match="max_samples"):
        spending(Request([{"role": "user", "content": "hi"}], 0.0, 10))
    first(None)  # it failed: nothing spent, its slot is free again
    spending(Request([{"role": "user", "content": "hi"}], 0.0, 10))


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"max_cost": 0}, "max_cost must be a positive"),
        ({"max_cost": float("nan")}, "max_cost must be a positive"),
        ({"max_samples": 0}, "max_samples must be >= 1"),
        ({"max_tokens": -5}, "max_tokens must be >= 1"),
    ],
)
def test_budget_settings_are_validated(knobs, message):
    with pytest.raises(ConfigError, match=message):
        Budget(**knobs)


@pytest.mark.parametrize(
    "model, prices, note",
    [
        ("openai/gpt-4.1-mini", None, None),
        ("openai/my-local-model", None, "cost limit of $1 cannot be enforced"),
        ("openai/qwen3", None, "counts output tokens only"),
        ("openai/my-local-model", {"my-local-model": Price(0.1, 0.2)}, None),
    ],
)
def test_notes_say_at_start_when_a_cost_limit_cannot_be_enforced(model, prices, note):
    notes = Budget(max_cost=1, prices=prices).notes(model)
    assert notes == [] if note is None else note in notes[0]


# -- through the CLI -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_url():
    with sim_server_process("--profile", "perfect") as url:
        yield url


def test_cli_budget_stop_is_clean_and_named(sim_url, tmp_path):
    before = server_stats(sim_url)["chat_requests"]
    trace = tmp_path / "t.jsonl"
    done = run_maker(
        "hanoi",
        "--disks",
        "6",
        "--model",
        "openai/perfect",
        "--base-url",
        sim_url,
        "--max-samples",
        "25",
        "--trace",
        str(trace),
        "--json",
        cwd=tmp_path,
    )
    summary = json.loads(done.stdout)
    assert done.returncode == 1
    assert summary["outcome"] == "budget" and "budget reached: max_samples" in summary["error"]
    assert server_stats(sim_url)["chat_requests"] - before == 25 == summary["samples"]
    assert load_trace(trace).end["outcome"] == "budget"  # type: ignore[index]


def test_cli_says_at_start_that_an_unpriced_model_has_no_cost_limit(sim_url, tmp_path):
    done = run_maker(
        "hanoi",
        "--disks",
        "3",
        "--model",
        "openai/perfect",
        "--base-url",
        sim_url,
        "--max-cost",
        "0.0001",
        "--quiet",
        "--no-trace",
        cwd=tmp_path,
    )
    assert done.returncode == 0  # it ran: the limit could not apply, and the user was told
    assert done.stderr.startswith("maker: note: no price is known for openai/perfect")


def test_cli_prices_file_makes_the_cost_limit_enforceable(sim_url, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"perfect": [1.0, 4.0]}))
    done = run_maker(
        "hanoi",
        "--disks",
        "6",
        "--model",
        "openai/perfect",
        "--base-url",
        sim_url,
        "--max-cost",
        "0.03",
        "--prices",
        str(prices),
        "--json",
        "--no-trace",
        cwd=tmp_path,
    )
    summary = json.loads(done.stdout)
    assert "note:" not in done.stderr
    assert summary["outcome"] == "budget" and "max_cost" in summary["error"]
    spent = (summary["tokens_in"] * 1.0 + summary["tokens_out"] * 4.0) / 1e6
    assert spent <= 0.03


def test_cli_rejects_a_bad_price_file_with_one_line(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text("{not json")
    done = run_maker("hanoi", "--max-cost", "1", "--prices", str(prices), cwd=tmp_path, env=clean_env())
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "price table" in done.stderr
