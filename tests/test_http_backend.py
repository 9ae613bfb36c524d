"""The `openai/` backend over real HTTP: faults, the retry policy, limits, n-batching, and clear failures.

Every test talks to `serve-sim` on 127.0.0.1 through the real `openai` client.
Retry waits are kept small through the policy's options, never by skipping them.
"""

from __future__ import annotations

import email.utils
import json
from pathlib import Path
from random import Random
from typing import Any

import pytest
from _http import FAST_RETRIES, clean_env, closed_port, run_maker, sim_server_process

import maker
from maker.backends import Faults, Request, RetryEvent, RetryPolicy, SimServerConfig, open_backend, serve_sim
from maker.backends._retry import parse_retry_after
from maker.cli._app import main as cli_main
from maker.errors import BackendRejected, BackendUnavailable, ConfigError
from maker.tasks import build_task
from maker.traces import load_trace
from maker.voting import Voting

pytestmark = pytest.mark.timeout(120)

HANOI_8 = build_task("hanoi", disks=8)


def backend(
    server: Any, options: str = FAST_RETRIES, *, events: list[RetryEvent] | None = None, model: str = "gpt-4.1-mini"
) -> Any:
    return open_backend(
        f"openai/{model}?{options}",
        base_url=server.base_url,
        api_key="sk-test",
        on_retry=None if events is None else events.append,
    )


def request(max_tokens: int = 750) -> Request:
    step = HANOI_8.plan().step  # type: ignore[attr-defined]
    return Request(step.prompt(HANOI_8.step_inputs(0)), 0.0, max_tokens, step=0, sample=0)


# -- the end-to-end claim ------------------------------------------------------------------


@pytest.mark.anyio
async def test_hanoi_8_disks_solves_with_zero_errors_while_30_percent_of_requests_fail(tmp_path: Path):
    faults = Faults.mixed(0.3, retry_after=0.01, slow_seconds=10)
    events: list[RetryEvent] = []
    async with serve_sim(SimServerConfig(faults=faults, seed=3)) as server:
        http = backend(server, FAST_RETRIES + "&timeout=0.2", events=events)
        try:
            result = await maker.arun(HANOI_8, backend=http, trace=tmp_path / "t.jsonl")
        finally:
            await http.aclose()
        stats = server.stats
    assert result.solved and result.totals.steps == 255 and result.totals.errors == 0
    # Every kind of fault really happened, at about the rate asked for.
    assert set(stats.faults) == {"rate_limit", "server_error", "drop", "slow", "bad_json", "truncate"}
    assert 0.2 < sum(stats.faults.values()) / stats.chat_requests < 0.4
    # Every fault but truncation fails its attempt; truncations are red flags, not retries.
    failed_attempts = stats.chat_requests - stats.completions
    assert failed_attempts == sum(n for kind, n in stats.faults.items() if kind != "truncate")
    assert result.totals.red_flags >= stats.faults["truncate"]
    # Every failed attempt was retried once, and every reply the client read is a sample in the trace.
    # (`late`: clean replies the client had already given up on; `unseen`: attempts whose deadline passed
    # before the server had read them. Only a loaded machine has any of either, and how many depends on
    # the load, so they are bounded by what caused them, the client's timeouts, never by a count.)
    samples = load_trace(tmp_path / "t.jsonl").samples
    late = stats.completions - len(samples)
    assert result.totals.retries == len(events) == sum(e["retries"] for e in samples)
    unseen = result.totals.retries - (failed_attempts + late)
    timed_out = sum(e.reason == "timed out" for e in events)
    assert late >= 0 and unseen >= 0
    assert late + unseen <= timed_out - stats.faults["slow"]
    assert len(samples) == result.totals.samples
    assert {e.reason for e in events} >= {
        "HTTP 429",
        "HTTP 500",
        "HTTP 502",
        "HTTP 503",
        "connection failed",
        "timed out",
        "invalid response body",
    }


# -- the retry policy ----------------------------------------------------------------------


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "headers, seconds",
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "7", "retry-after-ms": "40"}, 0.04),  # milliseconds win, as in the openai client
        ({"Retry-After": email.utils.formatdate(NOW + 12, usegmt=True)}, 12.0),
        ({"Retry-After": email.utils.formatdate(NOW - 12, usegmt=True)}, None),  # a date in the past
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-2"}, None),
        ({"Retry-After": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers, seconds):
    assert parse_retry_after(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    "hint, cap, wait",
    [
        (0.3, 60.0, 0.3),  # the server's wait, obeyed exactly
        (120.0, 60.0, 60.0),  # ...up to the cap
        (None, 60.0, 0.5),  # no hint: the exponential backoff's first wait
    ],
)
def test_a_server_hint_replaces_backoff_up_to_the_cap(hint, cap, wait):
    policy = RetryPolicy(backoff=0.5, jitter=0, retry_after_max=cap)
    assert policy.wait_for(1, hint, Random(0)) == wait


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter():
    exact = RetryPolicy(backoff=0.5, backoff_max=4, jitter=0)
    assert [exact.backoff_wait(n, Random(0)) for n in range(1, 8)] == [0.5, 1, 2, 4, 4, 4, 4]
    jittered = RetryPolicy(backoff=0.5, backoff_max=4, jitter=0.5)
    rng = Random(1)
    waits = [jittered.backoff_wait(3, rng) for _ in range(200)]
    assert 1.0 <= min(waits) < 1.2 and 1.8 < max(waits) <= 2.0


@pytest.mark.parametrize("knobs", [{"max_attempts": 0}, {"backoff": -1}, {"jitter": 1.5}])
def test_retry_policy_is_validated(knobs):
    with pytest.raises(ConfigError):
        RetryPolicy(**knobs)


@pytest.mark.anyio
async def test_retry_after_is_honoured_and_capped():
    for announced, cap, expected in [(0.03, 1.0, 0.03), (5.0, 0.02, 0.02)]:
        events: list[RetryEvent] = []
        faults = Faults(rate_limit=0.5, retry_after=announced)
        async with serve_sim(SimServerConfig(faults=faults, seed=5)) as server:
            http = backend(server, f"max_attempts=20&retry_after_max={cap}", events=events)
            for _index in range(6):
                await http.complete(request())
            await http.aclose()
        assert events and {e.reason for e in events} == {"HTTP 429"}
        # retry-after-ms carries the exact wait; the cap shortens a longer one.
        assert {e.retry_after for e in events} == {announced}
        assert {e.wait for e in events} == {expected}


@pytest.mark.anyio
async def test_attempts_and_backoff_follow_the_policy_then_the_run_gives_up():
    events: list[RetryEvent] = []
    async with serve_sim(SimServerConfig(faults=Faults(server_error=1.0))) as server:
        http = backend(server, "max_attempts=4&backoff=0.01&backoff_max=0.03&jitter=0", events=events)
        with pytest.raises(BackendUnavailable, match=r"still failing after 4 attempts \(last: HTTP 500"):
            await http.complete(request())
        await http.aclose()
        assert server.stats.chat_requests == 4
    assert [(e.attempt, e.wait) for e in events] == [(1, 0.01), (2, 0.02), (3, 0.03)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "case, status, message",
    [
        ("wrong model", 404, "no model named 'gpt-5-imaginary'"),
        ("bad key", 401, "rejected the API key"),
        ("wrong base URL", 404, "check --base-url"),
        ("bad request", 400, "rejected the request (HTTP 400"),
    ],
)
async def test_400_401_404_are_never_retried(case, status, message):
    events: list[RetryEvent] = []
    async with serve_sim(SimServerConfig(api_key="sk-right")) as server:
        model = "gpt-5-imaginary" if case == "wrong model" else "gpt-4.1-mini"
        http = open_backend(
            f"openai/{model}?{FAST_RETRIES}",
            base_url=server.base_url + ("/nowhere" if case == "wrong base URL" else ""),
            api_key="sk-wrong" if case == "bad key" else "sk-right",
            on_retry=events.append,
        )
        with pytest.raises(BackendRejected) as info:
            await http.complete(request(max_tokens=0 if case == "bad request" else 750))
        await http.aclose()
        assert server.stats.requests == 1  # one attempt, no retry
    assert events == []
    assert f"HTTP {status}" in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_peak_in_flight_requests_never_exceed_the_endpoint_limit():
    steps = range(0, 255, 5)  # 51 independent steps: plenty of parallel work
    settings = maker.RunSettings(concurrency=16)
    peaks = {}
    for limit in (3, None):
        # Replies slow enough (50 ms) that requests sent together are in flight together on any load.
        async with serve_sim(SimServerConfig(profile="gpt-4.1-mini?latency=0.05&latency_sigma=0")) as server:
            options = FAST_RETRIES + (f"&concurrency={limit}" if limit else "")
            http = backend(server, options)
            result = await maker.arun(HANOI_8, backend=http, settings=settings, trace=False, independent=steps)
            await http.aclose()
            peaks[limit] = server.stats.peak_in_flight
        assert result.totals.steps == len(steps)
    assert peaks[3] == 3  # the limit is reached and never crossed (counted on the server)
    assert peaks[None] > 3  # without it the same run goes wider: the count can see a violation


# -- n-batching ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("ignore_n", [False, True])
async def test_n_batching_shares_requests_and_detects_a_server_that_ignores_n(tmp_path, ignore_n):
    task = build_task("hanoi", disks=5)
    config = SimServerConfig(profile="gpt-4.1-mini?latency=0.005", faults=Faults(ignore_n=ignore_n))
    async with serve_sim(config) as server:
        http = backend(server, FAST_RETRIES + "&batch_n=1")
        result = await maker.arun(task, backend=http, trace=tmp_path / "t.jsonl", voting=Voting(first_temperature=0.1))
        await http.aclose()
        stats = server.stats
    assert result.solved and result.totals.errors == 0
    samples = load_trace(tmp_path / "t.jsonl").samples
    assert len(samples) == result.totals.samples == stats.choices
    if ignore_n:
        assert http.n_ignored
        assert stats.n_requested[3] == 1  # asked once, noticed, never again
        assert stats.chat_requests == result.totals.samples  # the one n=3 request brought one sample
    else:
        assert not http.n_ignored
        assert stats.n_requested[3] >= 25  # the first round of most steps went as one request
        assert stats.chat_requests < result.totals.samples
        # The input of a batch is paid (and booked) once.
        assert sum(e["tokens_in"] for e in samples) < sum(1 for e in samples) * samples[0]["tokens_in"]


# -- configuration and clear failures through the real CLI ---------------------------------


def test_a_missing_key_for_openai_itself_is_a_usage_error_before_anything_is_sent(monkeypatch, capsys, tmp_path):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MAKER_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code = cli_main(["hanoi", "--disks", "2", "--model", "openai/gpt-4.1-mini", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "no API key for https://api.openai.com/v1" in err
    assert not (tmp_path / "runs").exists()  # it stopped before the run began


@pytest.mark.parametrize(
    "base_url, key_needed",
    [
        ("http://127.0.0.1:8080/v1", False),
        ("http://localhost:11434/v1", False),
        ("http://192.168.1.20:8000/v1", False),
        ("http://ollama:11434/v1", False),
        ("https://api.openai.com/v1", True),
        ("https://api.example.com/v1", True),
    ],
)
def test_local_servers_get_a_placeholder_key_and_remote_ones_need_a_real_one(monkeypatch, base_url, key_needed):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    if key_needed:
        with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
            open_backend("openai/m", base_url=base_url)
    else:
        assert open_backend("openai/m", base_url=base_url).base_url == base_url


def test_the_base_url_comes_from_the_option_then_maker_then_openai_env(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert open_backend("openai/m").base_url == "http://127.0.0.1:1/v1"
    monkeypatch.setenv("MAKER_BASE_URL", "http://127.0.0.1:2/v1")
    assert open_backend("openai/m").base_url == "http://127.0.0.1:2/v1"
    assert open_backend("openai/m", base_url="http://127.0.0.1:3/v1").base_url == "http://127.0.0.1:3/v1"
    assert open_backend("openai/m?base_url=http://127.0.0.1:4/v1").base_url == "http://127.0.0.1:4/v1"


@pytest.mark.parametrize(
    "model, message",
    [
        ("openai/m?api_key=sk-123", "never put an API key in a model name"),
        ("openai/m?retries=3", "unknown openai option 'retries'"),
        ("openai/m?timeout=fast", "needs a number"),
        ("openai/m?max_attempts=0", "max_attempts must be >= 1"),
        ("openai/m?base_url=ftp://x", "must look like http://HOST:PORT/v1"),
        ("openai/m?base_url=http://127.0.0.1:8/v1&base_url_too=1", "unknown openai option"),
        ("openai/m?base_url=http://127.0.0.1:8/v1", "base_url is given twice with different values"),
    ],
)
def test_bad_model_options_are_config_errors(model, message):
    explicit = "http://127.0.0.1:9/v1" if model.endswith(":8/v1") or "base_url" not in model else None
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        open_backend(model, base_url=explicit)


@pytest.fixture(scope="module")
def sim_url():
    with sim_server_process("--profile", "perfect", "--api-key", "sk-right-key") as url:
        yield url


CLI_FAILURES = {
    "unreachable server": (
        "perfect",
        lambda url: f"http://127.0.0.1:{closed_port()}/v1",
        "sk-right-key",
        "still failing after 2 attempts (last: connection failed",
    ),
    "wrong model name": ("gpt-9", lambda url: url, "sk-right-key", "no model named 'gpt-9'"),
    "bad key": ("perfect", lambda url: url, "sk-wrong-key", "rejected the API key"),
    "wrong base URL": ("perfect", lambda url: url.removesuffix("/v1") + "/api", "sk-right-key", "check --base-url"),
}


@pytest.mark.parametrize("case", list(CLI_FAILURES))
def test_endpoint_failures_are_one_clear_line_and_exit_1_with_the_trace_flushed(sim_url, tmp_path, case):
    model, url_of, key, message = CLI_FAILURES[case]
    trace = tmp_path / "t.jsonl"
    done = run_maker(
        "hanoi",
        "--disks",
        "3",
        "--model",
        f"openai/{model}?max_attempts=2&backoff=0.01",
        "--base-url",
        url_of(sim_url),
        "--trace",
        str(trace),
        "--quiet",
        cwd=tmp_path,
        env=clean_env(OPENAI_API_KEY=key),
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maker: error: openai/"), done.stderr
    assert message in lines[0] and f"(trace: {trace})" in lines[0]
    loaded = load_trace(trace)  # nothing lost: header and end are on disk
    assert loaded.header["model"] == f"openai/{model}"
    assert loaded.end["outcome"] == "error" and message in loaded.end["message"]  # type: ignore[index]


def test_json_output_carries_the_endpoint_error(sim_url, tmp_path):
    done = run_maker(
        "hanoi",
        "--disks",
        "3",
        "--model",
        "openai/gpt-9",
        "--base-url",
        sim_url,
        "--json",
        "--no-trace",
        cwd=tmp_path,
        env=clean_env(OPENAI_API_KEY="sk-right-key"),
    )
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["outcome"] == "error" and "no model named 'gpt-9'" in summary["error"]


def test_a_run_through_the_cli_against_serve_sim_solves(sim_url, tmp_path):
    done = run_maker(
        "hanoi",
        "--disks",
        "4",
        "--model",
        "openai/perfect",
        "--base-url",
        sim_url,
        "--json",
        "--no-trace",
        cwd=tmp_path,
        env=clean_env(OPENAI_API_KEY="sk-right-key"),
    )
    assert done.returncode == 0, done.stderr
    assert '"solved": true' in done.stdout


def test_base_url_with_a_sim_model_is_a_usage_error(tmp_path):
    done = run_maker("hanoi", "--disks", "2", "--base-url", "http://127.0.0.1:1/v1", cwd=tmp_path)
    assert done.returncode == 2
    assert "apply to openai/ models" in done.stderr and "Traceback" not in done.stderr
