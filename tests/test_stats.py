import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lottery.analysis.stats import compare, estimate, seeds_needed, summarise
from lottery.analysis.verdict import verdict, verdicts

A = [0.981, 0.978, 0.984, 0.979, 0.983]
B = [0.972, 0.975, 0.970, 0.976, 0.971]


def test_estimate_matches_student_t_interval():
    e = estimate(A)
    low, high = sps.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=sps.sem(A))
    assert e.mean == pytest.approx(np.mean(A)) and e.std == pytest.approx(np.std(A, ddof=1))
    assert (e.low, e.high) == pytest.approx((low, high))
    one = estimate([0.5])
    assert one.n == 1 and math.isnan(one.low)


def test_paired_when_seeds_match_equals_scipy_ttest_rel():
    c = compare(pd.Series(A, index=range(5)), pd.Series(B, index=range(5)))
    ref = sps.ttest_rel(A, B)
    assert c.test == "paired t" and c.p_value == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (c.low, c.high) == pytest.approx((ci.low, ci.high))


def test_welch_when_seeds_differ_equals_scipy():
    c = compare(pd.Series(A, index=range(5)), pd.Series(B[:4], index=range(10, 14)))
    ref = sps.ttest_ind(A, B[:4], equal_var=False)
    assert c.test == "Welch t" and c.p_value == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (c.low, c.high) == pytest.approx((ci.low, ci.high))


def test_summarise_names_its_method():
    df = pd.DataFrame({"branch": "imp", "level": 0, "seed": range(5), "fraction_remaining": 1.0,
                       "test_acc_early_stop": A, "test_acc_end": B, "early_stop_step": [1, 2, 3, 4, 5]})
    s = summarise(df)
    assert s.attrs["ci_method"] == "Student t, 95%, over seeds, cut at what is possible"
    assert s.loc[0, "test_acc_early_stop_ci_low"] == pytest.approx(estimate(A).low)


def table(ticket_offsets, seeds=(0, 1, 2), reinit_offset=-0.02, noise=0.001):
    """Dense at 0.97 per seed; the ticket at each level dense + offset (+ per-seed noise)."""
    rows = []
    for s in seeds:
        jitter = noise * (s - 1)
        rows.append(dict(branch="imp", level=0, seed=s, fraction_remaining=1.0, test_acc_early_stop=0.97 + jitter,
                         test_acc_end=0.97 + jitter, early_stop_step=1000 + 10 * s))
        for lv, off in enumerate(ticket_offsets, start=1):
            frac = 0.8 ** lv
            rows.append(dict(branch="imp", level=lv, seed=s, fraction_remaining=frac,
                             test_acc_early_stop=0.97 + off + 2 * jitter, test_acc_end=0.97 + off,
                             early_stop_step=600 + 5 * s))
            rows.append(dict(branch="reinit", level=lv, seed=s, fraction_remaining=frac,
                             test_acc_early_stop=0.97 + off + reinit_offset + jitter,
                             test_acc_end=0.97 + off + reinit_offset, early_stop_step=1200))
    return pd.DataFrame(rows)


def test_verdict_matches_at_the_sparsest_level_within_delta():
    v = verdict(table([0.004, 0.002, -0.002, -0.02]))
    assert v.status == "matching" and v.level == 3
    assert v.fraction_remaining == pytest.approx(0.8 ** 3)
    assert v.vs_controls["reinit"].low > 0
    assert v.speed.high < 0, "the ticket's early-stop step is lower: it learns faster"
    text = "\n".join(v.lines())
    assert "matching ticket at 51.2% of weights (level 3)" in text and "better" in text and "learns faster" in text
    assert "lies above −0.5 points" in v.rule


def test_the_sequence_stops_at_the_first_level_that_does_not_match():
    """A passing level after a failing one is not reported: the match must hold at every denser level."""
    v = verdict(table([0.004, -0.02, 0.004, 0.004]))
    assert v.status == "matching" and v.level == 1
    assert [t.outcome for t in v.tested] == ["matches", "worse"]
    assert "the sequence stops at level 2 (64.0%): worse by more than 0.5 points" in "\n".join(v.lines())
    assert "there and at every denser level" in v.rule and "2.5%" in v.rule


def test_verdict_does_not_match_when_every_level_is_worse():
    v = verdict(table([-0.01, -0.02]))
    assert v.status == "no matching level"
    assert "no matching ticket" in v.lines()[0]


def test_verdict_refuses_with_too_few_seeds():
    v = verdict(table([0.01], seeds=(0,)))
    assert v.status == "not enough seeds"
    assert "not enough seeds" in v.lines()[0]


def test_delta_is_configurable():
    df = table([-0.008])
    assert verdict(df, delta=0.005).status == "no matching level"
    assert verdict(df, delta=0.02).status == "matching"


def test_zero_spread_gives_no_interval_and_no_p_value():
    """Identical per-seed differences: a t interval would collapse to a point with p = 0. None is
    given, no match is declared, and the verdict says why."""
    c = compare(pd.Series([0.9, 0.8], index=[0, 1]), pd.Series([0.89, 0.79], index=[0, 1]))
    assert c.no_spread and not c.defined and math.isnan(c.p_value)
    v = verdict(table([0.002, 0.002], noise=0.0))
    assert v.status == "inconclusive"
    text = "\n".join(v.lines())
    assert "the same on all 3 seeds: no spread, so no interval and no p-value" in text
    assert "p = 0" not in text and "[95% CI +0.20, +0.20]" not in text
    assert math.isnan(estimate([0.97, 0.97, 0.97]).low)


def test_a_wide_interval_is_inconclusive_not_a_no_and_says_how_many_seeds_would_do():
    rows = table([0.01])
    wide = rows.copy()
    wide.loc[(wide.level == 1) & (wide.seed == 0), "test_acc_early_stop"] -= 0.03  # one seed far off
    v = verdict(wide)
    assert v.status == "inconclusive"
    c = v.vs_dense
    assert c.low < -0.005 < c.high
    room = c.diff + 0.005  # the interval's half-width must beat the mean's distance above −δ
    need = seeds_needed(c.std, room)
    assert f"about {need} seeds would let the interval clear −0.5 points at this mean and spread" in v.lines()[0]
    t = sps.t.ppf(0.975, need - 1) * c.std / math.sqrt(need)
    t_fewer = sps.t.ppf(0.975, need - 2) * c.std / math.sqrt(need - 1)
    assert t <= room < t_fewer, "the fewest seeds whose interval clears −δ at this mean and spread"
    assert "no matching ticket" not in "\n".join(v.lines())


def test_a_mean_below_the_margin_is_not_promised_a_match_by_more_seeds():
    rows = table([-0.012])
    rows.loc[(rows.level == 1) & (rows.seed == 0), "test_acc_early_stop"] += 0.009  # wide enough to straddle −δ
    v = verdict(rows)
    assert v.status == "inconclusive" and v.vs_dense.diff < -0.005 < v.vs_dense.high
    assert "its mean lies below −0.5 points: more seeds would more likely show it worse" in v.lines()[0]


def test_divergence_is_never_a_match():
    rows = table([0.0, 0.0])
    rows["diverged_step"] = None
    gone = (rows.level == 2) & (rows.seed == 1)
    rows.loc[gone, "diverged_step"] = 300
    v = verdict(rows)
    assert v.status == "matching" and v.level == 1 and v.stop.outcome == "diverged"
    assert "the ticket diverged (its loss stopped being finite) on seed(s) 1" in "\n".join(v.lines())
    rows.loc[(rows.level == 0) & (rows.seed == 2), "diverged_step"] = 50
    v = verdict(rows)
    assert v.status == "dense diverged" and v.diverged == {2: 50}
    assert "no verdict: the dense network diverged" in v.lines()[0]


def null_experiments(count, levels, seeds, true_diff, sd, rng):
    """`count` experiments whose ticket is, in truth, `true_diff[l]` away from the dense network at
    level l, with per-seed noise `sd` on each unit's accuracy."""
    for _ in range(count):
        rows = []
        dense = 0.97 + rng.normal(0, sd, seeds)
        for s in range(seeds):
            rows.append(dict(branch="imp", level=0, seed=s, fraction_remaining=1.0, test_acc_early_stop=dense[s],
                             test_acc_end=dense[s], early_stop_step=1000))
            for lv in range(1, levels + 1):
                acc = dense[s] + true_diff[lv - 1] + rng.normal(0, sd)
                rows.append(dict(branch="imp", level=lv, seed=s, fraction_remaining=0.8 ** lv,
                                 test_acc_early_stop=acc, test_acc_end=acc, early_stop_step=900))
        yield pd.DataFrame(rows)


@pytest.mark.parametrize("true_diff", [[-0.005] * 12, [0.0] * 4 + [-0.005] * 8])
def test_the_rule_calls_a_worse_level_matching_in_at_most_5_percent_of_experiments(true_diff):
    """Simulated experiments, 3 seeds and 12 levels, where the ticket is worse by exactly δ (the
    hardest case for the rule) at every level, or from level 5 on. A false match is a level
    reported as matching where the truth is −δ. Picking the sparsest level that passes anywhere
    (the rule before this one) does this in about a quarter of them."""
    rng = np.random.default_rng(0)
    false = 0
    experiments = list(null_experiments(400, 12, 3, true_diff, 0.003, rng))
    for df in experiments:
        v = verdict(df, delta=0.005)
        false += v.status == "matching" and true_diff[v.level - 1] <= -0.005
    assert false / len(experiments) <= 0.05, f"false matches in {false} of {len(experiments)}"


def test_the_rule_finds_a_ticket_that_truly_matches():
    """Power: a ticket as good as the dense network at 12 levels, with little noise, matches to the last."""
    rng = np.random.default_rng(1)
    found = [verdict(df).level for df in null_experiments(40, 12, 5, [0.0] * 12, 0.001, rng)]
    assert np.mean([lv == 12 for lv in found]) > 0.7


def test_intervals_stay_within_what_is_possible():
    e = estimate([1.0, 1.0, 0.99, 0.995], bounds=(0.0, 1.0))
    assert e.high == 1.0 and e.clipped, "an accuracy interval is cut at 100%"
    rows = pd.DataFrame({"branch": "imp", "level": 0, "seed": range(3), "fraction_remaining": 1.0,
                         "test_acc_early_stop": [1.0, 0.999, 0.99], "test_acc_end": [1.0, 1.0, 0.99],
                         "early_stop_step": [5, 100, 2900], "rewind_step": 0, "steps": 3000})
    s = summarise(rows).iloc[0]
    assert s.test_acc_early_stop_ci_high <= 1.0 and s.test_acc_early_stop_clipped
    assert 0 <= s.early_stop_step_ci_low and s.early_stop_step_ci_high <= 3000 and s.early_stop_step_clipped


def test_the_verdict_uses_the_seeds_asked_for_and_names_them():
    df = table([0.004, 0.002], seeds=(0, 1, 2, 6))
    asked = verdict(df, seeds=(0, 1, 2))
    assert asked.n_seeds == 3 and asked.seeds == (0, 1, 2) and "seeds 0, 1, 2" in asked.lines()[0]
    everything = verdict(df)
    assert everything.n_seeds == 4 and "seeds 0, 1, 2, 6" in everything.lines()[0]
    assert [v.seeds for v in verdicts(df, seeds=[6, 0])] == [(0, 6), (0, 6)]
