"""The few lines a run ends with: dense accuracy, and the ticket vs its controls at one sparsity."""

from lottery.results import aggregate


def _fmt(row, metric):
    std = row[f"{metric}_std"]
    return f"{100 * row[f'{metric}_mean']:.2f}" + ("" if std != std else f" ± {100 * std:.2f}")


def headline(df, target: float = 0.07) -> list[str]:
    """Dense vs ticket vs controls at the level nearest `target` fraction remaining (mean ± std)."""
    agg = aggregate(df)
    imp = agg[agg.branch == "imp"]
    if imp.empty:
        return ["no finished units yet"]
    dense = imp[imp.level == 0].iloc[0]
    n = int(dense["n"])
    lines = [f"dense network ({n} seed{'s' if n != 1 else ''}): test accuracy {_fmt(dense, 'test_acc_early_stop')}% "
             f"at early stop, {_fmt(dense, 'test_acc_end')}% at the end"]
    if len(imp) < 2:
        return lines
    level = int(imp.loc[(imp.fraction_remaining - target).abs().idxmin(), "level"])
    at = agg[agg.level == level]
    frac = float(at.fraction_remaining.iloc[0])
    lines.append(f"at level {level} ({100 * frac:.1f}% of weights remaining), mean ± std over seeds:")
    for _, row in at.iterrows():
        d_es = 100 * (row.test_acc_early_stop_mean - dense.test_acc_early_stop_mean)
        d_end = 100 * (row.test_acc_end_mean - dense.test_acc_end_mean)
        lines.append(f"  {row.branch:<13} early stop {_fmt(row, 'test_acc_early_stop')}% ({d_es:+.2f} vs dense)   "
                     f"end {_fmt(row, 'test_acc_end')}% ({d_end:+.2f} vs dense)")
    return lines
