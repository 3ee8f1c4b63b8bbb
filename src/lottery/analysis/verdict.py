"""The verdict: did IMP find a matching ticket, how sparse, and how sure are we?

Rule (stated in every verdict): the ticket *matches* the dense network at a level when the
95% confidence interval of (ticket − dense) accuracy lies entirely above −δ (δ = 0.5 points by
default). The verdict reports the sparsest matching level, and there the ticket's margin over
each control with its CI and test. Seeds pair the comparisons (paired t) when both sides have
the same seeds. With fewer than `min_seeds` seeds it says so instead of guessing.
"""

import math
from dataclasses import dataclass, field

import pandas as pd

from lottery.analysis.stats import Comparison, compare
from lottery.imp.branches import BRANCHES

METRIC_NAMES = {"test_acc_early_stop": "test accuracy at early stop", "test_acc_end": "test accuracy at the end"}


@dataclass
class Verdict:
    metric: str
    delta: float  # accuracy fraction (0.005 = 0.5 points)
    status: str  # "matching" | "no matching level" | "not enough seeds" | "no pruned levels"
    n_seeds: int
    min_seeds: int
    level: int | None = None
    fraction_remaining: float | None = None
    vs_dense: Comparison | None = None
    vs_controls: dict[str, Comparison] = field(default_factory=dict)
    speed: Comparison | None = None  # early-stop step, ticket − dense

    @property
    def rule(self) -> str:
        return (f"Rule: the ticket matches the dense network at a level when the 95% CI of (ticket − dense) "
                f"{METRIC_NAMES.get(self.metric, self.metric)} lies above −{100 * self.delta:g} points; "
                f"the sparsest matching level is reported. Seeds pair the comparisons.")

    def lines(self) -> list[str]:
        what = METRIC_NAMES.get(self.metric, self.metric)
        if self.status == "not enough seeds":
            return [f"{what}: not enough seeds to decide (n = {self.n_seeds}; the rule needs at least "
                    f"{self.min_seeds}). Run more seeds, e.g. --replicates 3."]
        if self.status == "no pruned levels":
            return [f"{what}: no pruned levels finished yet."]
        c = self.vs_dense
        where = f"{100 * self.fraction_remaining:.1f}% of weights (level {self.level})"
        if self.status == "no matching level":
            head = (f"{what}: no matching ticket: at every level the CI of (ticket − dense) reaches below "
                    f"−{100 * self.delta:g} points. Densest pruned level, {where}: vs dense {_pts(c)}.")
        else:
            head = f"{what}: matching ticket at {where}: vs dense {_pts(c)}."
        out = [head]
        for branch, cmp_ in self.vs_controls.items():
            name = BRANCHES[branch].short if branch in BRANCHES else branch
            sign = "better" if cmp_.low > 0 else ("worse" if cmp_.high < 0 else "no clear difference")
            out.append(f"  ticket vs {name}: {_pts(cmp_)} ({sign}).")
        if self.speed is not None and not math.isnan(self.speed.diff):
            s = self.speed
            word = "learns faster" if s.high < 0 else ("learns slower" if s.low > 0 else "no clear difference in speed")
            out.append(f"  early-stopping iteration vs dense: {s.diff:+.0f} steps [95% CI {s.low:+.0f}, {s.high:+.0f}] "
                       f"({word}).")
        return out


def _pts(c: Comparison) -> str:
    if math.isnan(c.low):
        return f"{100 * c.diff:+.2f} points (no CI: n < 2)"
    return (f"{100 * c.diff:+.2f} points [95% CI {100 * c.low:+.2f}, {100 * c.high:+.2f}], "
            f"{c.test}, n = {min(c.n_a, c.n_b)}, p = {c.p_value:.2g}")


def verdict(df: pd.DataFrame, metric: str = "test_acc_early_stop", delta: float = 0.005, min_seeds: int = 2) -> Verdict:
    """The verdict for one experiment's tidy table (see the module docstring)."""
    by = {b: g for b, g in df.groupby("branch")}
    imp = by.get("imp", df.iloc[0:0])
    dense = imp[imp.level == 0].set_index("seed")
    n = int(dense.index.nunique())
    v = Verdict(metric, delta, "not enough seeds", n, min_seeds)
    if n < min_seeds:
        return v
    levels = sorted(set(imp.level) - {0})
    if not levels:
        v.status = "no pruned levels"
        return v
    results = {}
    for level in levels:
        ticket = imp[imp.level == level].set_index("seed")
        results[level] = (ticket, compare(ticket[metric], dense[metric]))
    matching = [lv for lv, (_, c) in results.items() if not math.isnan(c.low) and c.low > -delta]
    level = max(matching, key=lambda lv: (-results[lv][0].fraction_remaining.mean(), lv)) if matching else levels[0]
    ticket, v.vs_dense = results[level]
    v.status = "matching" if matching else "no matching level"
    v.level, v.fraction_remaining = level, float(ticket.fraction_remaining.mean())
    for branch, g in by.items():
        if branch != "imp":
            control = g[g.level == level].set_index("seed")
            if len(control):
                v.vs_controls[branch] = compare(ticket[metric], control[metric])
    v.speed = compare(ticket["early_stop_step"].astype(float), dense["early_stop_step"].astype(float))
    return v


def verdicts(df: pd.DataFrame, delta: float = 0.005, min_seeds: int = 2) -> list[Verdict]:
    """The verdict at early stop (the paper's measure) and at the end of training."""
    return [verdict(df, m, delta, min_seeds) for m in ("test_acc_early_stop", "test_acc_end")]
