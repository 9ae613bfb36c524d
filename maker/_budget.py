"""Budgets: limits on cost, samples and tokens, enforced before each request.

The check runs right before a request would be sent (the microagent's guard
hook). It adds what has been spent, what requests already in flight could
still spend, and the worst case of the new request; if that would cross a
limit, the request is not sent and the run stops with `BudgetExceeded`
naming the limit. So a budget is never exceeded, not even by one request.

The worst case of a request: its output cap (`max_tokens`) in full, plus its
input. Input tokens are not known before sending (no tokenizer here), so they
are bounded from the prompt's size in UTF-8 bytes: at first one token per
byte (true of byte-level BPE tokenizers, which never produce a token of less
than a byte); once replies report real counts, the worst bytes-per-token ratio
seen so far, with a 25% margin. Cost needs a price: a model missing from the
pricing table cannot have its cost limited, which `Budget.notes` says at start.

What a reply reports it used is booked only if it is a sane count: a
negative or non-integer count (a broken or hostile server; a custom backend's
bug) is booked as the request's worst case instead, so misreported usage can
only make a budget stop sooner, never later. A request cancelled in flight
(the run stopped while it was out) is booked at its worst case too: the
server may have done, and billed, the work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maker._pricing import PRICES, Price, price_of
from maker.backends._protocol import Completion, Request
from maker.errors import BudgetExceeded, ConfigError
from maker.tasks._protocol import Messages

log = logging.getLogger("maker.budget")

_MESSAGE_OVERHEAD = 8  # chat-template tokens around each message (role markers), generously
_MARGIN = 1.25


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one run; None means no limit.

    max_cost: USD, from the pricing table (input and output tokens).
    max_samples: requests for samples, counting red-flagged and late ones.
    max_tokens: input plus output tokens, summed over every sample.
    prices: the pricing table to use (default: the built-in `PRICES`).
    """

    max_cost: float | None = None
    max_samples: int | None = None
    max_tokens: int | None = None
    prices: Mapping[str, Price] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.max_cost is not None and not (self.max_cost > 0 and math.isfinite(self.max_cost)):
            raise ConfigError(f"max_cost must be a positive number of USD, got {self.max_cost}")
        for name in ("max_samples", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.max_cost, self.max_samples, self.max_tokens))

    def price(self, model: str) -> Price | None:
        return price_of(model, self.prices if self.prices is not None else PRICES)

    def notes(self, model: str) -> list[str]:
        """What the user should know at start: limits that cannot be (fully) enforced for `model`."""
        if self.max_cost is None:
            return []
        price = self.price(model)
        if price is None:
            return [
                f"no price is known for {model}, so the cost limit of ${self.max_cost:g} cannot be enforced "
                "(add the model to a price table: --prices FILE or $MAKER_PRICES)"
            ]
        if price.output_only:
            return [f"only the output price of {model} is known, so the cost limit counts output tokens only"]
        return []

    def guard(self, model: str, *, announce: bool = True) -> Spending:
        """A fresh spending tracker for one run of `model` (what `arun(budget=...)` uses).

        announce: log `notes` as warnings (the CLI prints them itself).
        """
        if announce:
            for note in self.notes(model):
                log.warning(note)
        return Spending(self, self.price(model))

    def describe(self) -> dict[str, Any]:
        return {"max_cost": self.max_cost, "max_samples": self.max_samples, "max_tokens": self.max_tokens}


@dataclass(slots=True)
class _Usage:
    samples: int = 0
    tokens: int = 0
    cost: float = 0.0


class Spending:
    """A run's spending against its `Budget`: the microagent's guard.

    Calling it with a request either raises `BudgetExceeded` or reserves the
    request's worst case and returns the callback that settles the reservation
    with what the request really used.
    """

    def __init__(self, budget: Budget, price: Price | None) -> None:
        self.budget = budget
        self.price = price
        self.spent = _Usage()
        self.reserved = _Usage()
        self._tokens_per_byte = 1.0  # worst case until replies report real counts
        self._learned = False

    def __call__(self, request: Request) -> Any:
        worst_in, worst_out = self.estimate_input(request.messages), request.max_tokens
        worst = self._usage(worst_in, worst_out)
        self._check(worst, request)
        self._add(self.reserved, worst, +1)
        settled = False

        def settle(completion: Completion | None, *, lost: bool = False) -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            self._add(self.reserved, worst, -1)
            if completion is not None:
                tokens_in = completion.input_tokens if _sane(completion.input_tokens) else worst_in
                tokens_out = completion.output_tokens if _sane(completion.output_tokens) else worst_out
                self._learn(request.messages, tokens_in)
                self._add(self.spent, self._usage(tokens_in, tokens_out), +1)
            elif lost:
                self._add(self.spent, worst, +1)

        return settle

    # -- estimates ----------------------------------------------------------------------

    def estimate_input(self, messages: Messages) -> int:
        size = sum(len(m["content"].encode()) for m in messages)
        return math.ceil(size * min(1.0, self._tokens_per_byte)) + _MESSAGE_OVERHEAD * len(messages)

    def _usage(self, tokens_in: int, tokens_out: int) -> _Usage:
        cost = self.price.cost(tokens_in, tokens_out) if self.price is not None else 0.0
        return _Usage(1, tokens_in + tokens_out, cost)

    def _learn(self, messages: Messages, input_tokens: int) -> None:
        if input_tokens <= 0:
            return  # a batched sample whose input was booked on another
        size = sum(len(m["content"].encode()) for m in messages) or 1
        seen = max(0.0, input_tokens - _MESSAGE_OVERHEAD * len(messages)) / size
        ratio = seen * _MARGIN
        self._tokens_per_byte = max(self._tokens_per_byte, ratio) if self._learned else ratio
        self._learned = True

    # -- the check ----------------------------------------------------------------------

    def _check(self, worst: _Usage, request: Request) -> None:
        b = self.budget
        committed = _Usage(
            self.spent.samples + self.reserved.samples,
            self.spent.tokens + self.reserved.tokens,
            self.spent.cost + self.reserved.cost,
        )
        where = {"step": request.step}
        if b.max_samples is not None and committed.samples + 1 > b.max_samples:
            raise BudgetExceeded(
                "max_samples",
                f"{self.spent.samples} samples done, {self.reserved.samples} in flight, limit {b.max_samples}",
                **where,
            )
        if b.max_tokens is not None and committed.tokens + worst.tokens > b.max_tokens:
            raise BudgetExceeded(
                "max_tokens",
                f"{self.spent.tokens:,} tokens used, the next request could use "
                f"{worst.tokens:,} more, limit {b.max_tokens:,}",
                **where,
            )
        if b.max_cost is not None and self.price is not None and committed.cost + worst.cost > b.max_cost:
            raise BudgetExceeded(
                "max_cost",
                f"${self.spent.cost:.4f} spent, the next request could cost ${worst.cost:.4f}, limit ${b.max_cost:g}",
                **where,
            )

    @staticmethod
    def _add(usage: _Usage, delta: _Usage, sign: int) -> None:
        usage.samples += sign * delta.samples
        usage.tokens += sign * delta.tokens
        usage.cost += sign * delta.cost


def _sane(count: Any) -> bool:
    """A token count that can be booked: a non-negative integer of a believable size."""
    return type(count) is int and 0 <= count <= 2**40


def with_budget(guard: Any, spending: Spending) -> Any:
    """One guard from the user's own (if any) and a budget's; the budget decides last."""
    if guard is None:
        return spending

    def both(request: Request) -> Any:
        mine = guard(request)
        try:
            settle = spending(request)
        except BaseException:
            if mine is not None:
                mine(None)  # the request is not sent after all
            raise

        def settled(completion: Completion | None, *, lost: bool = False) -> None:
            if mine is not None:
                mine(completion)
            settle(completion, lost=lost)

        return settled

    return both
