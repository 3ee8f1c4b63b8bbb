"""The paper's figures, drawn with matplotlib (headless) from the tidy table.

Every figure is saved as PNG and SVG. Bands are 95% Student-t confidence intervals over seeds,
cut at what is possible (absent when a branch has a single seed, or its seeds agree exactly);
titles say which.
"""

import io
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lottery import atomic  # noqa: E402
from lottery.analysis.stats import estimate, summarise  # noqa: E402
from lottery.imp.branches import BRANCHES  # noqa: E402

PERCENT_TICKS = [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1]


def _style(branch: str) -> tuple[str, str | None]:
    """(legend label, colour) of a branch, from the catalogue."""
    b = BRANCHES.get(branch)
    return (b.label, b.color) if b else (branch, None)


def _what_is_drawn(df: pd.DataFrame) -> str:
    """What a figure's lines and bands are: an interval only where there are seeds to give one."""
    n = int(df.seed.nunique())
    return "one seed, no interval" if n == 1 else f"mean and 95% CI over {n} seeds"


def sparsity_axis(ax, fractions):
    ax.set_xscale("log")
    lo = max(0.05, 100 * float(np.min(fractions)) * 0.85)
    ax.set_xlim(105, lo)  # 100% on the left, as in the paper
    ax.set_xticks([t for t in PERCENT_TICKS if lo <= t <= 105])
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.grid(True, which="both", alpha=0.3)


def _legend_below(fig, ax, ncol=4) -> float:
    """The legend in rows under the axes; returns the fraction of the figure height it needs."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    rows = -(-len(labels) // ncol)
    return min(0.5, (0.24 * rows + 0.3) / fig.get_figheight())


FORMATS = ("png", "svg")  # `lottery plot` draws both; a report, which inlines the PNGs, only those


def save_figure(fig, out_dir: Path, name: str, formats=FORMATS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        drawn = io.BytesIO()
        fig.savefig(drawn, format=fmt, **({"dpi": 110} if fmt == "png" else {}))
        atomic.write_bytes(out_dir / f"{name}.{fmt}", drawn.getvalue())  # whole or not at all
    plt.close(fig)
    return out_dir / f"{name}.png"


def _branch_lines(ax, summary, metric, scale):
    for branch, sub in summary.groupby("branch", sort=False):
        if branch in BRANCHES and BRANCHES[branch].kind == "analysis":
            continue  # a second copy of the ticket (the instability analysis): its own figure
        label, color = _style(branch)
        sub = sub.sort_values("fraction_remaining", ascending=False)
        x = 100 * sub.fraction_remaining
        (line,) = ax.plot(x, scale * sub[f"{metric}_mean"], marker="o", ms=3.5, color=color, label=label)
        color = line.get_color()  # branches without a fixed colour take the cycle's; the band follows
        if sub[f"{metric}_ci_low"].notna().any():
            crowded = summary.branch.nunique() > 4
            ax.fill_between(x, scale * sub[f"{metric}_ci_low"], scale * sub[f"{metric}_ci_high"],
                            color=color, alpha=0.08 if crowded else 0.2, linewidth=0)


def accuracy_figure(df: pd.DataFrame, out_dir: Path, formats=FORMATS) -> Path:
    """Test accuracy vs % weights remaining, at early stop and at the end, dense reference."""
    summary = summarise(df)
    dense = summary[(summary.branch == "imp") & (summary.level == 0)]
    rows = -(-(summary.branch.nunique() + 1) // 4)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4 + 0.28 * rows), sharey=True)
    for ax, metric, title in ((axes[0], "test_acc_early_stop", "at the early-stopping iteration"),
                              (axes[1], "test_acc_end", "at the end of training")):
        _branch_lines(ax, summary, metric, 100)
        if len(dense):
            ax.axhline(100 * dense[f"{metric}_mean"].iloc[0], color="gray", ls="--", lw=1, label="dense network")
        sparsity_axis(ax, summary.fraction_remaining)
        ax.set_title(f"Test accuracy {title}", fontsize=11)
    axes[0].set_ylabel("test accuracy (%)")
    bottom = _legend_below(fig, axes[0])
    fig.suptitle(f"Lottery ticket vs controls: {_what_is_drawn(df)}", fontsize=12)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save_figure(fig, out_dir, "accuracy", formats)


def early_stop_figure(df: pd.DataFrame, out_dir: Path, formats=FORMATS) -> Path:
    """Early-stopping iteration vs % weights remaining (lower = learns faster)."""
    summary = summarise(df)
    rows = -(-summary.branch.nunique() // 4)
    fig, ax = plt.subplots(figsize=(9, 4.2 + 0.24 * rows))
    _branch_lines(ax, summary, "early_stop_step", 1)
    sparsity_axis(ax, summary.fraction_remaining)
    ax.set_ylabel("early-stopping iteration\n(step of min. validation loss)")
    ax.set_title("How fast each network learns", fontsize=11)
    fig.tight_layout(rect=(0, _legend_below(fig, ax, 4), 1, 1))
    return save_figure(fig, out_dir, "early_stop", formats)


def curves_figure(histories: pd.DataFrame, out_dir: Path, max_levels: int = 4, formats=FORMATS) -> Path:
    """Validation accuracy over training for a few levels of the ticket (mean over seeds).

    `histories`: one row per evaluation with branch, level, seed, fraction_remaining, step, val_acc.
    """
    imp = histories[histories.branch == "imp"]
    levels = sorted(imp.level.unique())
    picked = sorted({levels[int(round(i))] for i in np.linspace(0, len(levels) - 1, min(max_levels, len(levels)))})
    fig, ax = plt.subplots(figsize=(7, 4.6))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(picked)))
    for color, level in zip(colors, picked):
        g = imp[imp.level == level]
        mean = g.groupby("step").val_acc.mean()
        frac = 100 * g.fraction_remaining.iloc[0]
        ax.plot(mean.index, 100 * mean.values, color=color, label=f"ticket, {frac:.1f}% remaining")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation accuracy (%)")
    lows = 100 * imp.groupby(["level", "step"]).val_acc.mean()
    ax.set_ylim(max(lows[lows.index.get_level_values(1) > 0].min() - 1, 0) if len(lows) else 0, None)
    ax.set_ylim(top=min(ax.get_ylim()[1], 100.0))  # accuracy cannot exceed 100%
    ax.set_title("Validation accuracy during training", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "curves", formats)


def density_figure(df: pd.DataFrame, out_dir: Path, formats=FORMATS) -> Path:
    """Per-layer density of the ticket at each level."""
    imp = df[df.branch == "imp"]
    cols = [c for c in df.columns if c.startswith("density[")]
    per_level = imp.groupby("level")[cols + ["fraction_remaining"]].mean()
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for c in cols:
        ax.plot(per_level.index, 100 * per_level[c], marker="o", ms=3, label=c[len("density["):-1])
    ax.plot(per_level.index, 100 * per_level.fraction_remaining, color="black", ls="--", label="whole network")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("pruning level")
    ax.set_ylabel("weights remaining in the layer (%, log scale)")
    ax.set_title("Per-layer density of the ticket", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "density", formats)


def cost_figure(df: pd.DataFrame, out_dir: Path, target: float = 0.07, formats=FORMATS) -> Path:
    """Accuracy at one sparsity vs the compute spent to get there (finding the mask + the final
    training), per branch: what the cheaper methods trade for their savings, measured."""
    imp = df[df.branch == "imp"]
    fracs = imp.groupby("level").fraction_remaining.mean()
    level = int((fracs - target).abs().idxmin())
    at = df[df.level == level]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, cost, train_cost, unit in ((axes[0], "find_flops", "train_flops_effective", "FLOPs"),
                                       (axes[1], "find_seconds", "train_seconds", "seconds of wall time")):
        for branch, g in at.groupby("branch", sort=False):
            label, color = _style(branch)
            total = g[cost] + g[train_cost]
            acc = estimate(100 * g.test_acc_early_stop, bounds=(0.0, 100.0))
            err = None if np.isnan(acc.low) else [[acc.mean - acc.low], [acc.high - acc.mean]]
            ax.errorbar([total.mean()], [acc.mean], yerr=err, fmt="o", ms=7, capsize=4, color=color, label=label)
        ax.set_xscale("log")
        # plain-text labels ("10G", "0.5"): the default scientific ones go through mathtext, slow to lay out
        ax.xaxis.set_major_formatter(mticker.EngFormatter(sep="") if unit == "FLOPs" else
                                     mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xlabel(f"compute to find the mask and train it ({unit}, log scale)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy at early stop (%)")
    bottom = _legend_below(fig, axes[0], 4)
    fig.suptitle(f"What it cost: accuracy at {100 * fracs[level]:.1f}% of weights (level {level}) "
                 f"vs compute; {_what_is_drawn(at)}", fontsize=12)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save_figure(fig, out_dir, "cost", formats)


def all_figures(df: pd.DataFrame, histories: pd.DataFrame, out_dir: Path, formats=FORMATS) -> dict[str, Path]:
    """Every figure the data supports; name → PNG path. Drawn in two halves of about equal work
    (the two-panel figures, the one-panel ones) side by side where a second core is free."""
    two_panels = {"accuracy": lambda: accuracy_figure(df, out_dir, formats)}
    one_panel = {"early_stop": lambda: early_stop_figure(df, out_dir, formats)}
    if len(histories):
        one_panel["curves"] = lambda: curves_figure(histories, out_dir, formats=formats)
    if any(c.startswith("density[") for c in df.columns):
        one_panel["density"] = lambda: density_figure(df, out_dir, formats)
    if (df.branch == "imp").any() and (df.level > 0).any():
        two_panels["cost"] = lambda: cost_figure(df, out_dir, formats=formats)
    _side_by_side(list(two_panels.values()), list(one_panel.values()))
    return {name: out_dir / f"{name}.png" for name in (*two_panels, *one_panel)}


def _side_by_side(here: list, there: list) -> None:
    """Run the jobs `here` (each draws and saves one figure) in this process and those `there` in
    a forked child at the same time, on Linux with two cores or more: matplotlib is single-threaded.
    Elsewhere, or when the child fails, this process runs them all."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    pid = os.fork() if there and cores >= 2 and sys.platform == "linux" else None
    if pid == 0:  # the child: draw, and leave without running the parent's exit handlers
        code = 0
        try:
            for job in there:
                job()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    for job in here:
        job()
    if pid is None or os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        for job in there:
            job()
