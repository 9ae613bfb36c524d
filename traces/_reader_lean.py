"""Lean events for the readers that only count: `maker analyze`, `maker trace show`, re-voting.

Nearly every line of a big trace is a sample or a decision. Here msgspec
decodes those straight into small structs, checking every field the general
checks check (types and bounds, in C): far less work per line than a dict
and the checks in Python. Anything these structs
refuse (another event type, a field out of shape, a line msgspec cannot
decode) goes through the general reader as usual, which yields it as a dict or
raises the error it always raised; so a lean read accepts exactly the traces
a full read accepts. A test holds the structs to the general checks.

A lean event reads like the dict it stands for (`e["step"]`, `e.get("key")`,
`"basis" in e`, `e["type"]`); `as_dict()` gives the dict.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from maker.traces._reader import _events, _Lines, _Refused, check_trace_file
from maker.traces._schema import LIMIT, PER_STEP

Step = Annotated[int, Meta(gt=-LIMIT, lt=LIMIT)] | str
Number = Annotated[int, Meta(gt=-LIMIT, lt=LIMIT)] | float  # msgspec never yields inf or NaN from JSON
Count = Annotated[int, Meta(ge=0, lt=LIMIT)]
Small = Annotated[int, Meta(ge=0, lt=PER_STEP)]


class _Lean(msgspec.Struct, tag_field="type", frozen=True, gc=False):
    """Dict-style reads of a lean event; a field the line did not have reads as missing."""

    type: ClassVar[str]

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name, UNSET)
        if value is UNSET:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        value = getattr(self, name, default)
        return default if value is UNSET else value

    def __contains__(self, name: str) -> bool:
        return getattr(self, name, UNSET) is not UNSET

    def as_dict(self) -> dict[str, Any]:
        fields = {n: getattr(self, n) for n in self.__struct_fields__}
        return {"type": self.type, **{n: v for n, v in fields.items() if v is not UNSET}}


class LeanSample(_Lean, tag="sample", frozen=True, gc=False):
    type: ClassVar[str] = "sample"
    step: Step
    i: Small
    temperature: Number
    finish: str | None
    tokens_in: Count
    tokens_out: Count
    latency: Number
    retries: Count
    flag: str | None
    key: str | None
    late: bool
    text: str
    # Optional fields no general check looks at: any JSON value, as in a dict.
    basis: Any = UNSET
    spec: Any = UNSET
    discarded: Any = UNSET
    cached_tokens: Any = UNSET  # absent: the server did not say (unknown, not 0)
    endpoint: Any = UNSET


class LeanDecision(_Lean, tag="decision", frozen=True, gc=False):
    type: ClassVar[str] = "decision"
    step: Step
    kind: Literal["llm", "python"]
    winner: str | None
    answer: Any
    votes: dict[str, Annotated[int, Meta(ge=0)]]
    samples: Small
    flagged: Small
    rounds: Small
    truth: str | None
    correct: bool | None
    prompt: str | UnsetType | None = UNSET


_decoder = msgspec.json.Decoder(LeanSample | LeanDecision)


def decode_lean(raw: bytes) -> LeanSample | LeanDecision:
    """One line as a lean event, or an exception that sends it to the general checks."""
    event = _decoder.decode(raw)
    if type(event) is LeanDecision and sum(event.votes.values()) >= PER_STEP:
        raise _Refused
    return event


def read_lean(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """`read_events`, with samples and decisions as lean events (typed as the dicts they read like)."""
    path = check_trace_file(path)
    return _events(path, _Lines(path), decode_lean)
