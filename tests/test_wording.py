"""What maker prints reads as English: plurals agree, and an empty case says it is empty."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from maker import RunResult, Totals
from maker._words import counted
from maker.cli._summary import print_table


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [(0, "vote", "0 votes"), (1, "vote", "1 vote"), (2, "round", "2 rounds"), (1_024, "sample", "1,024 samples")],
)
def test_counts_agree_with_their_noun(n: int, noun: str, text: str) -> None:
    assert counted(n, noun) == text


def _table(totals: Totals) -> str:
    out = io.StringIO()
    result = RunResult("id", "hanoi", "sim/x", "solved", True, 1, totals, 0.1, None)
    print_table(result, Console(file=out, width=200))
    return out.getvalue()


def test_the_summary_names_no_hardest_step_when_none_was_voted() -> None:
    assert "— (no voted step)" in _table(Totals())
    assert "None" not in _table(Totals())


def test_the_summary_says_1_round_not_1_rounds() -> None:
    text = _table(Totals(steps=1, llm_steps=1, max_rounds=1, hardest_step=0, hardest_samples=3))
    assert "0 (1 round, 3 samples)" in text
