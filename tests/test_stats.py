import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lottery.analysis.stats import compare, estimate, summarise
from lottery.analysis.verdict import verdict

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
    assert s.attrs["ci_method"] == "Student t, 95%"
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
