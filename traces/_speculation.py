"""What speculation cost and saved, from a trace in one streaming pass.

A speculative run (`speculate` > 0) records on every sample the fingerprint of
the prompt it answered (`basis`). A step's voted samples are those whose basis
is its decision's `prompt`; every other sample of the step was drawn from a
predicted input that turned out wrong: paid for, never voted. Each ballot on
a wrong prediction ends in a `discard` event (a misprediction); a decision
whose voted samples were drawn speculatively is a hit.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SpeculationStats:
    """Hits, mispredictions and the samples and tokens wasted on them."""

    speculative: bool = False  # the trace holds samples of a speculative run
    hits: int = 0  # decisions voted by a ballot started before its inputs were decided
    misses: int = 0  # ballots on a predicted prompt that was not the decided one
    wasted_samples: int = 0
    wasted_tokens_in: int = 0
    wasted_tokens_out: int = 0
    _held: dict[Hashable, dict[str, list[tuple[int, int, bool]]]] = field(default_factory=dict)

    @property
    def predictions(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.predictions if self.predictions else None

    def feed(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "sample":
            if "basis" in event:
                self._sample(event)
        elif kind == "decision":
            self._decision(event)
        elif kind == "discard":
            self.misses += 1

    def _sample(self, e: dict[str, Any]) -> None:
        self.speculative = True
        tokens = (int(e.get("tokens_in") or 0), int(e.get("tokens_out") or 0), bool(e.get("spec")))
        if e.get("discarded"):
            self._waste(tokens)
            return
        self._held.setdefault(_hashable(e["step"]), {}).setdefault(e["basis"], []).append(tokens)

    def _decision(self, e: dict[str, Any]) -> None:
        held = self._held.pop(_hashable(e["step"]), None)
        if not held:
            return
        voted = held.pop(e.get("prompt") or "", [])
        self.hits += any(spec for _, _, spec in voted)
        for samples in held.values():
            for tokens in samples:
                self._waste(tokens)

    def _waste(self, tokens: tuple[int, int, bool]) -> None:
        self.wasted_samples += 1
        self.wasted_tokens_in += tokens[0]
        self.wasted_tokens_out += tokens[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "wasted_samples": self.wasted_samples,
            "wasted_tokens_in": self.wasted_tokens_in,
            "wasted_tokens_out": self.wasted_tokens_out,
        }


def _hashable(step: Any) -> Hashable:
    return tuple(step) if isinstance(step, list) else step
