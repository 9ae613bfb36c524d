"""Record a run, replay it exactly with no model, ask what other k would have done, and analyse it.

    python examples/replay_analyse.py                 # records runs/sorting-example.jsonl first
    python examples/replay_analyse.py --trace T.jsonl # any trace of a registered task (`maker run …`)

1. Replay: the same code runs again against the trace's recorded samples (no
   model is called); every decision must come out the same, or it stops with
   `TraceMismatch` naming the step.
2. Re-vote: the recorded samples of each step voted again with other rules
   (ahead-by-1, 2, 3): which steps would have been decided differently, and
   wrongly, with less voting.
3. Analyse: the per-vote error rate with its interval, whether errors look
   independent, and what the run would cost at a million steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import maker
from maker.analysis import analyze
from maker.tasks import build_task
from maker.traces import revote
from maker.voting import AheadByK, Voting


def record(path: Path) -> None:
    """A sorting run on a model that is wrong one time in ten, voted at k = 3."""
    result = maker.run(
        build_task("sorting", length=64),
        model="sim/gpt-4.1-mini?error_rate=0.1",
        voting=Voting(rule=AheadByK(3)),
        trace=path,
    )
    print(
        f"recorded: {result.task}, {result.outcome}, {result.totals.samples} samples, "
        f"{result.totals.errors} errors → {path}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", type=Path, default=None, help="a trace to read (default: record one)")
    args = parser.parse_args()
    path = args.trace
    if path is None:
        path = Path("runs/sorting-example.jsonl")
        path.unlink(missing_ok=True)
        record(path)

    report = maker.replay(path)
    print(
        f"replay: {report.steps} decisions {'reproduced' if report.reproduced else 'differ'} "
        f"from {report.samples} recorded samples, no model called"
    )

    for r in revote(path, [AheadByK(1), AheadByK(2), AheadByK(3)]):
        print(
            f"re-vote ahead-by-{r.rule['k']}: {r.same} same, {r.different} different, "
            f"{r.needs_more} would need more samples; {r.errors} wrong of {r.scored} scored"
        )

    analysis = analyze(path)
    for finding in analysis.findings():
        print(f"analysis: {finding}")


if __name__ == "__main__":
    try:
        main()
    except maker.errors.MakerError as exc:  # a missing or corrupt trace, a custom DAG's trace …
        raise SystemExit(f"error: {exc}") from None
