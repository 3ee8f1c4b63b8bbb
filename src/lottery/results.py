"""The tidy results table: one row per (experiment, branch, level, seed), rebuilt from the store."""

import pandas as pd

from lottery.store import RunStore

COLUMNS = ["experiment", "branch", "level", "seed", "fraction_remaining", "test_acc_end", "test_acc_early_stop",
           "val_acc_end", "early_stop_step", "steps", "train_seconds", "group_size", "resumed_from_step", "rewind_step",
           "model_seed", "data_seed", "control_seed"]


def table(store: RunStore) -> pd.DataFrame:
    rows = []
    for s in store.summaries():
        row = {k: s.get(k) for k in COLUMNS}
        row.update({f"density[{layer}]": v for layer, v in s["density"].items()})
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else COLUMNS)
    if rows:
        df = df.sort_values(["branch", "level", "seed"], kind="stable").reset_index(drop=True)
    return df


def write_csv(store: RunStore) -> pd.DataFrame:
    df = table(store)
    df.to_csv(store.run_dir / "results.csv", index=False)
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Per (branch, level): mean and standard deviation over seeds, and the number of seeds."""
    metrics = ["test_acc_early_stop", "test_acc_end", "early_stop_step"]
    g = df.groupby(["branch", "level"], sort=False)
    out = g.agg(fraction_remaining=("fraction_remaining", "mean"), n=("seed", "count"),
                **{f"{m}_mean": (m, "mean") for m in metrics}, **{f"{m}_std": (m, "std") for m in metrics})
    return out.reset_index()
