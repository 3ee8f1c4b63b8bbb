"""The verdict: did IMP find a matching ticket, how sparse, and how sure are we?

The rule (stated in every verdict) is a fixed-sequence test over the pruning levels. Levels are
tested in order, densest first; at each, the ticket *matches* the dense network when the 95%
confidence interval of (ticket − dense) accuracy lies entirely above −δ (δ = 0.5 points by
default), i.e. a one-sided non-inferiority t test at 2.5%. The first level that does not match
ends the sequence, and the sparsest level before it is reported. Because the order is fixed in
advance, the chance of calling *any* level matching when the ticket is worse there by δ or more
stays at 2.5% however many levels were run (no correction needed; a level picked as "the
sparsest that passed", anywhere in the sequence, would not have that guarantee).

A level that does not match is either *worse* (the interval lies below −δ), *inconclusive*
(it straddles −δ, or no interval exists: the seeds agree exactly; the verdict says about how many
seeds would let the interval clear −δ at the mean and spread observed), or *diverged* (a seed's
ticket ended with a non-finite loss: it is no ticket at all). When a dense network diverged there
is nothing to compare with, and the verdict says so instead. Seeds pair the comparisons
(paired t) when both sides have the same seeds; the verdict names the seeds it used. With fewer
than `min_seeds` seeds it says so instead of guessing. At the reported level the ticket is also
compared with each other branch (a two-sided t test each) and its early-stopping iteration with
the dense network's.
"""

import math
from dataclasses import dataclass, field

import pandas as pd

from lottery.analysis.stats import (
    Comparison,
    Estimate,
    compare,
    difference_bounds,
    estimate,
    seeds_needed,
)
from lottery.imp.branches import BRANCHES

METRIC_NAMES = {"test_acc_early_stop": "test accuracy at early stop", "test_acc_end": "test accuracy at the end"}
ALPHA = 0.025  # one-sided: the lower end of a 95% interval
STABLE = 0.02  # an error barrier below 2 points counts as "about zero": the copies are linearly connected


@dataclass(frozen=True)
class LevelTest:
    """One level's (ticket − dense) comparison and what it says: matches | worse | inconclusive."""

    level: int
    fraction_remaining: float
    vs_dense: Comparison
    outcome: str
    diverged: tuple[int, ...] = ()  # seeds whose ticket diverged here


@dataclass
class Verdict:
    metric: str
    delta: float  # accuracy fraction (0.005 = 0.5 points)
    status: str  # matching | no matching level | inconclusive | diverged | dense diverged | not enough seeds | no pruned levels
    n_seeds: int
    min_seeds: int
    seeds: tuple[int, ...] = ()
    level: int | None = None  # the level reported: the sparsest matching one, else the first tested
    fraction_remaining: float | None = None
    vs_dense: Comparison | None = None
    vs_controls: dict[str, Comparison] = field(default_factory=dict)  # at `compared_at`
    speed: Comparison | None = None  # early-stop step, ticket − dense, at `compared_at`
    tested: list[LevelTest] = field(default_factory=list)  # in order, up to the first that did not match
    levels_run: int = 0
    compared_at: LevelTest | None = None  # where the controls are compared: the matching level, else the sparsest run
    instability: Estimate | None = None  # the error barrier at `compared_at` (the instability branch)
    rewind_step: int | None = None
    diverged: dict[int, int] = field(default_factory=dict)  # dense diverged: seed → the step its loss stopped being finite

    @property
    def stop(self) -> LevelTest | None:
        """The first level that did not match (None: every level run matched)."""
        return next((t for t in self.tested if t.outcome != "matches"), None)

    @property
    def rule(self) -> str:
        d = f"{100 * self.delta:g}"
        return (f"Rule: levels are tested in order, densest first; the ticket matches the dense network at a level "
                f"when the 95% CI of (ticket − dense) {METRIC_NAMES.get(self.metric, self.metric)} lies above −{d} "
                f"points there and at every denser level, and the sparsest such level is reported (a fixed-sequence "
                f"test: the chance of calling any level matching where the ticket is worse by {d} points or more "
                f"stays at {100 * ALPHA:g}%). Seeds pair the comparisons; intervals are Student t over seeds, cut at "
                f"what is possible; none is given when the seeds agree exactly.")

    def lines(self) -> list[str]:
        what = METRIC_NAMES.get(self.metric, self.metric)
        if self.status == "not enough seeds":
            return [f"{what}: not enough seeds to decide (n = {self.n_seeds}; the rule needs at least "
                    f"{self.min_seeds}). Run more seeds, e.g. --replicates 3."]
        if self.status == "no pruned levels":
            return [f"{what}: no pruned levels finished yet."]
        if self.status == "dense diverged":
            where = ", ".join(f"seed {s} from step {k}" for s, k in self.diverged.items())
            return [f"{what}: no verdict: the dense network diverged (its loss stopped being finite: {where}), so "
                    "there is nothing to compare a ticket with; lower the learning rate (--set train.lr=…)."]
        seeds = f"seeds {_seed_list(self.seeds)}"
        where = f"{100 * self.fraction_remaining:.1f}% of weights (level {self.level})"
        if self.status == "matching":
            out = [f"{what}: matching ticket at {where}: vs dense {_pts(self.vs_dense)}; {seeds}."]
            stop = self.stop
            if stop is None:
                out.append(f"  every level run matched (levels 1–{self.levels_run}).")
            else:
                out.append(f"  the sequence stops at level {stop.level} ({100 * stop.fraction_remaining:.1f}%): "
                           + _why_not(stop, self.delta) + ("" if stop.outcome == "worse" else "."))
        elif self.status == "no matching level":
            out = [f"{what}: no matching ticket: at the densest pruned level, {where}, the ticket is worse than the "
                   f"dense network by more than {100 * self.delta:g} points: vs dense {_pts(self.vs_dense)}; {seeds}."]
        elif self.status == "diverged":
            out = [f"{what}: no matching ticket: at the densest pruned level, {where}, "
                   + _why_not(self.tested[0], self.delta, named=False) + f" ({seeds})."]
        else:
            out = [f"{what}: inconclusive: at the densest pruned level, {where}, "
                   + _why_not(self.tested[0], self.delta, named=False) + f" ({seeds})."]
        at = self.compared_at
        if at is not None and at.level != self.level:
            out.append(f"  at the sparsest level run, {100 * at.fraction_remaining:.1f}% of weights (level {at.level}): "
                       f"vs dense {_pts(at.vs_dense)}.")
        for branch, cmp_ in self.vs_controls.items():
            name = BRANCHES[branch].short if branch in BRANCHES else branch
            sign = "" if not cmp_.defined else " (better)" if cmp_.low > 0 else \
                " (worse)" if cmp_.high < 0 else " (no clear difference)"
            out.append(f"  ticket vs {name}: {_pts(cmp_)}{sign}.")
        if self.instability is not None and self.instability.n:
            out.append(f"  {_stability(self.instability, self.rewind_step)}")
        if self.speed is not None and not math.isnan(self.speed.diff):
            s = self.speed
            if s.defined:
                word = "learns faster" if s.high < 0 else ("learns slower" if s.low > 0 else "no clear difference in speed")
                out.append(f"  early-stopping iteration vs dense: {s.diff:+.0f} steps [95% CI {s.low:+.0f}, "
                           f"{s.high:+.0f}]{' (cut at what is possible)' if s.clipped else ''} ({word}).")
            else:
                out.append(f"  early-stopping iteration vs dense: {s.diff:+.0f} steps ({_undefined(s)}).")
        return out


def _stability(e: Estimate, k: int | None) -> str:
    """The instability branch's error barrier, and whether the copies are linearly connected."""
    start = f"from step k = {k}" if k is not None else "from the rewind point"
    if math.isnan(e.low):
        word = "no interval" + (": the seeds agree exactly" if e.no_spread else ": one seed")
        return f"stability {start}: error barrier {100 * e.mean:.2f} points ({word})."
    word = ("stable: the copies are linearly connected" if e.high < STABLE else
            "unstable: an error barrier lies between the copies" if e.low > STABLE else "inconclusive")
    cut = " (cut at what is possible)" if e.clipped else ""
    return (f"stability {start}: error barrier {100 * e.mean:.2f} points [95% CI {100 * e.low:.2f}, "
            f"{100 * e.high:.2f}]{cut} ({word}; stable means below {100 * STABLE:g} points).")


def _seed_list(seeds) -> str:
    return ", ".join(map(str, seeds))


def _undefined(c: Comparison) -> str:
    if c.no_spread:
        return f"the same on all {min(c.n_a, c.n_b)} seeds: no spread, so no interval and no p-value"
    return "no interval: n < 2"


def _pts(c: Comparison) -> str:
    if not c.defined:
        return f"{100 * c.diff:+.2f} points ({_undefined(c)})"
    cut = " (cut at what is possible)" if c.clipped else ""
    return (f"{100 * c.diff:+.2f} points [95% CI {100 * c.low:+.2f}, {100 * c.high:+.2f}]{cut}, "
            f"{c.test}, n = {min(c.n_a, c.n_b)}, p = {c.p_value:.2g}")


def _why_not(t: LevelTest, delta: float, named: bool = True) -> str:
    """Why level `t` does not match; `named`: say which outcome (worse or inconclusive) too."""
    c, d = t.vs_dense, 100 * delta
    if t.outcome == "worse":
        return f"worse by more than {d:g} points, vs dense {_pts(c)}."
    if t.outcome == "diverged":
        return f"the ticket diverged (its loss stopped being finite) on seed(s) {_seed_list(t.diverged)}."
    room = c.diff + delta  # how far the mean lies above −δ: the half-width an interval must beat
    needed = seeds_needed(c.std, room) if room > 0 else None
    more = (f"about {needed} seeds would let the interval clear −{d:g} points at this mean and spread"
            if needed else f"its mean lies below −{d:g} points: more seeds would more likely show it worse"
            if room <= 0 else "more seeds would show the spread")
    why = "" if not c.defined else f": the interval reaches below −{d:g} points"
    return f"vs dense {_pts(c)}{why}{' (inconclusive)' if named else ''}; {more}"


def _outcome(c: Comparison, delta: float) -> str:
    if c.defined and c.low > -delta:
        return "matches"
    if c.defined and c.high < -delta:
        return "worse"
    return "inconclusive"


def verdict(df: pd.DataFrame, metric: str = "test_acc_early_stop", delta: float = 0.005, min_seeds: int = 2,
            seeds=None) -> Verdict:
    """The verdict for one experiment's tidy table (see the module docstring), on `seeds` (None:
    every seed in the table)."""
    if seeds is not None:
        df = df[df.seed.isin(list(seeds))]
    by = {b: g for b, g in df.groupby("branch")}
    imp = by.get("imp", df.iloc[0:0])
    dense = imp[imp.level == 0].set_index("seed")
    used = tuple(sorted(int(s) for s in dense.index.unique()))
    v = Verdict(metric, delta, "not enough seeds", len(used), min_seeds, used)
    if len(used) < min_seeds:
        return v
    levels = sorted(set(imp.level) - {0})
    if not levels:
        v.status = "no pruned levels"
        return v
    v.levels_run = max(levels)
    v.diverged = _diverged(dense)
    if v.diverged:
        v.status = "dense diverged"
        return v
    bounds = difference_bounds(metric, df)
    tickets = {}
    for level in levels:  # the fixed sequence: densest first, until a level does not match
        ticket = imp[imp.level == level].set_index("seed")
        c = compare(ticket[metric], dense[metric], bounds=bounds)
        tickets[level] = ticket
        gone = tuple(_diverged(ticket))
        v.tested.append(LevelTest(level, float(ticket.fraction_remaining.mean()), c,
                                  "diverged" if gone else _outcome(c, delta), gone))
        if v.tested[-1].outcome != "matches":
            break
    matching = [t for t in v.tested if t.outcome == "matches"]
    shown = matching[-1] if matching else v.tested[0]
    v.status = "matching" if matching else {"worse": "no matching level", "diverged": "diverged"}.get(
        shown.outcome, "inconclusive")
    v.level, v.fraction_remaining, v.vs_dense = shown.level, shown.fraction_remaining, shown.vs_dense
    # the controls where the ticket matches; else at the sparsest level run, fixed in advance
    if matching:
        v.compared_at = shown
    else:
        last = max(levels)
        ticket = imp[imp.level == last].set_index("seed")
        c = compare(ticket[metric], dense[metric], bounds=bounds)
        v.compared_at = LevelTest(last, float(ticket.fraction_remaining.mean()), c, _outcome(c, delta))
        tickets[last] = ticket
    at = v.compared_at.level
    ticket = tickets[at]
    for branch, g in by.items():
        if branch != "imp" and (branch not in BRANCHES or BRANCHES[branch].kind != "analysis"):
            control = g[g.level == at].set_index("seed")
            if len(control):
                v.vs_controls[branch] = compare(ticket[metric], control[metric], bounds=bounds)
    copies = by.get("instability")
    if copies is not None and "instability_barrier" in copies:
        v.instability = estimate(copies[copies.level == at].instability_barrier, bounds=(0.0, 1.0))
        v.rewind_step = int(ticket.rewind_step.iloc[0]) if "rewind_step" in ticket else None
    v.speed = compare(ticket["early_stop_step"].astype(float), dense["early_stop_step"].astype(float),
                      bounds=difference_bounds("early_stop_step", df))
    return v


def _diverged(rows: pd.DataFrame) -> dict[int, int]:
    """seed → the step its loss stopped being finite, for the rows (indexed by seed) that diverged."""
    if "diverged_step" not in rows:
        return {}
    steps = rows["diverged_step"].dropna()
    return {int(s): int(k) for s, k in steps.items()}


def verdicts(df: pd.DataFrame, delta: float = 0.005, min_seeds: int = 2, seeds=None) -> list[Verdict]:
    """The verdict at early stop (the paper's measure) and at the end of training."""
    return [verdict(df, m, delta, min_seeds, seeds) for m in ("test_acc_early_stop", "test_acc_end")]
