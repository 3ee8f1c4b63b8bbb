"""Statistics over seeds: means and differences with Student-t intervals that never claim more
than the data shows.

Seeds are the unit of replication. Within one seed the ticket, its controls and the dense
network share data order and (for the ticket) the initialisation, so comparisons between
branches are *paired by seed* when both sides have the same seeds; otherwise Welch's test.

What an interval will not do:
- exist from one seed, or when every seed gave the same value (no spread: a t interval would
  collapse to a point and its p-value to 0; both are reported as undefined instead);
- run past what is possible: an accuracy interval is cut at 0 and 100 %, an early-stopping
  interval at the training's first and last step, and the cut is flagged (`clipped`).
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import (
    special,  # the t distribution's CDF and quantile; scipy.stats costs 0.3 s more to import
)

CONFIDENCE = 0.95
CI_METHOD = "Student t, 95%, over seeds, cut at what is possible"
UNBOUNDED = (-math.inf, math.inf)
# a spread this small relative to the values is float rounding: seeds that agree exactly (an
# accuracy's resolution is one test example, 1e-4 of MNIST's test set)
NO_SPREAD = 1e-9


def t_quantile(p: float, dof: float) -> float:
    return float(special.stdtrit(dof, p))


def t_two_sided_p(t: float, dof: float) -> float:
    return float(2 * special.stdtr(dof, -abs(t)))


def _clip(low: float, high: float, bounds) -> tuple[float, float, bool]:
    lo, hi = max(low, bounds[0]), min(high, bounds[1])
    return lo, hi, (lo, hi) != (low, high)


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval (NaN bounds when it is undefined: n < 2 or no spread)."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    clipped: bool = False  # the interval ran past what is possible and was cut there

    @property
    def no_spread(self) -> bool:
        return self.n >= 2 and self.std == 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def estimate(values, confidence: float = CONFIDENCE, bounds=UNBOUNDED) -> Estimate:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    if std <= NO_SPREAD * max(1.0, abs(mean)):  # the same value on every seed, to float rounding
        return Estimate(mean, 0.0, n, math.nan, math.nan)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Estimate(mean, std, n, *_clip(mean - half, mean + half, bounds))


@dataclass(frozen=True)
class Comparison:
    """a − b: the difference of means, its CI, a two-sided p-value of no difference, and which
    test gave them. `std` is the spread the interval rests on (of the paired differences, or
    Welch's standard error × √n); NaN bounds and p when undefined (n < 2, or no spread)."""

    diff: float
    low: float
    high: float
    p_value: float
    test: str  # "paired t" | "Welch t" | "none (n < 2)"
    n_a: int
    n_b: int
    std: float = math.nan
    clipped: bool = False

    @property
    def defined(self) -> bool:
        return not math.isnan(self.low)

    @property
    def no_spread(self) -> bool:
        return self.std == 0


def compare(a: pd.Series, b: pd.Series, confidence: float = CONFIDENCE, bounds=UNBOUNDED) -> Comparison:
    """Compare two samples indexed by seed: paired t when the seeds match, else Welch's t."""
    a, b = a.dropna(), b.dropna()
    if set(a.index) == set(b.index) and len(a) >= 2:
        d = (a - b.loc[a.index]).to_numpy(float)
        est = estimate(d, confidence, bounds)
        if est.no_spread:
            return Comparison(est.mean, math.nan, math.nan, math.nan, "paired t", len(a), len(b), 0.0)
        p = t_two_sided_p(est.mean / (est.std / math.sqrt(len(d))), len(d) - 1)
        return Comparison(est.mean, est.low, est.high, p, "paired t", len(a), len(b), est.std, est.clipped)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Comparison(diff, math.nan, math.nan, math.nan, "none (n < 2)", len(a), len(b))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se <= NO_SPREAD * max(1.0, abs(diff)):
        return Comparison(diff, math.nan, math.nan, math.nan, "Welch t", len(a), len(b), 0.0)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(0.5 + confidence / 2, dof) * se
    low, high, clipped = _clip(diff - half, diff + half, bounds)
    n = min(len(a), len(b))
    return Comparison(diff, low, high, t_two_sided_p(diff / se, dof), "Welch t", len(a), len(b), se * math.sqrt(n),
                      clipped)


def seeds_needed(std: float, half_width: float, confidence: float = CONFIDENCE, most: int = 10_000) -> int | None:
    """How many seeds a paired interval of ± `half_width` needs at spread `std` (None: unknown spread)."""
    if not std > 0 or not half_width > 0:
        return None
    n = 2
    while n < most and t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n) > half_width:
        n += 1
    return n


def bounds_of(metric: str, rows: pd.DataFrame) -> tuple[float, float]:
    """What a metric can be for these rows: an accuracy in [0, 1]; an early-stopping step between
    the training's first step (its rewind step) and its last."""
    if metric.startswith(("test_acc", "val_acc")):
        return 0.0, 1.0
    if metric == "early_stop_step" and {"rewind_step", "steps"} <= set(rows.columns):
        return float(rows.rewind_step.min()), float((rows.rewind_step + rows.steps).max())
    return UNBOUNDED


def difference_bounds(metric: str, rows: pd.DataFrame) -> tuple[float, float]:
    """What a difference of the metric between two units of these rows can be."""
    lo, hi = bounds_of(metric, rows)
    return lo - hi, hi - lo


def summarise(df: pd.DataFrame, metrics=("test_acc_early_stop", "test_acc_end", "early_stop_step")) -> pd.DataFrame:
    """Per (experiment, branch, level): fraction remaining, n, and per metric mean, std, CI (and
    whether the CI was cut at a bound)."""
    rows = []
    keys = [k for k in ("experiment", "branch", "level") if k in df.columns]
    for key, g in df.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["fraction_remaining"] = float(g.fraction_remaining.mean())
        row["n"] = int(g.seed.nunique())
        for m in metrics:
            e = estimate(g[m], bounds=bounds_of(m, g))
            row.update({f"{m}_mean": e.mean, f"{m}_std": e.std, f"{m}_ci_low": e.low, f"{m}_ci_high": e.high,
                        f"{m}_clipped": e.clipped})
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["ci_method"] = CI_METHOD
    return out
