"""The live progress bar: this session's rate, retries and throttling as they happen, and the dry-run hint."""

from __future__ import annotations

import io

from rich.console import Console

from maker import Totals
from maker.backends import Faults, RetryEvent, SimServerConfig
from maker.cli._progress import RichProgress
from maker.cli._serve import _try_command


def bar() -> tuple[RichProgress, io.StringIO]:
    out = io.StringIO()
    return RichProgress(Console(file=out, width=200, force_terminal=False), label="hanoi"), out


def test_steps_per_second_after_a_resume_counts_only_this_sessions_steps() -> None:
    progress, out = bar()
    progress.start(1_000)
    progress._show(Totals(steps=600), now=100.0)  # the first decision of the resumed session
    progress._show(Totals(steps=620), now=110.0)  # 20 more steps in 10 s
    progress.stop()
    assert "2.0 steps/s" in out.getvalue()  # not 62: the 600 steps of earlier sessions are not this one's


def test_retries_and_throttling_show_as_they_happen_before_any_step_is_decided() -> None:
    progress, out = bar()
    progress.start(10)
    progress.on_retry(RetryEvent(attempt=1, reason="HTTP 429", wait=0.3, retry_after=0.3))
    progress.on_retry(RetryEvent(attempt=1, reason="timed out", wait=0.05, retry_after=None))
    progress.stop()
    assert "retries 2 · throttled 1× (0.3 s)" in out.getvalue()


def test_the_dry_run_hint_shows_faults_within_seconds() -> None:
    url = "http://127.0.0.1:1/v1"
    faulty = SimServerConfig(faults=Faults.mixed(0.3))
    assert _try_command(faulty, url) == (
        f"maker hanoi --disks 6 --model 'openai/gpt-4.1-mini?backoff=0.05' --base-url {url} --request-timeout 0.5"
    )
    assert _try_command(SimServerConfig(), url) == f"maker hanoi --model openai/gpt-4.1-mini --base-url {url}"
    assert Faults().slow_seconds < 120 / 10  # a slow reply is seconds, far under the client's default timeout
