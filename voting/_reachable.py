"""Whether a decision rule can decide at all within a per-step sample cap.

Asked before the first request: a rule that needs more samples than the cap
allows, even when every vote agrees, would sample each step up to the cap and
stop the run undecided, having paid for all of it.
"""

from __future__ import annotations

from maker.errors import ConfigError
from maker.voting._rules import DecisionRule
from maker.voting._tally import Tally


def check_reachable(rule: DecisionRule, cap: int) -> None:
    """Refuse, before the first request, a rule that cannot decide within the per-step sample cap.

    Otherwise every step would be sampled up to the cap and stop the run undecided.
    """
    if fewest_samples(rule, cap) is not None:
        return
    bound = 1_000_000
    fewest = fewest_samples(rule, bound)
    need = f"at least {fewest:,}" if fewest is not None else f"more than {bound:,}"
    raise ConfigError(
        f"{rule_label(rule)} needs {need} samples per step even if every vote agrees, over the cap of "
        f"{cap:,} (--max-samples-per-step); raise the cap or ask for fewer votes"
    )


def rule_label(rule: DecisionRule) -> str:
    d = rule.describe()
    if "k" in d:
        return f"ahead-by-{d['k']}"
    if "n" in d:
        return f"a majority of {d['n']}"
    return str(d.get("rule", "the rule"))


def fewest_samples(rule: DecisionRule, cap: int) -> int | None:
    """Samples the rule needs when every vote agrees (its best case), or None if that is over `cap`."""
    tally = Tally()
    for n in range(1, cap + 1):
        tally.add("same")
        if rule.winner(tally) is not None:
            return n
    return None
