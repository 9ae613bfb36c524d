"""Several endpoints serving one model, over real HTTP to serve-sim: routing, cooldown, sticky steps,
endpoints files. Which endpoint a given request goes to depends on timing, so no test asserts it,
except where routing is fixed by construction (sticky steps, a dead endpoint)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from _http import FAST_RETRIES, closed_port

import maker
from maker.backends import Faults, SimServerConfig, serve_sim
from maker.backends._fleet import EndpointSpec, Fleet, load_endpoints
from maker.backends._registry import open_backend
from maker.errors import ConfigError
from maker.tasks import build_task
from maker.traces._reader import load_trace

pytestmark = pytest.mark.timeout(120)

HANOI = build_task("hanoi", disks=8)


def fleet(urls: list[str], **settings: Any) -> Any:
    return open_backend(f"openai/gpt-4.1-mini?{FAST_RETRIES}", base_urls=urls, api_key="sk-test", **settings)


def samples_of(path: Path) -> list[dict[str, Any]]:
    return load_trace(path).samples


def label(url: str) -> str:
    return url.rstrip("/")


@pytest.mark.anyio
async def test_two_endpoints_share_a_run_and_every_sample_says_where_it_was_drawn(tmp_path: Path) -> None:
    async with serve_sim(SimServerConfig(seed=1)) as a, serve_sim(SimServerConfig(seed=2)) as b:
        backend = fleet([a.base_url, b.base_url])
        assert isinstance(backend, Fleet) and backend.model == "openai/gpt-4.1-mini"
        try:
            result = await maker.arun(HANOI, backend=backend, trace=tmp_path / "t.jsonl", independent=list(range(30)))
        finally:
            await backend.aclose()
        served = a.stats.completions + b.stats.completions
    assert result.error is None
    samples = samples_of(tmp_path / "t.jsonl")
    assert served == len(samples)
    assert {s["endpoint"] for s in samples} <= {label(a.base_url), label(b.base_url)}
    header = load_trace(tmp_path / "t.jsonl").header
    assert [e["base_url"] for e in header["endpoints"]] == [label(a.base_url), label(b.base_url)]


@pytest.mark.anyio
async def test_a_failing_endpoint_is_cooled_down_and_the_run_finishes_on_the_other(tmp_path: Path) -> None:
    broken = SimServerConfig(faults=Faults(server_error=1.0))
    async with serve_sim(broken) as bad, serve_sim(SimServerConfig()) as good:
        backend = fleet([bad.base_url, good.base_url], cooldown=30.0)
        try:
            result = await maker.arun(HANOI, backend=backend, trace=tmp_path / "t.jsonl", independent=list(range(20)))
        finally:
            await backend.aclose()
        refused = bad.stats.chat_requests
    assert result.error is None and result.totals.errors == 0
    assert refused >= 1  # it was tried
    samples = samples_of(tmp_path / "t.jsonl")
    assert {s["endpoint"] for s in samples} == {label(good.base_url)}
    with (tmp_path / "t.jsonl").open() as f:
        cooled = [e for e in map(json.loads, f) if e["type"] == "governor" and e["event"] == "cooldown"]
    assert cooled and {e["endpoint"] for e in cooled} == {f"openai/gpt-4.1-mini at {label(bad.base_url)}"}


@pytest.mark.anyio
async def test_an_unreachable_endpoint_costs_no_errors(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    async with serve_sim(SimServerConfig()) as good:
        backend = fleet([dead, good.base_url])
        try:
            result = await maker.arun(HANOI, backend=backend, trace=False, independent=list(range(10)))
        finally:
            await backend.aclose()
    assert result.error is None
    assert backend.members[0].cooldowns >= 1


@pytest.mark.anyio
async def test_sticky_routing_keeps_each_steps_samples_on_one_endpoint(tmp_path: Path) -> None:
    async with serve_sim(SimServerConfig(seed=1)) as a, serve_sim(SimServerConfig(seed=2)) as b:
        backend = fleet([a.base_url, b.base_url], sticky=True)
        try:
            await maker.arun(HANOI, backend=backend, trace=tmp_path / "t.jsonl", independent=list(range(30)))
        finally:
            await backend.aclose()
    where: dict[Any, set[str]] = defaultdict(set)
    for s in samples_of(tmp_path / "t.jsonl"):
        where[s["step"]].add(s["endpoint"])
    assert where and all(len(endpoints) == 1 for endpoints in where.values())


def test_an_endpoints_file_names_urls_keys_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(
        json.dumps(
            [
                {"base_url": "http://10.0.0.1:8000/v1", "rpm": 600},
                {"base_url": "https://api.example.com/v1", "key_env": "EXAMPLE_KEY", "tpm": 2e6},
            ]
        )
    )
    specs = load_endpoints(path)
    assert specs == [
        EndpointSpec("http://10.0.0.1:8000/v1", rpm=600.0),
        EndpointSpec("https://api.example.com/v1", key_env="EXAMPLE_KEY", tpm=2e6),
    ]
    with pytest.raises(ConfigError, match="EXAMPLE_KEY"):
        open_backend("openai/m", endpoints=str(path))
    monkeypatch.setenv("EXAMPLE_KEY", "sk-example-key")
    backend = open_backend("openai/m", endpoints=str(path))
    assert [m.backend.governor.buckets.get("requests") is not None for m in backend.members] == [True, False]
    assert backend.endpoints == [  # what the trace header records: never a key, only where it comes from
        {"base_url": "http://10.0.0.1:8000/v1", "rpm": 600.0},
        {"base_url": "https://api.example.com/v1", "key_env": "EXAMPLE_KEY", "tpm": 2e6},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "non-empty list"),
        ('[{"rpm": 5}]', "needs a base_url"),
        ('[{"base_url": "http://h/v1", "rpm": "fast"}]', "rpm must be"),
        ('[{"base_url": "http://h/v1", "weight": 2}]', "unknown field"),
    ],
)
def test_a_bad_endpoints_file_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_endpoints(path)


def test_several_urls_and_a_file_are_not_both_given(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        open_backend("openai/m", base_urls=["http://127.0.0.1:1/v1"], endpoints=str(tmp_path / "x.json"))


def test_the_cli_takes_base_url_twice(tmp_path: Path) -> None:
    from _http import run_maker, server_stats, sim_server_process

    with sim_server_process("--seed", "1") as a, sim_server_process("--seed", "2") as b:
        done = run_maker(
            "hanoi",
            "--disks",
            "4",
            "--model",
            "openai/gpt-4.1-mini",
            "--base-url",
            a,
            "--base-url",
            b,
            "--sticky-endpoints",
            "--json",
            "--trace",
            str(tmp_path / "t.jsonl"),
            cwd=tmp_path,
        )
        served = server_stats(a)["completions"] + server_stats(b)["completions"]
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["error"] is None and served == summary["samples"]
    assert {s["endpoint"] for s in samples_of(tmp_path / "t.jsonl")} <= {a, b}
