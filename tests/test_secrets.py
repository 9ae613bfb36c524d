"""API keys never reach traces, logs, error messages or --json output.

A distinctive fake key is used everywhere, and every place a user could see
text is searched for it. The sim server is told to echo a wrong key back in
its 401 body, as some providers do, so scrubbing is really exercised.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from _http import clean_env, run_maker, sim_server_process

import maker
from maker.backends import SimServerConfig, open_backend, serve_sim
from maker.errors import BackendRejected, ConfigError
from maker.tasks import build_task

pytestmark = pytest.mark.timeout(120)

KEY = "sk-maker-test-DISTINCTIVE-7f3a9c2e51d0"
FRAGMENT = "DISTINCTIVE-7f3a9c2e51d0"  # any recognisable piece of it counts as a leak


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert FRAGMENT not in text, f"the API key leaked into: {text[:300]!r}"


@pytest.fixture(scope="module")
def sim_url():
    with sim_server_process("--profile", "perfect", "--api-key", KEY) as url:
        yield url


@pytest.mark.parametrize("output", ["--json", "--quiet"])
def test_a_successful_run_keeps_the_key_out_of_trace_and_output(sim_url, tmp_path, output):
    trace = tmp_path / "t.jsonl"
    done = run_maker(
        "hanoi",
        "--disks",
        "3",
        "--model",
        "openai/perfect",
        "--base-url",
        sim_url,
        output,
        "--trace",
        str(trace),
        cwd=tmp_path,
        env=clean_env(OPENAI_API_KEY=KEY),
    )
    assert done.returncode == 0, done.stderr
    assert_clean(done.stdout, done.stderr, trace.read_text())


@pytest.mark.parametrize("output", ["--json", "--quiet"])
def test_a_rejected_key_that_the_server_echoes_is_scrubbed_everywhere(sim_url, tmp_path, output):
    wrong = KEY.replace("7f3a", "0000")  # the server echoes this one back in its error body
    trace = tmp_path / "t.jsonl"
    done = run_maker(
        "hanoi",
        "--disks",
        "3",
        "--model",
        "openai/perfect",
        "--base-url",
        sim_url,
        output,
        "--trace",
        str(trace),
        cwd=tmp_path,
        env=clean_env(OPENAI_API_KEY=wrong),
    )
    assert done.returncode == 1
    assert "rejected the API key" in done.stdout + done.stderr
    assert "[redacted]" in done.stdout + done.stderr  # the echo was there, and was scrubbed
    for text in (done.stdout, done.stderr, trace.read_text()):
        assert "DISTINCTIVE-0000" not in text


@pytest.mark.anyio
async def test_errors_and_their_tracebacks_and_every_log_line_are_key_free(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)  # everything: ours, openai's, the HTTP client's
    async with serve_sim(SimServerConfig(profile="perfect", api_key="sk-the-right-one")) as server:
        http = open_backend("openai/perfect?max_attempts=1", base_url=server.base_url, api_key=KEY)
        with pytest.raises(BackendRejected) as info:
            (
                await maker.arun(build_task("hanoi", disks=2), backend=http, trace=tmp_path / "t.jsonl")
            ).raise_for_outcome()
        await http.aclose()
    error = info.value
    assert "[redacted]" in str(error)
    rendered = "".join(traceback.format_exception(error))
    assert "401 Unauthorized" in caplog.text  # the logs did see the exchange
    assert_clean(str(error), repr(error), rendered, caplog.text, (tmp_path / "t.jsonl").read_text())
    assert error.__cause__ is None and error.__suppress_context__  # the openai error (with the echo) is not shown


def test_a_key_in_the_model_name_is_refused_before_it_can_be_recorded():
    with pytest.raises(ConfigError, match="never put an API key in a model name") as info:
        open_backend(f"openai/perfect?api_key={KEY}", base_url="http://127.0.0.1:9/v1")
    assert_clean(str(info.value))


def test_credentials_in_a_base_url_are_refused_and_not_repeated(tmp_path):
    # httpx would send them as Basic auth instead of the key, and a server could echo them: refused up front.
    url = f"http://user:{KEY}@127.0.0.1:9/v1"
    done = run_maker(
        "hanoi",
        "--disks",
        "2",
        "--model",
        "openai/m?max_attempts=1",
        "--base-url",
        url,
        "--trace",
        str(tmp_path / "t.jsonl"),
        "--quiet",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "127.0.0.1:9" in done.stderr and "user name or password" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert_clean(done.stdout, done.stderr)
    assert not (tmp_path / "t.jsonl").exists()  # refused before anything was written or sent


def test_the_test_suite_cannot_reach_beyond_loopback():
    import socket

    with socket.socket() as s, pytest.raises(RuntimeError, match="only use loopback"):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, and the guard stops it first


def test_no_key_is_written_by_the_server_helper(tmp_path):
    # The trace of a run against a keyless local server shows no placeholder either.
    with sim_server_process("--profile", "perfect") as url:
        done = run_maker(
            "hanoi",
            "--disks",
            "2",
            "--model",
            "openai/perfect",
            "--base-url",
            url,
            "--json",
            "--trace",
            str(tmp_path / "t.jsonl"),
            cwd=tmp_path,
        )
    assert done.returncode == 0
    assert "sk-" not in (tmp_path / "t.jsonl").read_text() + done.stdout
    assert Path(tmp_path / "t.jsonl").exists()
