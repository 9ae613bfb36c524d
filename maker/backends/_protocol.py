"""The one interface every backend implements: one request in, one sample out."""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple, Protocol, runtime_checkable

from maker.tasks import Messages


# Request and Completion are NamedTuples, not frozen dataclasses: just as
# immutable, and four times cheaper to build, which a million-step run feels.
class Request(NamedTuple):
    """One sample's worth of work. `step` and `sample` (its index within the step) identify it in the trace."""

    messages: Messages
    temperature: float
    max_tokens: int
    step: Hashable = None
    # Not `index`: that would shadow tuple.index on this NamedTuple.
    sample: int = 0


class Completion(NamedTuple):
    """One model response, with what it cost and how long it took."""

    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    latency: float
    retries: int = 0
    # Prompt tokens the server's prefix cache served (None: the server did not say, which is not 0).
    cached_tokens: int | None = None
    endpoint: str | None = None  # which of several endpoints drew it (None: there is one)


@runtime_checkable
class Backend(Protocol):
    """A model endpoint. Knows nothing about voting: resampling is not its business.

    Transport retries happen inside `complete`; what comes out is either a
    completion or a `maker.errors.BackendError`.
    """

    model: str

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...
