"""Figures with matplotlib (headless)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lottery.results import aggregate  # noqa: E402

BRANCH_STYLE = {
    "imp": ("IMP ticket (rewound)", "tab:blue"),
    "reinit": ("random reinit (same mask)", "tab:orange"),
    "random_prune": ("random pruning (same layer counts)", "tab:green"),
}


def accuracy_figure(df, path) -> None:
    """Test accuracy vs % weights remaining (log x, 100% on the left), mean ± std over seeds,
    at the early-stopping iteration and at the end of training, with the dense reference."""
    agg = aggregate(df)
    dense = agg[(agg.branch == "imp") & (agg.level == 0)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, metric, title in ((axes[0], "test_acc_early_stop", "at the early-stopping iteration"),
                              (axes[1], "test_acc_end", "at the end of training")):
        for branch, sub in agg.groupby("branch", sort=False):
            label, color = BRANCH_STYLE.get(branch, (branch, None))
            sub = sub.sort_values("fraction_remaining", ascending=False)
            x = 100 * sub.fraction_remaining
            mean, std = 100 * sub[f"{metric}_mean"], 100 * sub[f"{metric}_std"].fillna(0)
            ax.plot(x, mean, marker="o", ms=3.5, color=color, label=f"{label}")
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        if len(dense):
            ax.axhline(100 * dense[f"{metric}_mean"].iloc[0], color="gray", ls="--", lw=1, label="dense network")
        ax.set_xscale("log")
        ax.set_xlim(105, max(0.5, 100 * agg.fraction_remaining.min() * 0.85))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("weights remaining (%, log scale)")
        ax.set_title(f"Test accuracy {title}", fontsize=11)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    n = int(df.seed.nunique())
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(f"Lottery tickets vs controls (mean ± std over {n} seed{'s' if n != 1 else ''})", fontsize=12)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
