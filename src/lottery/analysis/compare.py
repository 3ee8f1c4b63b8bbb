"""Where two runs differ: their configs, and their results side by side."""

from lottery.analysis.stats import summarise
from lottery.analysis.table import table
from lottery.store import RunStore


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(a: RunStore, b: RunStore) -> list[tuple[str, object, object]]:
    fa, fb = _flatten(a.config().hashed_dict()), _flatten(b.config().hashed_dict())
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def compare_runs(a: RunStore, b: RunStore) -> list[str]:
    lines = [f"A = {a.run_dir}", f"B = {b.run_dir}", "", "config differences (A → B):"]
    diff = config_diff(a, b)
    lines += [f"  {k}: {va!r} → {vb!r}" for k, va, vb in diff] or ["  none: same experiment"]
    ta, tb = table(a), table(b)
    if ta.empty or tb.empty:
        return lines + ["", "results: one of the runs has no finished units yet"]
    sa, sb = summarise(ta), summarise(tb)
    m = sa.merge(sb, on=["branch", "level"], how="outer", suffixes=("_a", "_b"))
    lines += ["", "test accuracy at early stop (%), mean over seeds:",
              f"  {'branch':<13} {'level':>5} {'remain A':>9} {'remain B':>9} {'A':>7} {'B':>7} {'B − A':>7}"]
    for _, r in m.iterrows():
        fa, fb = r.get("fraction_remaining_a"), r.get("fraction_remaining_b")
        acc_a, acc_b = 100 * r.get("test_acc_early_stop_mean_a"), 100 * r.get("test_acc_early_stop_mean_b")
        lines.append(f"  {r.branch:<13} {int(r.level):>5} {100 * fa:>8.1f}% {100 * fb:>8.1f}% "
                     f"{acc_a:>7.2f} {acc_b:>7.2f} {acc_b - acc_a:>+7.2f}")
    return lines
