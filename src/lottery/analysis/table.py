"""The tidy results table: one row per (experiment, branch, level, seed), rebuilt from the store.

Only what a unit's config and seeds determine (and timing, which never repeats): how a unit was
trained (its group, lanes, compiled step, where it resumed) is provenance, kept in its
summary.json, so a resumed run's table equals an uninterrupted one's once timing is set aside."""

import pandas as pd

from lottery import atomic
from lottery.imp.branches import BRANCHES
from lottery.store import RunStore, Unit

COLUMNS = [
    "experiment", "branch", "level", "seed", "fraction_remaining",
    "test_acc_end", "test_acc_early_stop", "val_acc_end", "early_stop_step",
    "steps", "samples", "train_seconds", "rewind_step", "diverged_step",
    "params_total", "params_alive", "train_flops_dense", "train_flops_effective",
    "score_flops", "score_seconds", "find_flops", "find_seconds", "early_bird_step",
    "model_seed", "data_seed", "control_seed", "instability_barrier",
]


def table(store: RunStore) -> pd.DataFrame:
    rows = []
    for s in store.summaries():
        row = {k: s.get(k) for k in COLUMNS}
        row.update({f"density[{layer}]": v for layer, v in s["density"].items()})
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else COLUMNS)
    if rows:
        df = add_find_cost(df, store.config().prune.scope)
        order = {b: i for i, b in enumerate(BRANCHES)}
        df = df.sort_values(["branch", "level", "seed"], key=lambda c: c.map(order) if c.name == "branch" else c,
                            kind="stable").reset_index(drop=True)
    return df


def add_find_cost(df: pd.DataFrame, scope: str) -> pd.DataFrame:
    """`find_flops` / `find_seconds`: compute spent to produce a row's *mask*.

    Each branch names its rule (`lottery.imp.branches`): the IMP mask at level L needs the trainings
    of levels 0..L-1 of that seed, one-shot needs the dense training, a random mask or scores
    at initialisation need no training (plus their scoring compute, `score_flops`). Per-layer
    counts cost nothing when pruning is layerwise (they follow from the rates) but come from the
    ticket's training when it is global.
    """
    imp = df[df.branch == "imp"].sort_values("level")
    cum = {}
    for seed, g in imp.groupby("seed"):
        flops = g.train_flops_effective.cumsum() - g.train_flops_effective
        secs = g.train_seconds.cumsum() - g.train_seconds
        cum.update({(seed, lv): (f, s) for lv, f, s in zip(g.level, flops, secs)})
    dense = {s: (float(f), float(t)) for s, f, t in zip(imp[imp.level == 0].seed, imp[imp.level == 0].train_flops_effective,
                                                         imp[imp.level == 0].train_seconds)}
    costs = []
    zero = 0.0 * df.level
    extra_flops = df["score_flops"].fillna(0.0) if "score_flops" in df else zero
    extra_seconds = df["score_seconds"].fillna(0.0) if "score_seconds" in df else zero
    for b, s, lv, extra_f, extra_s in zip(df.branch, df.seed, df.level, extra_flops, extra_seconds):
        branch = BRANCHES.get(b)
        rule = branch.find if branch else "imp"
        if scope == "global" and branch and branch.counts_from_ticket:
            rule = "imp"  # per-layer counts of a global ticket come from its training
        base = {"imp": cum.get((s, lv)), "dense": dense.get(s), "free": (0.0, 0.0)}[rule]
        base = base if base is not None else (float("nan"), float("nan"))
        costs.append((base[0] + extra_f, base[1] + extra_s))
    df = df.copy()
    df["find_flops"] = [c[0] for c in costs]
    df["find_seconds"] = [c[1] for c in costs]
    return df


def write_csv(store: RunStore) -> pd.DataFrame:
    df = table(store)
    atomic.write_bytes(store.run_dir / "results.csv", df.to_csv(index=False).encode())
    return df


def histories(store: RunStore) -> pd.DataFrame:
    """Every evaluation of every finished unit: branch, level, seed, fraction_remaining, step, losses, val_acc."""
    frames = []
    for s in store.summaries():
        rows = store.history(Unit(s["level"], s["branch"], s["seed"]))
        f = pd.DataFrame(rows)
        for key in ("branch", "level", "seed", "fraction_remaining"):
            f[key] = s[key]
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
