"""Tables and the instability figure of docs/convnets.md, from the runs that measured them.

    python docs/make_science.py --store STORE --tickets RUN [RUN ...] --stability NAME=RUN,RUN,RUN ...

--tickets: runs whose ticket, random-reinit and random-pruning accuracies are tabulated (test
accuracy at early stop, mean ± sd over seeds, per level). --stability: for each network, the runs
of one experiment at several rewinding points k (the `instability` branch); the figure plots the
mean error barrier against the fraction of weights remaining, one line per k. Prints the tables
as Markdown and writes docs/figures/instability.png.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from lottery.analysis.table import table  # noqa: E402
from lottery.store import RunStore  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures" / "instability.png"


def ticket_table(df: pd.DataFrame) -> str:
    df = df[df.branch.isin(["imp", "reinit", "random_prune"])]
    weights = df[df.branch == "imp"].groupby("level").fraction_remaining.mean()
    lines = ["| level | weights left | ticket (IMP) | random reinit | random pruning |", "|---|---|---|---|---|"]
    for level, frac in weights.items():
        cells = []
        for branch in ("imp", "reinit", "random_prune"):
            acc = 100 * df[(df.branch == branch) & (df.level == level)].test_acc_early_stop
            cells.append(f"{acc.mean():.1f} ± {acc.std():.1f}" if len(acc) else "")
        lines.append(f"| {level} | {100 * frac:.1f}% | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def structure_table(runs: list[RunStore]) -> str:
    """Test accuracy at early stop by structure (unstructured, or N:M with N = M − level), branch and density."""
    lines = ["| structure | branch | level | weights left | test acc early stop (%) | vs dense (points) |",
             "|---|---|---|---|---|---|"]
    for store in runs:
        cfg, df = store.config(), table(store)
        dense = df[(df.branch == "imp") & (df.level == 0)].set_index("seed").test_acc_early_stop
        for (branch, level), g in df[df.level > 0].groupby(["branch", "level"]):
            what = f"{cfg.prune.nm_group - level}:{cfg.prune.nm_group}" if cfg.prune.scope == "nm" else "unstructured"
            acc = 100 * g.set_index("seed").test_acc_early_stop
            diff = acc - 100 * dense.reindex(acc.index)
            lines.append(f"| {what} | {branch} | {level} | {100 * g.fraction_remaining.mean():.1f}% | "
                         f"{acc.mean():.2f} ± {acc.std():.2f} | {diff.mean():+.2f} ± {diff.std():.2f} |")
    return "\n".join(lines)


def barriers(runs: list[RunStore]) -> pd.DataFrame:
    rows = []
    for store in runs:
        df = table(store)
        copies = df[df.branch == "instability"]
        for level, g in copies.groupby("level"):
            rows.append({"k": int(g.rewind_step.iloc[0]), "level": level, "weights": g.fraction_remaining.mean(),
                         "barrier": 100 * g.instability_barrier.mean(), "sd": 100 * g.instability_barrier.std(),
                         "seeds": len(g)})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--tickets", nargs="*", default=[])
    p.add_argument("--stability", nargs="*", default=[], metavar="NAME=RUN,RUN")
    p.add_argument("--structure", nargs="*", default=[], metavar="RUN",
                   help="runs whose tickets are tabulated by their structure (unstructured or N:M) and density")
    args = p.parse_args()
    if args.structure:
        print("\n" + structure_table([RunStore.find(r, args.store) for r in args.structure]))
    for run in args.tickets:
        store = RunStore.find(run, args.store)
        print(f"\n{store.config().model.name} ({store.run_dir.name}):\n\n{ticket_table(table(store))}")
    panels = [(name, [RunStore.find(r, args.store) for r in runs.split(",")])
              for name, runs in (s.split("=", 1) for s in args.stability)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, runs) in zip(axes[0], panels):
        b = barriers(runs)
        for k, g in b.groupby("k"):
            g = g.sort_values("weights")
            low = [min(sd, m) for m, sd in zip(g.barrier, g.sd)]  # a barrier is never below 0
            ax.errorbar(100 * g.weights, g.barrier, yerr=[low, g.sd], marker="o", ms=3, capsize=2, label=f"k = {k} steps")
        ax.set_xscale("log")
        ticks = [t for t in (100, 80, 60, 40, 30, 20, 15, 10) if 100 * b.weights.min() * 0.95 <= t <= 100]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # plain numbers, not 6×10¹
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel("error barrier (points; ±1 sd over seeds)")
        ax.set_title(name)
        ax.axhline(2, color="grey", lw=0.8, ls=":")
        ax.legend(fontsize=8)
        print(f"\n{name}: barrier (points, mean ± sd over seeds) by rewinding step k and level\n")
        wide = b.assign(cell=[f"{m:.2f} ± {s:.2f}" for m, s in zip(b.barrier, b.sd)]).pivot(index="k", columns="level",
                                                                                           values="cell")
        print("| k \\ level | " + " | ".join(map(str, wide.columns)) + " |")
        print("|---" * (len(wide.columns) + 1) + "|")
        for k, row in wide.iterrows():
            print(f"| {k} | " + " | ".join(row.values) + " |")
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"\n{OUT}")


if __name__ == "__main__":
    main()
