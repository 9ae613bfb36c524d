"""The baseline for runtime overhead: the same work as a maker run, with no runtime.

Prompt building, the simulated model's reply, strict parsing, red flags, vote
counting and ground-truth scoring, in one plain loop: no scheduler, no
microagent, no trace, no event loop. `maker`'s cost is measured against this.
"""

from __future__ import annotations

import sys
import time

from maker.backends import PROFILES, SimModel
from maker.tasks.hanoi import Hanoi
from maker.voting import AheadByK, Reply, Tally, judge


def bare_hanoi(disks: int, k: int = 3, profile: str = "gpt-4.1-mini", seed: int = 0) -> dict[str, float]:
    chain = Hanoi(disks).plan()
    step = chain.step
    sim = SimModel(PROFILES[profile], seed=seed)
    rule = AheadByK(k)
    inputs = {"prev": chain.first}
    samples = errors = 0
    start = time.perf_counter()
    for _ in range(chain.length):
        messages = step.prompt(inputs)
        tally, answers, index, winner = Tally(), {}, 0, None
        while winner is None:
            text, finish, tokens = sim.reply(messages, 0.0 if index == 0 else 0.1, 750, index)
            index += 1
            verdict = judge(Reply(text, finish, tokens), step.parse, step.vote_key, max_output_tokens=750)
            if verdict.key is None:
                continue
            tally.add(verdict.key)
            answers.setdefault(verdict.key, verdict.answer)
            winner = rule.winner(tally)
        samples += index
        truth = step.expected(inputs)
        errors += truth is None or step.vote_key(truth) != winner
        inputs = {"prev": answers[winner]}
    return {"wall_s": time.perf_counter() - start, "samples": samples, "errors": errors}


if __name__ == "__main__":
    print(bare_hanoi(int(sys.argv[1]) if len(sys.argv) > 1 else 12))
