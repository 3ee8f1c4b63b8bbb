"""docs/reproductions.md and its figures, from the runs' stores: every number on the page is read
from the results here, none typed by hand. `docs/reproduce.sh` reruns the runs first.

    python docs/make_reproductions.py --store STORE [STORE ...]

It finds the runs by their configuration: the paper-budget LeNet run (`lenet-mnist`, its 50,000
iterations), the MNIST-1D methods comparison (`mlp-mnist1d-all`) and the convolutional runs
(`cnn-mnist`, `cnn-mnist1d`). Whatever is missing or unfinished is said so on the page.
"""

import argparse
import datetime as dt
import platform
from pathlib import Path

import pandas as pd

from lottery.analysis.plots import accuracy_figure, early_stop_figure
from lottery.analysis.summary import results_table
from lottery.analysis.table import table
from lottery.analysis.verdict import verdicts
from lottery.presets import PRESETS
from lottery.store import RunStore

DOCS = Path(__file__).resolve().parent
FIGURES = DOCS / "figures" / "reproductions"
PAPER = "Frankle & Carbin, ICLR 2019"


def runs_of(roots: list[Path], preset: str) -> list[RunStore]:
    """The runs in the stores made from `preset`: its configuration's hash (levels, seeds and
    branches are not hashed, so a run with more of them is the same run)."""
    want = PRESETS[preset].config.hash()
    return [RunStore(root / want) for root in roots if (root / want / "config.json").exists()]


def per_level(df: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy and early-stopping step per (branch, level), and the paired difference to dense."""
    dense = df[(df.branch == "imp") & (df.level == 0)].set_index("seed")
    rows = []
    for (branch, level), g in df.groupby(["branch", "level"]):
        g = g.set_index("seed")
        rows.append({"branch": branch, "level": level, "weights": g.fraction_remaining.mean(),
                     "acc": 100 * g.test_acc_early_stop.mean(),
                     "vs_dense": 100 * (g.test_acc_early_stop - dense.test_acc_early_stop.reindex(g.index)).mean(),
                     "stop": g.early_stop_step.mean(),
                     "stop_vs_dense": (g.early_stop_step / dense.early_stop_step.reindex(g.index)).mean()})
    return pd.DataFrame(rows)


def lenet_points(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(the paper's claim, ours, reproduced?) point by point, computed from the table."""
    p = per_level(df)
    imp = p[(p.branch == "imp") & (p.level > 0)].sort_values("level")
    out = []

    def sparsest(rows, ok):
        hits = rows[ok(rows)]
        return hits.weights.min() if len(hits) else None

    above = sparsest(imp, lambda r: r.vs_dense > 0)
    out.append(("Winning tickets beat the dense network down to about 13.5% of the weights remaining (Figure 3).",
                f"The ticket's mean accuracy is above the dense network's down to {100 * above:.1f}%." if above
                else "The ticket's mean accuracy is never above the dense network's.",
                "yes" if above is not None and above <= 0.2 else "no"))
    within = sparsest(imp, lambda r: r.vs_dense > -0.5)
    out.append(("They match it (within noise) down to about 3.6%.",
                f"Its mean stays within 0.5 points of dense (or above) down to {100 * within:.1f}%." if within
                else "Its mean falls more than 0.5 points below dense at the first level.",
                "yes" if within is not None and within <= 0.05 else "no"))
    fastest = imp.loc[imp.stop_vs_dense.idxmin()] if len(imp) else None
    if fastest is not None:
        later = imp[imp.weights < fastest.weights]
        rises = bool(len(later)) and later.stop_vs_dense.iloc[-1] > fastest.stop_vs_dense
        out.append(("The early-stopping iteration falls as the network is pruned (about 38% earlier near 21%) and "
                    "rises again below that.",
                    f"It is earliest at {100 * fastest.weights:.1f}%: {100 * (1 - fastest.stop_vs_dense):.0f}% earlier than "
                    f"dense; {'it rises again below that' if rises else 'it does not rise again below that'}.",
                    "yes" if fastest.stop_vs_dense < 0.85 and rises else "partly" if fastest.stop_vs_dense < 0.85 else "no"))
    reinit = p[(p.branch == "reinit") & (p.level > 0)].sort_values("level")
    if len(reinit):
        below = reinit[reinit.vs_dense < 0]
        first = below.weights.max() if len(below) else None
        slower = (reinit.set_index("level").stop > imp.set_index("level").stop.reindex(reinit.level)).mean()
        out.append(("Reinitialised tickets learn more slowly and fall below the dense network from about 21%.",
                    (f"Random reinitialisation is below dense from {100 * first:.1f}% on" if first else
                     "Random reinitialisation is never below dense") +
                    f"; it stops later than the ticket at {100 * slower:.0f}% of the levels.",
                    "yes" if first is not None and 0.1 <= first <= 0.4 and slower > 0.5 else "partly"))
    random = p[(p.branch == "random_prune") & (p.level > 0)].sort_values("level")
    if len(random) and len(reinit):
        rb = random[random.vs_dense < 0]
        first_r = rb.weights.max() if len(rb) else None
        out.append(("Random pruning falls below dense earlier (at higher densities) than reinitialisation.",
                    f"Random pruning is below dense from {100 * first_r:.1f}% on." if first_r else
                    "Random pruning is never below dense.",
                    "yes" if first_r is not None and (first is None or first_r >= first) else "no"))
    return out


def section(title: str, runs: list[RunStore], command: str, points=None) -> list[str]:
    if not runs:
        return [f"## {title}", "", f"Not run yet: `{command}`.", ""]
    store = runs[0]
    df = table(store)
    if df.empty:
        return [f"## {title}", "", f"No finished units yet in `{store.run_dir.name}`: `{command}`.", ""]
    FIGURES.mkdir(parents=True, exist_ok=True)
    acc = accuracy_figure(df, FIGURES / store.run_dir.name, formats=("png",))
    stop = early_stop_figure(df, FIGURES / store.run_dir.name, formats=("png",))
    inv = [i for i in store.invocations() if i.get("event") in ("started", "finished")]
    seconds = sum(i.get("seconds", 0) for i in store.invocations() if i.get("event") in ("finished", "interrupted"))
    machine = inv[-1].get("device_name") or inv[-1].get("platform") if inv else "?"
    threads = inv[-1].get("threads") if inv else "?"
    vs = verdicts(df)
    partial = "" if all(store.is_done(u) for u in _units(store, df)) else " **Unfinished: the numbers will change.**"
    lines = [f"## {title}", "", f"```bash\n{command}\n```", "",
             f"Run `{store.run_dir.name}`: {df.seed.nunique()} seeds, levels 0–{int(df.level.max())}, branches "
             f"{', '.join(sorted(df.branch.unique()))}; {len(df)} trainings, {seconds / 3600:.1f} h of wall time on "
             f"{machine} ({threads} threads).{partial}", "",
             f"![accuracy](figures/reproductions/{store.run_dir.name}/{acc.name})",
             f"![early stopping](figures/reproductions/{store.run_dir.name}/{stop.name})", "",
             "The verdict the tool prints for it:", "", "```", *[line for v in vs for line in v.lines()], "```", ""]
    if points:
        lines += ["Paper vs ours, point by point:", "", "| the paper says | we measured | reproduced |",
                  "|---|---|---|", *[f"| {a} | {b} | {c} |" for a, b, c in points], ""]
    lines += ["Per level (mean [95% CI] over seeds):", "", results_table(df).to_markdown(index=False), ""]
    return lines


def _units(store: RunStore, df: pd.DataFrame):
    """The units of the run's last invocation (its levels, seeds and branches)."""
    from dataclasses import replace

    from lottery.imp.branches import level_units

    last = [i for i in store.invocations() if i.get("event") == "started"][-1]
    cfg = replace(store.config(), levels=last["levels"], seeds=tuple(last["seeds"]), branches=tuple(last["branches"]))
    return [u for lv in range(cfg.levels + 1) for u in level_units(cfg, lv)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, nargs="+", help="the store(s) holding the runs")
    root = [Path(p) for p in ap.parse_args().store]
    lenet = runs_of(root, "lenet-mnist")
    page = ["# Reproductions", "",
            f"Generated by `docs/make_reproductions.py` on {dt.date.today()} ({platform.machine()}) from the runs in "
            "the store; `docs/reproduce.sh` reruns them (each resumes where it stopped). Every number below is "
            "read from those runs' results.", ""]
    lenet_df = table(lenet[0]) if lenet else pd.DataFrame()
    page += section(f"LeNet-300-100 on MNIST at the paper's budget ({PAPER})", lenet,
                    "lottery run lenet-mnist --levels 15 --replicates 3 --branches imp,reinit,random_prune",
                    lenet_points(lenet_df) if len(lenet_df) and lenet_df.level.max() > 0 else None)
    page += section("MNIST-1D: every control, ablation and method (Greydanus 2020's MLP)", runs_of(root, "mlp-mnist1d-all"),
                    "lottery run mlp-mnist1d-all")
    page += section("A small CNN on MNIST", runs_of(root, "cnn-mnist"), "lottery run cnn-mnist")
    page += section("The MNIST-1D CNN", runs_of(root, "cnn-mnist1d"), "lottery run cnn-mnist1d")
    page += ["The instability analysis of the convolutional networks, and the CIFAR-10 presets: "
             "[convnets.md](convnets.md).", ""]
    (DOCS / "reproductions.md").write_text("\n".join(page))
    print(DOCS / "reproductions.md")


if __name__ == "__main__":
    main()
