"""What speculation cost and saved, from a trace in one streaming pass.

A speculative run (`speculate` > 0) records on every sample the fingerprint of
the prompt it answered (`basis`). A step's voted samples are those whose basis
is its decision's `prompt`; every other sample of the step was drawn from a
predicted input that turned out wrong: paid for, never voted. Each ballot on
a wrong prediction ends in a `discard` event (a misprediction); a decision
whose voted samples were drawn speculatively is a hit.

A run with drafts also records `draft` events: each predicts the vote keys of
several steps. A drafted step is a hit when its decision's winner is the
drafted key; a draft's tokens are wasted in the share of its steps that were
not hits (what it predicted wrong, and what came after a wrong step).
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
    drafts: int = 0  # draft replies
    drafted_steps: int = 0  # step answers they predicted (flagged drafts predict none)
    draft_hits: int = 0  # of those, the ones the step's decision confirmed
    draft_tokens_in: int = 0
    draft_tokens_out: int = 0
    _held: dict[Hashable, dict[str, list[tuple[int, int, bool]]]] = field(default_factory=dict)
    # Drafted keys waiting for their step's decision, and each draft's [tokens in, tokens out, steps, hits].
    _drafted: dict[Hashable, list[tuple[str, list[int]]]] = field(default_factory=dict)
    _per_draft: list[list[int]] = field(default_factory=list)

    @property
    def predictions(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.predictions if self.predictions else None

    @property
    def draft_hit_rate(self) -> float | None:
        return self.draft_hits / self.drafted_steps if self.drafted_steps else None

    @property
    def wasted_draft_tokens(self) -> tuple[float, float]:
        """(input, output) tokens of drafts, in the share of their steps that were not confirmed."""
        tin = tout = 0.0
        for t_in, t_out, steps, hits in self._per_draft:
            share = 1.0 - hits / steps if steps else 1.0
            tin, tout = tin + t_in * share, tout + t_out * share
        return tin, tout

    def feed(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "sample":
            if "basis" in event:
                self._sample(event)
        elif kind == "decision":
            self._decision(event)
        elif kind == "discard":
            self.misses += 1
        elif kind == "draft":
            self._draft(event)

    def _draft(self, e: dict[str, Any]) -> None:
        self.speculative = True
        tokens_in, tokens_out = int(e.get("tokens_in") or 0), int(e.get("tokens_out") or 0)
        keys, steps = e.get("keys") or [], e.get("steps") or []
        self.drafts += 1
        self.draft_tokens_in += tokens_in
        self.draft_tokens_out += tokens_out
        self.drafted_steps += len(keys)
        record = [tokens_in, tokens_out, len(keys), 0]
        self._per_draft.append(record)
        for step, key in zip(steps, keys, strict=False):
            self._drafted.setdefault(_hashable(step), []).append((key, record))

    def _sample(self, e: dict[str, Any]) -> None:
        self.speculative = True
        tokens = (int(e.get("tokens_in") or 0), int(e.get("tokens_out") or 0), bool(e.get("spec")))
        if e.get("discarded"):
            self._waste(tokens)
            return
        self._held.setdefault(_hashable(e["step"]), {}).setdefault(e["basis"], []).append(tokens)

    def _decision(self, e: dict[str, Any]) -> None:
        for key, record in self._drafted.pop(_hashable(e["step"]), ()):
            if key == e.get("winner"):
                self.draft_hits += 1
                record[3] += 1
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
            "drafts": self.drafts,
            "drafted_steps": self.drafted_steps,
            "draft_hits": self.draft_hits,
            "draft_hit_rate": self.draft_hit_rate,
            "draft_tokens_in": self.draft_tokens_in,
            "draft_tokens_out": self.draft_tokens_out,
            "wasted_draft_tokens": round(sum(self.wasted_draft_tokens)),
        }


def _hashable(step: Any) -> Hashable:
    return tuple(step) if isinstance(step, list) else step
