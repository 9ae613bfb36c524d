"""How big a trace will be, before the run: `maker estimate` prints it.

A trace line is the reply's text plus fields. The fields of a sample line
(names, counts, latency, the vote key) take about 240 bytes and of a decision
line about 430 (measured on Hanoi traces, whose vote keys spell a whole
state); a reply's text takes about 4 bytes per output token (English-like
text and code). gzip (level 5, the writer's) shrinks the repetitive fields
about tenfold and model prose about threefold. These are rough guides, good to
a factor of about two: enough to choose `.jsonl.gz` and the disk it goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SAMPLE_FIELDS = 240  # plain bytes of a sample line besides its text
DECISION_BYTES = 430  # plain bytes of a decision line
BYTES_PER_TOKEN = 4.0  # UTF-8 bytes of reply text per output token
FIELDS_RATIO = 10.0  # gzip's ratio on the fields
TEXT_RATIO = 3.0  # and on model text
ASSUMED_TOKENS_OUT = 250.0  # a reply's output tokens when the estimate is not told


@dataclass(frozen=True, slots=True)
class TraceSize:
    """Expected bytes of a run's trace, plain and gzip-compressed."""

    plain_bytes: float
    gzip_bytes: float
    tokens_out: float  # per reply, as given or assumed
    assumed: bool  # tokens_out was not given: ASSUMED_TOKENS_OUT

    def to_json(self) -> dict[str, Any]:
        return {
            "plain_bytes": self.plain_bytes,
            "gzip_bytes": self.gzip_bytes,
            "tokens_out_per_reply": self.tokens_out,
            "tokens_out_assumed": self.assumed,
        }


def trace_size(samples: float, steps: float, tokens_out: float | None = None) -> TraceSize:
    """The trace of a run drawing `samples` replies over `steps` steps, `tokens_out` tokens each."""
    assumed = tokens_out is None
    tokens = ASSUMED_TOKENS_OUT if tokens_out is None else tokens_out
    text = samples * tokens * BYTES_PER_TOKEN
    fields = samples * SAMPLE_FIELDS + steps * DECISION_BYTES
    return TraceSize(fields + text, fields / FIELDS_RATIO + text / TEXT_RATIO, tokens, assumed)


def size_text(size: float) -> str:
    """Bytes in the unit that reads well: 900 B, 3.2 MB, 1.8 GB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} B"
