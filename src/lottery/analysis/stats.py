"""Statistics over seeds: means with Student-t confidence intervals, paired and Welch tests.

Seeds are the unit of replication. Within one seed the ticket, its controls and the dense
network share data order and (for the ticket) the initialisation, so comparisons between
branches are *paired by seed* when both sides have the same seeds; otherwise Welch's test.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

CONFIDENCE = 0.95
CI_METHOD = "Student t, 95%"


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval (NaN bounds when n < 2)."""

    mean: float
    std: float
    n: int
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def estimate(values, confidence: float = CONFIDENCE) -> Estimate:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(mean, std, n, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """a − b: the difference of means, its CI, a two-sided p-value, and which test gave them."""

    diff: float
    low: float
    high: float
    p_value: float
    test: str  # "paired t" | "Welch t" | "none (n < 2)"
    n_a: int
    n_b: int


def compare(a: pd.Series, b: pd.Series, confidence: float = CONFIDENCE) -> Comparison:
    """Compare two samples indexed by seed: paired t when the seeds match, else Welch's t."""
    a, b = a.dropna(), b.dropna()
    if set(a.index) == set(b.index) and len(a) >= 2:
        d = (a - b.loc[a.index]).to_numpy(float)
        est = estimate(d, confidence)
        if est.std == 0:
            p = 0.0 if est.mean != 0 else 1.0
        else:
            p = float(sps.ttest_rel(a.to_numpy(float), b.loc[a.index].to_numpy(float)).pvalue)
        return Comparison(est.mean, est.low, est.high, p, "paired t", len(a), len(b))
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Comparison(diff, math.nan, math.nan, math.nan, "none (n < 2)", len(a), len(b))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else math.inf
    half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
    p = float(sps.ttest_ind(a.to_numpy(float), b.to_numpy(float), equal_var=False).pvalue) if se > 0 else float(diff == 0)
    return Comparison(diff, diff - half, diff + half, p, "Welch t", len(a), len(b))


def summarise(df: pd.DataFrame, metrics=("test_acc_early_stop", "test_acc_end", "early_stop_step")) -> pd.DataFrame:
    """Per (experiment, branch, level): fraction remaining, n, and per metric mean, std, CI."""
    rows = []
    keys = [k for k in ("experiment", "branch", "level") if k in df.columns]
    for key, g in df.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["fraction_remaining"] = float(g.fraction_remaining.mean())
        row["n"] = int(g.seed.nunique())
        for m in metrics:
            e = estimate(g[m])
            row.update({f"{m}_mean": e.mean, f"{m}_std": e.std, f"{m}_ci_low": e.low, f"{m}_ci_high": e.high})
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["ci_method"] = CI_METHOD
    return out
