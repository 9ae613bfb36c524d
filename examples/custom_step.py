"""Wrap your own function as a voted LLM microstep.

The classic trap for language models: counting letters in a word. One call per
word is one microstep; the step is sampled until one answer leads by k votes,
and replies not in the required format are thrown away unread (red flags).

    python examples/custom_step.py                       # offline, on the simulated model
    python examples/custom_step.py --k 1                 # no voting: watch it make mistakes
    python examples/custom_step.py --model openai/gpt-4.1-mini   # a real model ($OPENAI_API_KEY)
"""

from __future__ import annotations

import argparse
import re

import maker
from maker.voting import AheadByK, Voting

WORDS = ["strawberry", "raspberry", "mirror", "error", "bookkeeper", "committee", "mississippi", "parallel"]


@maker.llm_step(
    parse=maker.parse_last(r"count\s*=\s*([0-9]+)\b", int, what="'count = N'"),  # no match → red flag
    expected=lambda word, letter: word.count(letter),  # ground truth: scores the run, never votes
    system="You count letters exactly. End your reply with one line: count = <number>",
)
def count_letter(word: str, letter: str) -> str:
    return f"How many times does the letter '{letter}' appear in the word '{word}'?"


# The simulated model reads the prompt like a real model would and answers in the
# step's format; it makes mistakes at the profile's error rate.
_PROMPT = re.compile(r"letter '(.)' appear in the word '([a-z]+)'")
oracle = maker.sim_oracle(
    solve=lambda text: (m := _PROMPT.search(text)) and m[2].count(m[1]),
    render=lambda n: f"Let me count carefully.\ncount = {n}",
    wrong=lambda n, rng: max(0, n + rng.choice([-1, 1])) if n else 1,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim/gpt-4.1-mini?error_rate=0.25", help="provider/model")
    parser.add_argument("--k", type=int, default=3, help="ahead-by-k lead a winner needs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dag = maker.DAG()
    for word in WORDS:
        dag.add_step(word, count_letter, args={"word": word, "letter": "r" if "r" in word else word[1]})
    backend = (
        maker.sim_backend(args.model, oracles=[oracle], seed=args.seed)
        if args.model.startswith("sim/")
        else maker.open_backend(args.model)
    )
    result = maker.run(dag, backend=backend, voting=Voting(rule=AheadByK(args.k)), trace=False)

    for word in WORDS:
        data = dag.nodes[word]["args"]
        print(f"{word:<12} '{data['letter']}' × {result.outputs[word]}")
    t = result.totals
    print(
        f"{t.errors} wrong of {t.scored} scored, {t.samples} samples ({t.red_flags} red-flagged), outcome: {result.outcome}"
    )


if __name__ == "__main__":
    main()
