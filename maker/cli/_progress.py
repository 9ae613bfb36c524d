"""The live progress bar (stderr) for a run, built on rich."""

from __future__ import annotations

import time

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
        self._t0 = 0.0
        self._totals: Totals | None = None

    def start(self, total_steps: int) -> None:
        self._t0 = time.monotonic()
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
        votes = t.votes / t.llm_steps if t.llm_steps else 0.0
        rate = t.steps / (now - self._t0) if now > self._t0 else 0.0
        stats = f"samples {t.samples:,} · flags {t.red_flags:,} · votes/step {votes:.2f} · errors {t.errors}"
        if self._task is None:  # not started
            return
        self._bar.update(self._task, completed=t.steps, stats=stats, rate=f"{rate:,.0f} steps/s")

    def stop(self) -> None:
        if self._totals is not None:
            self._show(self._totals, time.monotonic())  # the last redraw may have been skipped
        self._bar.stop()
