"""`maker serve-sim`: the simulated model over real HTTP, spoken to with the real `openai` client.

Each fault kind is checked from the client's side (what the openai package
raises or returns with its own retries off) and from the server's (its counters).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import anyio
import openai
import pytest

from maker.backends import Faults, SimServerConfig, serve_sim
from maker.errors import ConfigError
from maker.tasks import build_task
from maker.tasks.hanoi import optimal_move

pytestmark = pytest.mark.timeout(60)

HANOI = build_task("hanoi", disks=4)


def step_messages(step: int = 0) -> list[dict[str, str]]:
    chain = HANOI.plan()
    return chain.step.prompt(HANOI.step_inputs(step))  # type: ignore[attr-defined]


def client(server: Any, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=options.pop("timeout", 10), **options
    )


async def ask(server: Any, **options: Any) -> Any:
    timeout = options.pop("timeout", 10)
    async with client(server, timeout=timeout) as c:
        return await c.chat.completions.create(
            model=options.pop("model", "gpt-4.1-mini"), messages=step_messages(), max_tokens=750, **options
        )


@pytest.mark.anyio
async def test_replies_are_the_simulated_model_answering_hanoi_in_its_format():
    async with serve_sim(SimServerConfig(profile="perfect")) as server:
        reply = await ask(server, model="perfect", temperature=0)
    step = HANOI.plan().step
    answer = step.parse(reply.choices[0].message.content)
    assert step.vote_key(answer) == step.vote_key(step.expected(HANOI.step_inputs(0)))
    assert answer["move"] == optimal_move(4, 1)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


@pytest.mark.anyio
async def test_health_models_and_stats_endpoints():
    async with serve_sim(SimServerConfig(models=("a", "b"))) as server, client(server) as c:
        models = await c.models.list()
        health = await c.get("/health", cast_to=object)  # type: ignore[arg-type]
        await c.chat.completions.create(model="a", messages=step_messages(), max_tokens=750)
        stats = await c.get("/stats", cast_to=object)  # type: ignore[arg-type]
    assert [m.id for m in models.data] == ["a", "b"]
    assert health == {"status": "ok"}
    assert stats["chat_requests"] == 1 and stats["completions"] == 1 and stats["peak_in_flight"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "fault, raised, status",
    [
        ("rate_limit", openai.RateLimitError, 429),
        ("server_error", openai.InternalServerError, 500),
        ("drop", openai.APIConnectionError, None),
        ("slow", openai.APITimeoutError, None),
        ("bad_json", json.JSONDecodeError, 200),
    ],
)
async def test_each_fault_reaches_the_client_as_what_a_real_server_would_cause(fault, raised, status):
    faults = Faults(**{fault: 1.0}, retry_after=2.5, slow_seconds=30)
    async with serve_sim(SimServerConfig(faults=faults)) as server:
        with pytest.raises(raised) as info:
            # Only the slow reply may outlast the client; the timeout leaves a loaded machine time to answer.
            await ask(server, timeout=2 if fault == "slow" else 20)
        if status is not None and status != 200:
            assert info.value.status_code == status  # type: ignore[attr-defined]
        assert server.stats.faults == {fault: 1}
        assert server.stats.completions == 0
    if fault == "rate_limit":
        headers = info.value.response.headers  # type: ignore[attr-defined]
        assert (headers["retry-after"], headers["retry-after-ms"]) == ("3", "2500")


@pytest.mark.anyio
async def test_server_errors_cycle_through_500_502_503():
    async with serve_sim(SimServerConfig(faults=Faults(server_error=1.0))) as server:
        statuses = []
        for _ in range(3):
            with pytest.raises(openai.InternalServerError) as info:
                await ask(server)
            statuses.append(info.value.status_code)
    assert statuses == [500, 502, 503]


@pytest.mark.anyio
async def test_truncation_is_a_normal_reply_cut_short_with_finish_reason_length():
    async with serve_sim(SimServerConfig(faults=Faults(truncate=1.0))) as server:
        reply = await ask(server)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 750
    assert "next_state" not in choice.message.content  # the answer never got written


@pytest.mark.anyio
async def test_n_is_honoured_unless_the_server_is_told_to_ignore_it():
    async with serve_sim(SimServerConfig()) as server:
        honoured = await ask(server, n=3, temperature=0.1)
    async with serve_sim(SimServerConfig(faults=Faults(ignore_n=True))) as server:
        ignored = await ask(server, n=3, temperature=0.1)
    assert [c.index for c in honoured.choices] == [0, 1, 2]
    assert len(ignored.choices) == 1


@pytest.mark.anyio
async def test_a_slow_reply_within_the_client_timeout_arrives():
    async with serve_sim(SimServerConfig(faults=Faults(slow=1.0, slow_seconds=0.05))) as server:
        reply = await ask(server, timeout=5)
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.anyio
async def test_faults_are_a_function_of_the_seed():
    async def sequence(seed: int) -> list[str]:
        seen = []
        faults = Faults(rate_limit=0.3, server_error=0.3, retry_after=0)
        async with serve_sim(SimServerConfig(faults=faults, seed=seed)) as server:
            for _ in range(12):
                try:
                    await ask(server)
                    seen.append("ok")
                except openai.APIStatusError as exc:
                    seen.append(str(exc.status_code))
        return seen

    first = await sequence(1)
    assert first == await sequence(1)
    assert first != await sequence(2)
    assert "ok" in first and len(set(first)) > 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "model, key, raised, code",
    [
        ("no-such-model", "sk-right", openai.NotFoundError, "model_not_found"),
        ("gpt-4.1-mini", "sk-wrong", openai.AuthenticationError, "invalid_api_key"),
    ],
)
async def test_wrong_model_and_wrong_key_are_rejected_like_openai_does(model, key, raised, code):
    async with (
        serve_sim(SimServerConfig(api_key="sk-right")) as server,
        openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0) as c,
    ):
        with pytest.raises(raised) as info:
            await c.chat.completions.create(model=model, messages=step_messages(), max_tokens=10)
    assert info.value.body["code"] == code  # type: ignore[index]


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"rate_limit": 1.5}, "must be in [0, 1]"),
        ({"drop": 0.6, "slow": 0.6}, "add up to"),
        ({"retry_after": -1}, ">= 0"),
    ],
)
def test_fault_settings_are_validated(knobs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Faults(**knobs)


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown simulated model"):
        SimServerConfig(profile="gpt-7")


def test_mixed_faults_spread_the_rate_over_every_kind():
    faults = Faults.mixed(0.3)
    assert faults.total == pytest.approx(0.3)
    assert faults.rate_limit == faults.drop == faults.truncate == pytest.approx(0.05)


def test_serve_sim_command_prints_its_url_and_serves_until_stopped():
    proc = subprocess.Popen(
        [sys.executable, "-m", "maker.cli", "serve-sim", "--profile", "perfect"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=5) as response:
            assert json.load(response) == {"status": "ok"}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err


@pytest.mark.anyio
@pytest.mark.parametrize(
    "raw",
    [
        b"NONSENSE\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops",
    ],
)
async def test_malformed_requests_get_a_400_and_the_server_keeps_serving(raw):
    async with serve_sim(SimServerConfig(profile="perfect")) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(raw)
            reply = await stream.receive()
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert (await ask(server, model="perfect")).choices[0].finish_reason == "stop"
