"""The live progress bar (stderr) for a run, built on rich."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from maker._recorder import Totals


class RichProgress:
    """Implements `maker.Progress`; redraws at most ten times a second, whatever the step rate."""

    def __init__(self, console: Console | None = None, *, label: str = "steps") -> None:
        self.console = console or Console(stderr=True)
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._label = label
        self._task: TaskID | None = None
        self._last = 0.0
        self._total = 0
        self._totals: Totals | None = None
        self._base: tuple[int, float] | None = None  # (steps, time) at this session's first decision
        self._retries = self._throttled = 0
        self._throttle_s = 0.0

    def on_retry(self, event: Any) -> None:
        """A transport retry (a `RetryEvent`), shown as it happens, before its sample lands.

        A 429 is throttling: the server asked us to wait. Counting it here, not at
        the next decision, keeps the bar honest while every request is retrying.
        """
        self._retries += 1
        if event.reason == "HTTP 429":
            self._throttled += 1
            self._throttle_s += event.wait
        if self._task is not None:
            self._bar.update(self._task, stats=self._stats(self._totals or Totals()))

    def start(self, total_steps: int) -> None:
        self._total = total_steps
        self._task = self._bar.add_task(self._label, total=total_steps, stats="", rate="")
        self._bar.start()

    def update(self, totals: Totals) -> None:
        self._totals = totals
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self._show(totals, now)

    def _show(self, t: Totals, now: float) -> None:
        if self._task is None:  # not started
            return
        if self._base is None:
            # The first decision of this session. After a resume, the totals already hold earlier
            # sessions' steps: they are neither this session's rate nor its ETA, so both start here.
            self._base = (t.steps, now)
            self._bar.reset(self._task, completed=t.steps, total=self._total, stats="", rate="")
        steps, since = self._base
        rate = (t.steps - steps) / (now - since) if now > since else 0.0
        self._bar.update(self._task, completed=t.steps, stats=self._stats(t), rate=f"{rate:,.1f} steps/s")

    def _stats(self, t: Totals) -> str:
        votes = t.votes / t.llm_steps if t.llm_steps else 0.0
        stats = f"samples {t.samples:,} · flags {t.red_flags:,} · votes/step {votes:.2f} · errors {t.errors}"
        retries = max(self._retries, t.retries)
        if retries:
            stats += f" · retries {retries:,}"
        if self._throttled:
            stats += f" · throttled {self._throttled:,}× ({self._throttle_s:.1f} s)"
        return stats

    def stop(self) -> None:
        if self._totals is not None:
            self._show(self._totals, time.monotonic())  # the last redraw may have been skipped
        self._bar.stop()
