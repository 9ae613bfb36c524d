"""Voting: red flags, vote keys and decision rules, with no knowledge of HTTP or tasks.

A sample becomes a vote in two moves: `judge` applies the red flags and reduces
the reply to its canonical vote key; a `DecisionRule` reads the `Tally` of keys
and says whether the step is decided and how many more samples could decide it.
"""

from __future__ import annotations

from maker.voting._config import Voting
from maker.voting._redflags import ParseError, RedFlag, Reply, Verdict, judge, length_flag
from maker.voting._rules import AheadByK, DecisionRule, Majority, Single, rule_from_dict
from maker.voting._tally import Tally
from maker.voting._theory import expected_samples, expected_votes, k_min, p_step, p_task

__all__ = [
    "AheadByK",
    "DecisionRule",
    "Majority",
    "ParseError",
    "RedFlag",
    "Reply",
    "Single",
    "Tally",
    "Verdict",
    "Voting",
    "expected_samples",
    "expected_votes",
    "judge",
    "k_min",
    "length_flag",
    "p_step",
    "p_task",
    "rule_from_dict",
]
