"""argparse types for numbers in a range: one message shape for every command."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _range_text(low: float | None, high: float | None, above: bool) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    if low is not None:
        return f"{'>' if above else '>='} {low:g}"
    return f"<= {high:g}" if high is not None else ""


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high]; `1_048_575` is accepted as Python writes it."""
    bounds = _range_text(low, high, False)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}".replace("  ", " ")) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
        return value

    return parse


def real(low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high] (or (low, high] with `above`)."""
    bounds = _range_text(low, high, above)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text!r}".replace("  ", " ")) from None
        too_low = low is not None and (value <= low if above else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {text!r}")
        return value

    return parse


positive = integer(1)
non_negative = integer(0)
bounded = integer
positive_float = real(0, above=True)
non_negative_float = real(0)
probability = real(0, 1)
