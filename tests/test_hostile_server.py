"""A hostile server cannot hang a run, exhaust its memory, crash it, skew its budget or reach the terminal.

Every test talks over real HTTP on 127.0.0.1, through the `openai` client, to
`serve-sim` with its replies spoiled (`_hostile.HostileServer`): a reply
trickling in a byte at a time, 50 MB and endless bodies, a gzip bomb, bodies
of the wrong shape or not UTF-8, negative token counts, terminal escapes and
rich markup in what the server says, and the API key echoed into a reply.

Each ends in a clean retry (the spoiled attempt fails, the next one gets
through) or one line naming what was wrong. Memory is bounded by assertion
(tracemalloc's peak while the reply is read); a hang would be caught by the
per-test timeout. No test asserts on timing.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from _hostile import (
    always,
    body,
    endless,
    first,
    gzip_bomb,
    gzipped,
    hostile_in_thread,
    huge,
    huge_undeclared,
    reshaped,
    serve_hostile,
    slow_loris,
)

import maker
from maker import Budget
from maker.backends import Request, RetryEvent, open_backend
from maker.backends._wire import DEFAULT_MAX_REPLY_BYTES
from maker.cli._app import main as cli_main
from maker.errors import BackendUnavailable, BudgetExceeded
from maker.tasks import build_task
from maker.voting import Voting

pytestmark = pytest.mark.timeout(60)

KEY = "sk-hostile-test-SECRET-4b1d9e77aa05"
FRAGMENT = "SECRET-4b1d9e77aa05"
FAST = "max_attempts=3&backoff=0.001&backoff_max=0.01&jitter=0"
HANOI = build_task("hanoi", disks=3)
MEMORY_CAP = 16 * 1024 * 1024  # the 4 MiB reply cap, read and joined, plus the client's own state


def request(max_tokens: int = 750) -> Request:
    step = HANOI.plan().step  # type: ignore[attr-defined]
    return Request(step.prompt(HANOI.step_inputs(0)), 0.0, max_tokens, step=0, sample=0)


async def ask(server: Any, options: str = FAST, *, request_timeout: float = 5.0) -> tuple[Any, list[RetryEvent]]:
    """One sample through the openai backend: (the completion or the error it raised, the retries)."""
    events: list[RetryEvent] = []
    http = open_backend(
        f"openai/perfect?{options}",
        base_url=server.base_url,
        api_key=KEY,
        timeout=request_timeout,
        on_retry=events.append,
    )
    try:
        return await http.complete(request()), events
    except BackendUnavailable as exc:
        return exc, events
    finally:
        await http.aclose()


async def warm(server: Any) -> None:
    """One clean request first: the client's lazy imports must not eat into a short deadline."""
    server.spoil = lambda n: None
    outcome, _ = await ask(server)
    assert not isinstance(outcome, BaseException), outcome


def spoil_next(server: Any, count: int, send: Any) -> None:
    """Spoil the next `count` chat requests, then answer cleanly again."""
    done = server.stats.chat_requests
    server.spoil = lambda n: send if done < n <= done + count else None


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "\x1b" not in text and FRAGMENT not in text
    return text


def assert_clean_retry(outcome: Any, events: list[RetryEvent], reason: str) -> None:
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.text and outcome.retries == 1
    assert [e.reason for e in events] == [reason]


# -- time: a reply that never finishes -----------------------------------------------------


@pytest.mark.anyio
async def test_a_slow_loris_reply_is_cut_off_at_the_deadline_and_retried():
    # One byte every 50 ms: every read is far inside the timeout, the reply is not.
    async with serve_hostile(first(1, slow_loris())) as server:
        await warm(server)
        spoil_next(server, 1, slow_loris())
        outcome, events = await ask(server, request_timeout=1.0)
    assert_clean_retry(outcome, events, "timed out")


@pytest.mark.anyio
async def test_a_server_that_always_trickles_fails_in_one_line_after_the_last_attempt():
    async with serve_hostile(always(slow_loris())) as server:
        await warm(server)
        server.spoil = always(slow_loris())
        outcome, events = await ask(server, "max_attempts=2&backoff=0.001", request_timeout=0.5)
    assert isinstance(outcome, BackendUnavailable) and len(events) == 1
    assert "timed out (no complete reply within 0.5 s)" in one_line(outcome)


# -- memory: bodies too large to keep ------------------------------------------------------

BIG = [
    ("50 MB, Content-Length", huge),
    ("50 MB, chunked", huge_undeclared),
    ("endless", endless),
    ("gzip bomb, 256 MB inflated", lambda: gzip_bomb(256 * 1024 * 1024)),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("why", "make"), BIG, ids=[b[0] for b in BIG])
async def test_a_body_past_the_cap_fails_its_attempt_in_bounded_memory(why, make):
    send = make()  # built before measuring: the server's bytes are not the client's memory
    async with serve_hostile(first(1, send)) as server:
        await warm(server)  # and the bomb built, so that only reading the reply is measured
        spoil_next(server, 1, send)
        tracemalloc.start()
        try:
            outcome, events = await ask(server)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert_clean_retry(outcome, events, "unreadable response body")
    print(f"{why}: peak {peak / 2**20:.1f} MiB traced while reading")
    assert peak < MEMORY_CAP, f"{why}: {peak / 2**20:.1f} MiB held while reading"


@pytest.mark.anyio
async def test_a_server_that_always_sends_too_much_fails_in_one_line_naming_the_cap():
    async with serve_hostile(always(endless())) as server:
        outcome, _ = await ask(server, "max_attempts=2&backoff=0.001")
    assert isinstance(outcome, BackendUnavailable)
    assert f"over {DEFAULT_MAX_REPLY_BYTES:,} bytes" in one_line(outcome)


@pytest.mark.anyio
async def test_a_gzipped_reply_within_the_cap_is_read():
    async with serve_hostile(always(gzipped())) as server:
        outcome, events = await ask(server)
    assert not isinstance(outcome, BaseException) and outcome.text.startswith("Let me") and not events


@pytest.mark.anyio
async def test_the_cap_is_an_option():
    async with serve_hostile(always(huge(5000))) as server:
        fits, _ = await ask(server)
        small, _ = await ask(server, FAST + "&max_reply_bytes=4096")
    assert not isinstance(fits, BaseException) and fits.text == "x" * 5000
    assert isinstance(small, BackendUnavailable) and "over the cap of 4,096" in one_line(small)


# -- shape: a 200 that is not a chat completion --------------------------------------------


def _content(value: Any) -> Any:
    return lambda r: r["choices"][0]["message"].update(content=value)


WRONG = [
    ("choices is an object", reshaped(lambda r: r.update(choices={"0": r["choices"][0]})), "choices as a object"),
    ("choices is a string", reshaped(lambda r: r.update(choices="yes")), "choices as a string"),
    ("choices is empty", reshaped(lambda r: r.update(choices=[])), "without choices"),
    ("a choice is a number", reshaped(lambda r: r.update(choices=[1])), "a choice that is a number"),
    ("message is a string", reshaped(lambda r: r["choices"][0].update(message="hi")), "a message that is a string"),
    ("content is an int", reshaped(_content(42)), "content that is a number"),
    ("content is a list", reshaped(_content([{"type": "text", "text": "hi"}])), "content that is a list"),
    ("finish_reason is an object", reshaped(lambda r: r["choices"][0].update(finish_reason={})), "finish_reason"),
    ("index is a string", reshaped(lambda r: r["choices"][0].update(index="0")), "choice index"),
    ("the body is a list", body(lambda r: "[1, 2]"), "a JSON list"),
    ("the body is nested 200,000 deep", body(lambda r: "[" * 200_000 + "]" * 200_000), "nested too deeply"),
    ("the body is not JSON", body(lambda r: "<html>Bad gateway</html>"), "not JSON"),
    ("the body is empty", body(lambda r: b""), "not JSON"),
    ("the body is not UTF-8", body(lambda r: json.dumps(r).encode().replace(b"move", b"mo\xff\xfe")), "not UTF-8"),
    ("text with a lone surrogate", body(lambda r: json.dumps(r).replace("move", "\\ud800move")), "surrogate"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("why", "send", "said"), WRONG, ids=[w[0] for w in WRONG])
async def test_a_reply_of_the_wrong_shape_is_retried_then_reported_in_one_line(why, send, said):
    async with serve_hostile(first(1, send)) as server:
        outcome, events = await ask(server)
        assert_clean_retry(outcome, events, "invalid response body")
        server.spoil = always(send)
        failed, _ = await ask(server, "max_attempts=2&backoff=0.001")
    assert isinstance(failed, BackendUnavailable)
    line = one_line(failed)
    assert "still failing after 2 attempts (last: invalid response body: " in line and said in line


# -- usage: counts that are not counts -----------------------------------------------------

USAGE = [
    ("negative", {"prompt_tokens": -1_000_000, "completion_tokens": -100_000}),
    ("strings", {"prompt_tokens": "400", "completion_tokens": "20"}),
    ("floats", {"prompt_tokens": 1e30, "completion_tokens": 2.5}),
    ("booleans", {"prompt_tokens": True, "completion_tokens": False}),
    ("a list", [400, 20]),
    ("absurd", {"prompt_tokens": 10**300, "completion_tokens": 10**300}),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("why", "usage"), USAGE, ids=[u[0] for u in USAGE])
async def test_usage_that_is_not_sane_counts_is_estimated_high_not_believed(why, usage):
    async with serve_hostile(always(reshaped(lambda r: r.update(usage=usage)))) as server:
        outcome, events = await ask(server)
    assert not isinstance(outcome, BaseException) and not events  # a good answer: kept, not retried
    prompt = request().messages
    assert outcome.input_tokens == sum(len(m["content"].encode()) for m in prompt) + 8 * len(prompt)
    assert outcome.output_tokens == min(750, len(outcome.text.encode()))


@pytest.mark.anyio
async def test_negative_usage_cannot_stretch_a_token_budget(tmp_path: Path):
    # The probe: an honest server lets 43 samples through 20,000 tokens; one reporting
    # negative usage let 126. Each request is now booked at its worst case instead, and
    # the worst case of a request is at least its output cap.
    negative = reshaped(lambda r: r.update(usage={"prompt_tokens": -(10**6), "completion_tokens": -(10**5)}))
    voting = Voting(max_output_tokens=750)
    async with serve_hostile(always(negative)) as server:
        http = open_backend(f"openai/perfect?{FAST}", base_url=server.base_url, api_key=KEY)
        try:
            result = await maker.arun(
                build_task("hanoi", disks=6),
                backend=http,
                voting=voting,
                budget=Budget(max_tokens=20_000),
                trace=tmp_path / "t.jsonl",
            )
        finally:
            await http.aclose()
        sent = server.stats.chat_requests
    assert isinstance(result.error, BudgetExceeded)
    assert 0 < sent <= 20_000 // 750
    assert result.totals.tokens_in > 0 and result.totals.tokens_out > 0


# -- the terminal: escapes and markup in what a server says --------------------------------

EVIL = "\x1bc\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07 [/nope] [link=http://evil.example/]x[/link] :skull:"


def _shown_literally(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text  # no escape sequence reached the terminal
    assert "\\x1bc" in text  # ... it is spelled out instead


def test_escapes_in_a_servers_error_text_reach_stderr_spelled_out(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    refusal = body(lambda r: json.dumps({"error": {"message": EVIL, "type": "invalid_request_error"}}), status=400)
    with hostile_in_thread(always(refusal)) as server:
        code = cli_main(_run_args(server, tmp_path / "t.jsonl"))
    err = capsys.readouterr().err
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("maker: error: ") and "rejected the request" in line
    _shown_literally(line)


def test_escapes_and_markup_in_replies_are_shown_as_sent_by_trace_show(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def spoil(r: dict[str, Any]) -> None:
        choice = r["choices"][0]
        choice["message"]["content"] = EVIL + "\n" + choice["message"]["content"]
        choice["finish_reason"] = "stop[/nope]\x1bc"

    trace = tmp_path / "t.jsonl"
    with hostile_in_thread(always(reshaped(spoil))) as server:
        cli_main(_run_args(server, trace))
    capsys.readouterr()
    code = cli_main(["trace", "show", str(trace), "--step", "0", "--text"])
    out = capsys.readouterr()
    assert code == 0
    shown = out.out + out.err
    _shown_literally(shown)
    assert "[/nope]" in shown and "[link=http://evil.example/]" in shown and ":skull:" in shown


def _run_args(server: Any, trace: Path) -> list[str]:
    return [
        "hanoi",
        "--disks",
        "2",
        "--model",
        f"openai/perfect?{FAST}",
        "--base-url",
        server.base_url,
        "--trace",
        str(trace),
        "--quiet",
    ]


# -- secrets: a key echoed back ------------------------------------------------------------


def test_a_key_echoed_into_a_reply_never_reaches_the_trace(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def echo(r: dict[str, Any]) -> None:
        r["choices"][0]["message"]["content"] += f"\n(you sent Authorization: Bearer {KEY})"
        r["choices"][0]["finish_reason"] = f"stop {KEY}"

    trace = tmp_path / "t.jsonl"
    with hostile_in_thread(always(reshaped(echo))) as server:
        code = cli_main(_run_args(server, trace))
    out = capsys.readouterr()
    text = trace.read_text()
    assert code == 0, out.err  # the answers are still right: only the key is taken out
    assert FRAGMENT not in text + out.out + out.err
    assert "[redacted]" in text
