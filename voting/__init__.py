"""Voting: red flags, vote keys and decision rules (keyed or judged), with no knowledge of HTTP or tasks.

A sample becomes a vote in two moves: `judge` applies the red flags and reduces
the reply to its canonical vote key; a `DecisionRule` reads the `Tally` of keys
and says whether the step is decided and how many more samples could decide it.
"""

from __future__ import annotations

from maker.voting._config import Voting
from maker.voting._judged import (
    NO_CANDIDATE,
    Candidates,
    Collect,
    Judged,
    choice_parser,
    decide_judged,
    judge_prompt,
    parse_choice,
)
from maker.voting._redflags import ParseError, RedFlag, Reply, Verdict, judge, length_flag
from maker.voting._rules import AheadByK, DecisionRule, Majority, Single, rule_from_dict
from maker.voting._tally import Tally
from maker.voting._theory import expected_samples, expected_votes, k_min, p_step, p_task

__all__ = [
    "NO_CANDIDATE",
    "AheadByK",
    "Candidates",
    "Collect",
    "DecisionRule",
    "Judged",
    "Majority",
    "ParseError",
    "RedFlag",
    "Reply",
    "Single",
    "Tally",
    "Verdict",
    "Voting",
    "choice_parser",
    "decide_judged",
    "expected_samples",
    "expected_votes",
    "judge",
    "judge_prompt",
    "k_min",
    "length_flag",
    "p_step",
    "p_task",
    "parse_choice",
    "rule_from_dict",
]
