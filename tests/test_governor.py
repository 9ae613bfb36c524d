"""The rate governor: header and duration parsing (table-driven), its buckets and AIMD, and its reactions
over real HTTP against `serve-sim` enforcing limits.

No test asserts timing or how many 429s a run met: only that the governor
reacted (limits learned, a pause after a 429, the ceiling halved, no request
let through while paused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from _http import FAST_RETRIES

import maker
from maker.backends import Faults, SimServerConfig, serve_sim
from maker.backends._governor import (
    Bucket,
    Governor,
    RateHeaders,
    body_hint,
    go_duration,
    parse_duration,
    parse_rate_headers,
)
from maker.backends._openai import rate_weight
from maker.backends._protocol import Request
from maker.backends._registry import open_backend
from maker.backends._sim_server import Limits
from maker.errors import ConfigError
from maker.tasks import build_task
from maker.traces._reader import load_trace

pytestmark = pytest.mark.timeout(120)

HANOI_8 = build_task("hanoi", disks=8)


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("1h2m3.5s", 3723.5),
        ("2m30s", 150.0),
        ("250us", 0.00025),
        ("100ns", 1e-7),
        ("0s", 0.0),
        ("20", 20.0),
        ("0.5", 0.5),
        (" 7ms ", 0.007),
        ("", None),
        ("soon", None),
        ("5x", None),
        ("-1s", None),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("1s2", None),
        (None, None),
    ],
)
def test_go_durations(text: str | None, seconds: float | None) -> None:
    got = parse_duration(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Rate limit reached for gpt-4.1-mini ... Please try again in 289ms. Visit ...", 0.289),
        ("Please try again in 1.5s.", 1.5),
        ("Please try again in 6m0s.", 360.0),
        ("please TRY AGAIN IN 20s", 20.0),
        ("Try again in 2 seconds", 2.0),
        ("try again in 300 milliseconds", 0.3),
        ("Rate limit reached; retry later.", None),
        ("", None),
        (None, None),
    ],
)
def test_body_hints(text: str | None, seconds: float | None) -> None:
    got = body_hint(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {
                "x-ratelimit-limit-requests": "500",
                "x-ratelimit-limit-tokens": "200000",
                "x-ratelimit-remaining-requests": "499",
                "x-ratelimit-remaining-tokens": "198690",
                "x-ratelimit-reset-requests": "120ms",
                "x-ratelimit-reset-tokens": "393ms",
            },
            RateHeaders(500, 200000, 499, 198690, 0.12, 0.393),
        ),
        ({"X-RateLimit-Limit-Requests": "30000"}, RateHeaders(limit_requests=30000)),
        ({"x-ratelimit-remaining-tokens": "-5", "x-ratelimit-limit-tokens": "lots"}, RateHeaders()),
        ({"x-ratelimit-reset-tokens": "6m0s"}, RateHeaders(reset_tokens=360.0)),
        ({"content-type": "application/json"}, RateHeaders()),
        ({}, RateHeaders()),
    ],
)
def test_rate_headers(headers: dict[str, str], expected: RateHeaders) -> None:
    assert parse_rate_headers(headers) == expected


@pytest.mark.parametrize("seconds", [0.0, 0.012, 0.289, 1.0, 1.5, 59.0, 360.0, 3723.0])
def test_go_durations_written_read_back(seconds: float) -> None:
    assert parse_duration(go_duration(seconds)) == pytest.approx(seconds, rel=0.01, abs=0.001)


# -- buckets and AIMD, on a hand clock ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = Bucket.full(1200, 60.0, 0.0)  # 20 a second
    bucket.take(1200, 0.0)
    assert bucket.wait(1, 0.0) == pytest.approx(0.05)
    assert bucket.wait(1, 0.05) == 0
    bucket.refill(1000.0)
    assert bucket.level == 1200


def test_a_header_lowers_the_level_but_never_raises_it() -> None:
    bucket = Bucket.full(100, 60.0, 0.0)
    bucket.observe(10, 0.0)
    assert bucket.level == 10
    bucket.observe(90, 0.0)
    assert bucket.level == 10


def ticket_of(governor: Governor) -> Any:
    from maker.backends._governor import Ticket

    return Ticket(0.0, governor._generation, 0)


def test_a_429_halves_the_ceiling_once_per_round_and_pauses_for_its_hint() -> None:
    clock = Clock()
    governor = Governor(clock=clock, start=16)
    round_one = [ticket_of(governor) for _ in range(3)]
    assert governor.throttled(round_one[0], None, 2.0) == 2.0
    assert governor.ceiling == 8
    assert governor.paused_until == clock.now + 2.0
    governor.throttled(round_one[1], None, 0.5)  # the same round: no second halving, no shorter pause
    assert governor.ceiling == 8
    assert governor.paused_until == clock.now + 2.0
    governor.throttled(ticket_of(governor), None, None)  # a later round halves again
    assert governor.ceiling == 4


def test_a_bare_429_backs_off_longer_each_time_and_a_success_resets_it() -> None:
    governor = Governor(clock=Clock(), backoff=1.0)
    first = governor.throttled(ticket_of(governor), None, None)
    second = governor.throttled(ticket_of(governor), None, None)
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0
    governor.succeeded(ticket_of(governor))
    assert governor.throttled(ticket_of(governor), None, None) <= 1.0


def test_a_429_with_rate_headers_empties_the_bucket_instead_of_backing_off() -> None:
    governor = Governor(clock=Clock())
    headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0"}
    assert governor.throttled(ticket_of(governor), headers, None) == 0.0
    assert governor.buckets["requests"].level == 0
    assert governor.buckets["requests"].wait(1, governor._clock()) == pytest.approx(0.1)


def test_the_ceiling_grows_back_additively_after_the_first_throttle() -> None:
    governor = Governor(clock=Clock(), start=8)
    governor.throttled(ticket_of(governor), None, 0.0)
    assert governor.ceiling == 4
    governor.in_flight = 4
    for _ in range(4):
        governor.succeeded(ticket_of(governor))
    assert 4.9 < governor.ceiling < 5.1  # one per ceiling's worth of replies, not one per reply


def test_hand_limits_cap_what_headers_say() -> None:
    governor = Governor(clock=Clock(), rpm=100)
    governor.observe({"x-ratelimit-limit-requests": "10000"})
    assert governor.buckets["requests"].capacity == 100
    governor.observe({"x-ratelimit-limit-requests": "50"})
    assert governor.buckets["requests"].capacity == 50


@pytest.mark.anyio
async def test_no_request_goes_out_while_the_endpoint_is_paused() -> None:
    governor = Governor()
    async with governor.slot() as ticket:
        governor.throttled(ticket, None, 0.05)
    paused_until = governor.paused_until
    async with governor.slot():
        assert governor._clock() >= paused_until
    assert governor.stats.waited["pause"] > 0


@pytest.mark.anyio
async def test_the_ceiling_bounds_requests_in_flight() -> None:
    governor = Governor(start=2, most=2, fixed=True)
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with governor.slot():
            peak = max(peak, governor.in_flight)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert peak == 2


def test_a_request_weighs_its_prompt_estimate_and_its_output_cap() -> None:
    req = Request([{"role": "user", "content": "x" * 400}], 0.0, 750)
    assert rate_weight(req) == 100 + 4 + 750
    assert rate_weight(req, 3) == 100 + 4 + 2250


# -- over HTTP against serve-sim ---------------------------------------------------------------


def governed(server: Any, options: str = FAST_RETRIES, **settings: Any) -> Any:
    return open_backend(f"openai/gpt-4.1-mini?{options}", base_url=server.base_url, api_key="sk-test", **settings)


def governor_events(path: Path) -> list[dict[str, Any]]:
    import json

    with path.open() as f:
        return [e for e in map(json.loads, f) if e["type"] == "governor"]


@pytest.mark.anyio
async def test_limits_are_learned_from_headers_and_traced(tmp_path: Path) -> None:
    limits = Limits(rpm=60_000, tpm=50_000_000, retry_after=False)
    async with serve_sim(SimServerConfig(limits=limits)) as server:
        http = governed(server)
        try:
            await maker.arun(HANOI_8, backend=http, trace=tmp_path / "t.jsonl", independent=list(range(6)))
        finally:
            await http.aclose()
    assert http.governor.buckets["requests"].capacity == 60_000
    assert http.governor.buckets["tokens"].capacity == 50_000_000
    events = governor_events(tmp_path / "t.jsonl")
    learned = {k: e[k] for e in events if e["event"] == "limits" for k in ("rpm", "tpm") if k in e}
    assert learned == {"rpm": 60_000, "tpm": 50_000_000}
    assert events[-1]["event"] == "totals"
    assert events[-1]["requests"] == load_trace(tmp_path / "t.jsonl").end["totals"]["samples"]  # type: ignore[index]


@pytest.mark.anyio
async def test_a_429_pauses_the_endpoint_halves_the_ceiling_and_the_run_finishes(tmp_path: Path) -> None:
    faults = Faults(rate_limit=0.3, retry_after=0.02)
    async with serve_sim(SimServerConfig(faults=faults, seed=1)) as server:
        http = governed(server)
        try:
            result = await maker.arun(
                HANOI_8,
                backend=http,
                trace=tmp_path / "t.jsonl",
                settings=maker.RunSettings(concurrency=4),
                independent=list(range(20)),
            )
        finally:
            await http.aclose()
        faulted = server.stats.faults["rate_limit"]
    assert result.error is None
    assert faulted >= 1
    pauses = [e for e in governor_events(tmp_path / "t.jsonl") if e["event"] == "pause"]
    assert len(pauses) == faulted
    assert pauses[0]["reason"] == "retry-after" and pauses[0]["seconds"] == pytest.approx(0.02)
    assert pauses[0]["ceiling"] == 8  # halved from 16 (four in flight never grew it)
    await maker.areplay(tmp_path / "t.jsonl")  # replay ignores governor events


@pytest.mark.anyio
async def test_against_a_server_without_headers_hand_limits_set_the_buckets() -> None:
    limits = Limits(rpm=6000, headers=False)
    async with serve_sim(SimServerConfig(limits=limits)) as server:
        http = governed(server, rpm=3000, tpm=4_000_000)
        try:
            await maker.arun(HANOI_8, backend=http, trace=False, independent=list(range(4)))
        finally:
            await http.aclose()
    assert http.governor.buckets["requests"].capacity == 3000
    assert http.governor.buckets["tokens"].capacity == 4_000_000
    assert http.governor.stats.requests >= 4 * 3


@pytest.mark.anyio
async def test_the_server_refuses_over_its_limit_with_openai_style_headers_and_hints() -> None:
    import httpx

    limits = Limits(rpm=6, burst=10, retry_after=False)  # one request, then one every 10 s
    async with serve_sim(SimServerConfig(limits=limits)) as server:
        body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        async with httpx.AsyncClient() as client:
            first = await client.post(f"{server.base_url}/chat/completions", json=body)
            second = await client.post(f"{server.base_url}/chat/completions", json=body)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "6"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert second.status_code == 429
    assert "retry-after" not in second.headers
    assert parse_duration(second.headers["x-ratelimit-reset-requests"]) is not None
    assert body_hint(second.json()["error"]["message"]) is not None


def test_governor_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="rpm"):
        open_backend("openai/m?rpm=0", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="governor"):
        open_backend("openai/m?governor=maybe", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="burst"):
        Limits(rpm=10, burst=100)


# -- cached input tokens -----------------------------------------------------------------------


def chat_body(usage: dict[str, Any]) -> bytes:
    import json

    return json.dumps(
        {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}], "usage": usage}
    ).encode()


@pytest.mark.parametrize(
    ("usage", "cached"),
    [
        ({"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1920}}, 1920),
        ({"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 0}}, 0),
        ({"prompt_tokens": 2000, "completion_tokens": 5}, None),  # not sent: unknown, not 0
        ({"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": None}, None),
        ({"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": -1}}, None),
        ({"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2001}}, None),
        ({"prompt_tokens": 2000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": "9"}}, None),
    ],
)
def test_cached_tokens_are_read_where_sent_and_unknown_elsewhere(usage: dict[str, Any], cached: int | None) -> None:
    from maker.backends._wire import parse_reply

    assert parse_reply(chat_body(usage), 1).cached_tokens == cached


@pytest.mark.anyio
async def test_serve_sim_reports_a_repeated_long_prompt_as_cached() -> None:
    long = Request([{"role": "user", "content": "move the disks " * 400}], 0.0, 50)  # about 1,500 tokens
    async with serve_sim(SimServerConfig()) as server:
        http = governed(server)
        try:
            first = await http.complete(long)
            again = await http.complete(long)
        finally:
            await http.aclose()
    assert first.cached_tokens == 0
    assert again.cached_tokens is not None and 0 < again.cached_tokens <= again.input_tokens
    assert again.cached_tokens % 128 == 0


def test_cached_input_is_priced_at_its_own_rate() -> None:
    from maker._pricing import PRICES, Price

    mini = PRICES["gpt-4.1-mini"]
    assert mini.cost(1_000_000, 0, cached=1_000_000) == pytest.approx(mini.cached_input)  # type: ignore[arg-type]
    assert mini.cost(1_000_000, 0, cached=500_000) == pytest.approx((0.40 + 0.10) / 2)
    assert Price(0.40, 1.60).cost(1_000_000, 0, cached=1_000_000) == pytest.approx(0.40)  # no cached price: as input


def test_a_price_file_takes_an_optional_cached_price(tmp_path: Path) -> None:
    from maker._pricing import load_prices

    path = tmp_path / "prices.json"
    path.write_text('{"mine": [1.0, 2.0, 0.25], "theirs": [null, 3.0]}')
    table = load_prices(path)
    assert table["mine"].cached_input == 0.25
    assert table["theirs"].cached_input is None


# -- analysis ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_analyze_says_where_the_time_went_and_the_cache_hit_rate(tmp_path: Path) -> None:
    from maker.analysis import analyze
    from maker.analysis._rates import cache_line, rate_line

    faults = Faults(rate_limit=0.3, retry_after=0.02)
    async with serve_sim(SimServerConfig(faults=faults, seed=1, limits=Limits(rpm=60_000))) as server:
        http = governed(server)
        try:
            await maker.arun(HANOI_8, backend=http, trace=tmp_path / "t.jsonl", independent=list(range(10)))
        finally:
            await http.aclose()
    report = analyze(tmp_path / "t.jsonl")
    rates = report.rates
    assert rates is not None and rates.governed
    assert rates.throttled() == rates.pauses["retry-after"] >= 1
    assert rates.waited()["pause"] > 0
    assert rates.limits == {next(iter(rates.endpoints)): {"rpm": 60_000.0}}
    assert rates.cache_hit_rate == 0.0  # Hanoi's prompts are under the 1,024 tokens a cache starts at
    assert "answered 429" in rate_line(rates, report.wall_s)
    assert cache_line(rates).startswith("0.0% of prompt tokens")
    assert report.to_json()["rates"]["pauses"] == {"retry-after": rates.throttled()}


# -- maker estimate: wide work at rate limits ----------------------------------------------------


def test_wide_work_takes_the_longer_of_its_request_and_token_times() -> None:
    from maker.analysis._rates import wide_time

    tier2 = wide_time(3_200_000, 5_000, 2_000_000, 1_310, latency=7.9)
    assert tier2.by_requests_s == pytest.approx(3_200_000 / 5_000 * 60)
    assert tier2.by_tokens_s == pytest.approx(3_200_000 * 1_310 / 2_000_000 * 60)  # about 35 h
    assert tier2.bound == "TPM" and tier2.seconds == tier2.by_tokens_s
    assert tier2.in_flight == pytest.approx(3_200_000 / tier2.seconds * 7.9)
    assert wide_time(1_200, 1_200, None, 1_000).seconds == pytest.approx(60.0)
    with pytest.raises(ConfigError, match="--rpm or --tpm"):
        wide_time(10, None, None, 1)


def test_estimate_puts_the_wide_figure_next_to_the_chain_figure() -> None:
    from maker.analysis import estimate

    est = estimate(0.0022, 1_048_575, tokens_in=444, latency=7.9, rpm=30_000, tpm=150_000_000)
    assert est.wall is not None and est.wide is not None
    assert est.wide.tokens_per_request == 444 + 750
    assert est.wide.requests == est.at_k_min.total_samples  # type: ignore[union-attr]
    assert est.wide.seconds < est.wall.plain_s
    assert est.to_json()["wide_time"]["bound"] in ("RPM", "TPM")
    assert estimate(0.0022, 100).wide is None
