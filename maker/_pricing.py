"""Model prices, for budgets and cost projections. USD per million tokens.

Output prices are the ones method.md §6 quotes from the paper. Input prices
are the providers' list prices where we know them; where we do not, the input
price is None and costs are reported as output-only (and say so). A model that
is not in the table has no price at all: cost limits cannot be enforced for
it, and projections say so instead of inventing a number.

Cached input (prompt tokens a provider's prefix cache served, where it says
so) has its own, lower price where we know it; elsewhere it is charged as
input.

`PRICES` is read-only, so that no import can change what every other user of
the process is charged. Override or extend it with a JSON file
({"model": [input, output]} or [input, output, cached_input]), passed as
`prices=` or through the MAKER_PRICES environment variable: `load_prices`
returns a fresh table of your own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from maker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens; `input` None when unknown; `cached_input` None: as input."""

    input: float | None
    output: float
    cached_input: float | None = None

    def cost(self, tokens_in: int, tokens_out: int, cached: int = 0) -> float:
        """What `tokens_in` (of which `cached` came from the provider's cache) and `tokens_out` cost."""
        base = self.input or 0.0
        cached = min(max(0, cached), tokens_in)
        discount = (base - self.cached_input) * cached if self.cached_input is not None and self.input else 0.0
        return (base * tokens_in - discount + self.output * tokens_out) / 1e6

    @property
    def output_only(self) -> bool:
        return self.input is None


PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "gpt-4.1": Price(2.00, 8.00, 0.50),
        "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
        "gpt-4.1-mini-t1": Price(0.40, 1.60, 0.10),
        "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
        "o3-mini": Price(1.10, 4.40, 0.55),
        "haiku-4.5": Price(1.00, 5.00, 0.10),
        "llama-3.2-3b": Price(None, 0.06),
        "gpt-oss-20b": Price(None, 0.20),
        "qwen3": Price(None, 0.60),
        "deepseek-v3.1": Price(None, 1.70),
        "kimi-k2": Price(None, 3.00),
    }
)


def load_prices(path: str | os.PathLike[str] | None = None) -> dict[str, Price]:
    """A copy of the built-in table (yours to change), overridden by `path` (or $MAKER_PRICES) if given."""
    table = dict(PRICES)
    source = path or os.environ.get("MAKER_PRICES")
    if not source:
        return table
    try:
        raw = json.loads(Path(source).read_text())
        for model, prices in raw.items():
            pin, pout, *cached = prices
            if len(cached) > 1:
                raise ValueError(f"{model}: at most three prices")
            cin = None if not cached or cached[0] is None else float(cached[0])
            table[model.lower()] = Price(None if pin is None else float(pin), float(pout), cin)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f'price table {source}: expected {{"model": [input, output(, cached_input)]}} in USD per million '
            f"tokens ({exc})"
        ) from None
    return table


def price_of(model: str, table: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `provider/model[?opts]` (provider ignored), or None if unknown."""
    table = PRICES if table is None else table
    name = model.split("?", 1)[0]
    name = name.split("/", 1)[1] if "/" in name else name
    return table.get(name.lower())
