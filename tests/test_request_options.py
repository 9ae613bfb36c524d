"""Request options (top_p, top_k, min_p, stop, seed, response_format, grammar): typed, checked, sent over
real HTTP to serve-sim, and recorded in the trace header, which resume keeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _http import FAST_RETRIES, run_maker, server_stats, sim_server_process

import maker
from maker.backends import SimServerConfig, serve_sim
from maker.backends._options import check, for_sample, merge, parse_pairs, request_kwargs, sample_seed, typed
from maker.backends._registry import open_backend
from maker.errors import ConfigError
from maker.tasks import build_task
from maker.traces._reader import load_trace

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.9", 0.9),
        ("40", 40),
        ('["\\n\\n", "END"]', ["\n\n", "END"]),
        ('{"type": "json_object"}', {"type": "json_object"}),
        ("json_object", "json_object"),
        ('root ::= "move = " [0-9]', 'root ::= "move = " [0-9]'),
        ("true", True),
        ("NaN", "NaN"),
        ("", ""),
    ],
)
def test_values_are_json_where_they_parse_else_text(text: str, value: Any) -> None:
    assert typed(text) == value


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["top_p=0.9", "top_k=40"], {"top_p": 0.9, "top_k": 40}),
        (["min_p=0", "seed=7"], {"min_p": 0.0, "seed": 7}),
        (["stop=END"], {"stop": "END"}),
        (['stop=["a","b"]'], {"stop": ["a", "b"]}),
        (["response_format=json_object"], {"response_format": {"type": "json_object"}}),
        (['grammar=root ::= "x"'], {"grammar": 'root ::= "x"'}),
        (["top_p=1"], {"top_p": 1.0}),
    ],
)
def test_pairs_become_checked_options(pairs: list[str], expected: dict[str, Any]) -> None:
    assert parse_pairs(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["top_p=1.5"], "from 0 to 1"),
        (["top_p=high"], "from 0 to 1"),
        (["top_k=-1"], ">= 0"),
        (["top_k=2.5"], "integer"),
        (["seed=true"], "integer"),
        (['stop=["a","b","c","d","e"]'], "1 to 4 strings"),
        (["stop="], "1 to 4 strings"),
        (["response_format=xml"], "json_object"),
        (["grammar=  "], "GBNF"),
        (["temperature=0.5"], "unknown request option"),
        (["top_p"], "KEY=VALUE"),
        (["top_p=0.5", "top_p=0.6"], "twice"),
    ],
)
def test_bad_options_are_one_clear_error(pairs: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_pairs(pairs)


def test_api_parameters_go_as_such_and_the_rest_in_extra_body() -> None:
    options = check({"top_p": 0.9, "seed": 1, "top_k": 40, "min_p": 0.05, "grammar": "root ::= x"})
    assert request_kwargs(options) == {
        "top_p": 0.9,
        "seed": 1,
        "extra_body": {"top_k": 40, "min_p": 0.05, "grammar": "root ::= x"},
    }
    assert request_kwargs({}) == {}


def test_a_model_option_and_a_command_line_option_must_agree() -> None:
    assert merge({"top_p": 0.9}, {"top_p": 0.9, "seed": 1}) == {"top_p": 0.9, "seed": 1}
    with pytest.raises(ConfigError, match="different values"):
        merge({"top_p": 0.9}, {"top_p": 0.8})
    with pytest.raises(ConfigError, match="different values"):
        open_backend("openai/m?top_p=0.9", base_url="http://127.0.0.1:9/v1", request_options={"top_p": 0.5})


@pytest.mark.anyio
async def test_options_reach_the_server_and_the_trace_header(tmp_path: Path) -> None:
    hanoi = build_task("hanoi", disks=4)
    async with serve_sim(SimServerConfig()) as server:
        http = open_backend(
            f"openai/gpt-4.1-mini?{FAST_RETRIES}&top_p=0.9&stop=%5B%22END%22%5D",
            base_url=server.base_url,
            request_options={"top_k": 40, "min_p": 0.05, "seed": 3},
        )
        try:
            result = await maker.arun(hanoi, backend=http, trace=tmp_path / "t.jsonl")
        finally:
            await http.aclose()
        seen = dict(server.stats.options)
        seeds = server.stats.seeds
    requests = result.totals.samples
    # The run seed is not sent as is: each sample gets its own, or a seeded server would answer
    # a step's samples identically and voting would buy nothing.
    assert seeds == requests
    assert seen == {"top_p": requests, "stop": requests, "top_k": requests, "min_p": requests, "seed": requests}
    header = load_trace(tmp_path / "t.jsonl").header
    assert header["request_options"] == {"top_p": 0.9, "stop": ["END"], "top_k": 40, "min_p": 0.05, "seed": 3}


@pytest.mark.anyio
async def test_a_run_without_options_sends_none_and_records_none(tmp_path: Path) -> None:
    async with serve_sim(SimServerConfig()) as server:
        http = open_backend(f"openai/gpt-4.1-mini?{FAST_RETRIES}", base_url=server.base_url)
        try:
            await maker.arun(build_task("hanoi", disks=3), backend=http, trace=tmp_path / "t.jsonl")
        finally:
            await http.aclose()
        assert not server.stats.options
    assert "request_options" not in load_trace(tmp_path / "t.jsonl").header


def test_a_run_seed_gives_each_sample_its_own_stable_seed() -> None:
    seeds = {sample_seed(3, step, sample) for step in range(50) for sample in range(8)}
    assert len(seeds) == 400
    assert all(0 <= seed < 2**31 for seed in seeds)
    assert sample_seed(3, 7, 2) == sample_seed(3, 7, 2) != sample_seed(4, 7, 2)
    assert for_sample(request_kwargs({"seed": 3, "top_p": 0.9}), 7, 2) == {"seed": sample_seed(3, 7, 2), "top_p": 0.9}
    assert for_sample({"top_p": 0.9}, 7, 2) == {"top_p": 0.9}


def test_the_cli_takes_repeated_request_options(tmp_path: Path) -> None:
    with sim_server_process() as url:
        done = run_maker(
            "hanoi",
            "--disks",
            "3",
            "--model",
            "openai/gpt-4.1-mini",
            "--base-url",
            url,
            "--request-option",
            "top_k=20",
            "--request-option",
            'grammar=root ::= "move = " .*',
            "--json",
            "--trace",
            str(tmp_path / "t.jsonl"),
            cwd=tmp_path,
        )
        stats = server_stats(url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["error"] is None
    assert set(stats["options"]) == {"top_k", "grammar"}
    header = load_trace(tmp_path / "t.jsonl").header
    assert header["request_options"] == {"top_k": 20, "grammar": 'root ::= "move = " .*'}
    bad = run_maker("hanoi", "--disks", "3", "--request-option", "top_p=2", cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


@pytest.mark.anyio
async def test_resume_sends_the_recorded_options_again(tmp_path: Path) -> None:
    hanoi = build_task("hanoi", disks=4)
    path = tmp_path / "t.jsonl"
    async with serve_sim(SimServerConfig()) as server:
        http = open_backend(
            f"openai/gpt-4.1-mini?{FAST_RETRIES}", base_url=server.base_url, request_options={"top_k": 7}
        )
        try:
            first = await maker.arun(hanoi, backend=http, trace=path, budget=maker.Budget(max_samples=4))
        finally:
            await http.aclose()
        assert first.outcome == "budget"
        before = server.stats.chat_requests
        resumed = await maker.aresume(path, endpoint={"base_url": server.base_url})
        after = server.stats.chat_requests
        seen = server.stats.options["top_k"]
    assert resumed.error is None and after > before
    assert seen == after  # every request, in both sessions, carried top_k
