"""Stability to SGD noise (the instability branch): its figures and what they say.

Within a run (one rewind step k): the error barrier against the weights remaining. Across runs
that differ only in k (`lottery run … --rewind-steps 0,1ep,2ep`): the barrier against k at each
level, and the first k from which the ticket is stable (the barrier's interval below 2 points).
"""

from pathlib import Path

import pandas as pd

from lottery.analysis.plots import FORMATS, plt, save_figure, sparsity_axis
from lottery.analysis.stats import estimate
from lottery.analysis.verdict import STABLE


def barriers(df: pd.DataFrame) -> pd.DataFrame:
    """Per level of the instability branch: fraction remaining, rewind step, and the barrier's
    mean and 95% interval over seeds (in accuracy points as fractions)."""
    rows = df[(df.branch == "instability") & df.instability_barrier.notna()] if "instability_barrier" in df else df[:0]
    out = []
    for level, g in rows.groupby("level"):
        e = estimate(g.instability_barrier, bounds=(0.0, 1.0))
        out.append({"level": int(level), "fraction_remaining": float(g.fraction_remaining.mean()),
                    "rewind_step": int(g.rewind_step.iloc[0]), "n": e.n, "mean": e.mean, "low": e.low, "high": e.high})
    return pd.DataFrame(out)


def figure(df: pd.DataFrame, out_dir: Path, formats=FORMATS) -> Path | None:
    """The error barrier against the weights remaining (None when the run has no instability rows)."""
    b = barriers(df)
    if b.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.4))
    x = 100 * b.fraction_remaining
    ax.plot(x, 100 * b["mean"], marker="o", color="tab:red", label="error barrier (mean over seeds)")
    if b["low"].notna().any():
        ax.fill_between(x, 100 * b["low"], 100 * b["high"], color="tab:red", alpha=0.2, linewidth=0, label="95% CI")
    ax.axhline(100 * STABLE, color="gray", ls="--", lw=1, label=f"stable below {100 * STABLE:g} points")
    sparsity_axis(ax, b.fraction_remaining)
    ax.set_ylabel("test error barrier (points)")
    ax.set_title(f"Stability to SGD noise from step k = {int(b.rewind_step.iloc[0])}", fontsize=11)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "instability", formats)


def across_rewinds(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The barriers of several runs (each one rewind step), one row per (k, level)."""
    parts = [barriers(t) for t in tables]
    return pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else pd.DataFrame()


def stable_from(by_k: pd.DataFrame) -> list[str]:
    """One line per level: the smallest rewind step from which the ticket is stable, or none."""
    lines = []
    for level, g in by_k.groupby("level"):
        g = g.sort_values("rewind_step")
        stable = g[g["high"] < STABLE]
        where = f"level {level} ({100 * g.fraction_remaining.mean():.1f}% of weights)"
        steps = ", ".join(f"k = {k}: {100 * m:.2f}" for k, m in zip(g.rewind_step, g["mean"]))
        lines.append(f"{where}: stable from k = {int(stable.rewind_step.iloc[0])}" if len(stable) else
                     f"{where}: not stable at any k tried")
        lines[-1] += f" (error barrier in points, {steps})."
    return lines


def rewind_figure(by_k: pd.DataFrame, out_dir: Path, formats=FORMATS) -> Path | None:
    """The error barrier against the rewind step k, one line per level."""
    if by_k.empty or by_k.rewind_step.nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for level, g in by_k.groupby("level"):
        g = g.sort_values("rewind_step")
        (line,) = ax.plot(g.rewind_step, 100 * g["mean"], marker="o",
                          label=f"level {level}, {100 * g.fraction_remaining.mean():.1f}% remaining")
        if g["low"].notna().any():
            ax.fill_between(g.rewind_step, 100 * g["low"], 100 * g["high"], color=line.get_color(), alpha=0.15,
                            linewidth=0)
    ax.axhline(100 * STABLE, color="gray", ls="--", lw=1)
    ax.set_xlabel("rewind step k")
    ax.set_ylabel("test error barrier (points)")
    ax.set_title("Stability to SGD noise against the rewind step", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, "instability_by_k", formats)
