"""Counts in words, for what maker prints: `1 round`, `3 rounds`, `1,024 samples`."""

from __future__ import annotations


def counted(n: float, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular only for exactly one (`0 votes`, `1 vote`, `2.5 votes`)."""
    number = f"{n:,}" if isinstance(n, int) else f"{n:,.4g}"
    return f"{number} {noun if n == 1 else (plural or noun + 's')}"
