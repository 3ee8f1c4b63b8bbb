"""The results, summarised per branch and level as text: means with their 95% intervals over
seeds and what finding each mask cost (for `lottery show` and reports)."""

import math

import pandas as pd

from lottery.analysis.stats import summarise


def _ci(row, m, scale=100.0, digits=2):
    """mean [95% CI] as text: "(no spread)" where the seeds agree exactly, "*" where the interval
    was cut at what is possible, the mean alone from one seed."""
    mean, lo, hi = row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"]
    if isinstance(lo, float) and math.isnan(lo):
        return f"{scale * mean:.{digits}f}" + (" (no spread)" if row["n"] >= 2 and row[f"{m}_std"] == 0 else "")
    cut = "*" if row.get(f"{m}_clipped") else ""
    return f"{scale * mean:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]{cut}"


def _num(x: float) -> str:
    """Three significant digits, without exponents for the large values a table shows."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def results_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per branch and level: % remaining, n, accuracies and early-stop step with 95% CIs, find cost."""
    s = summarise(df)
    cost = df.groupby(["branch", "level"], sort=False)[["find_flops", "find_seconds"]].mean()
    rows = []
    for _, r in s.iterrows():
        c = cost.loc[(r.branch, r.level)]
        rows.append({"branch": r.branch, "level": int(r.level), "% remaining": f"{100 * r.fraction_remaining:.1f}",
                     "n": int(r.n), "test acc early stop (%)": _ci(r, "test_acc_early_stop"),
                     "test acc end (%)": _ci(r, "test_acc_end"), "early-stop step": _ci(r, "early_stop_step", 1, 0),
                     "find GFLOPs": _num(c.find_flops / 1e9), "find s": _num(c.find_seconds)})
    return pd.DataFrame(rows)
