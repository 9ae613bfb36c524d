"""Step-error scaling analysis: estimate before a run, calibrate a model, analyse a trace.

- `estimate`: k_min, reliability, samples, tokens and cost for an error rate and a size.
- `calibrate` / `acalibrate`: single samples at random steps with ground truth →
  the model's error rate with an interval, and whether voting can help it.
- `analyze`: any trace → error rates, convergence against theory, collisions,
  heterogeneous steps, observed cost and projections to 10^6 and 10^9 steps.
- `write_plots` (needs the `plots` extra): the same as PNG figures.
"""

from __future__ import annotations

from maker.analysis._analyze import (
    ALPHA,
    Analysis,
    Bin,
    Collisions,
    Convergence,
    Heterogeneity,
    Outlier,
    Projection,
    analyze,
)
from maker.analysis._calibrate import Calibration, acalibrate, calibrate
from maker.analysis._estimate import Estimate, KRow, estimate, majority_equivalent
from maker.analysis._plots import write_plots  # matplotlib itself is imported only when plotting
from maker.analysis._stats import Proportion, wilson
from maker.analysis._walk import undecided

__all__ = [
    "ALPHA",
    "Analysis",
    "Bin",
    "Calibration",
    "Collisions",
    "Convergence",
    "Estimate",
    "Heterogeneity",
    "KRow",
    "Outlier",
    "Projection",
    "Proportion",
    "acalibrate",
    "analyze",
    "calibrate",
    "estimate",
    "majority_equivalent",
    "undecided",
    "wilson",
    "write_plots",
]
