"""The commands that read finished (or running) runs: show, plot, report, export, compare, status."""

import sys
from pathlib import Path

from lottery.errors import UsageError


def _find_one(name, store):
    from lottery.store import RunStore

    return RunStore.find(name, store)


def _find(args):
    return _find_one(args.run, args.store)


def _finished_table(store):
    from lottery.analysis.table import table

    df = table(store)
    if df.empty:
        raise UsageError(f"run {store.run_dir} has no finished units yet")
    return df


def cmd_show(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from lottery.analysis.report import results_table

    store = _find(args)
    df = _finished_table(store)
    if args.csv:
        df.to_csv(sys.stdout, index=False)
        return 0
    tbl = results_table(df)
    t = Table(title="mean [95% CI] over seeds", caption=str(store.run_dir))
    for i, col in enumerate(tbl.columns):
        t.add_column(col, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in tbl.itertuples(index=False):
        t.add_row(*map(str, row))
    Console(width=200).print(t)
    return 0


def cmd_plot(args) -> int:
    from lottery.analysis.plots import all_figures
    from lottery.analysis.table import histories

    store = _find(args)
    out = Path(args.out) if args.out else store.run_dir / "figures"
    for path in all_figures(_finished_table(store), histories(store), out).values():
        print(path)
    return 0


def cmd_report(args) -> int:
    from lottery.analysis.report import write_report

    stores = [_find_one(name, args.store) for name in args.runs]
    for s in stores:
        _finished_table(s)
    if not 0 < args.delta < 100:
        raise UsageError(f"--delta {args.delta} must be between 0 and 100 accuracy points")
    html_path, md_path = write_report(stores, args.out, delta=args.delta / 100)
    print(md_path)
    print(html_path)
    return 0


def cmd_export(args) -> int:
    store = _find(args)
    df = _finished_table(store)
    fmt = args.format or ("parquet" if str(args.out).endswith(".parquet") else "csv")
    if fmt == "parquet":
        df.to_parquet(args.out, index=False)
    else:
        df.to_csv(args.out, index=False)
    print(args.out)
    return 0


def cmd_compare(args) -> int:
    from lottery.analysis.compare import compare_runs

    a, b = _find_one(args.run_a, args.store), _find_one(args.run_b, args.store)
    for line in compare_runs(a, b):
        print(line)
    return 0


def cmd_status(args) -> int:
    from lottery.analysis.status import status_lines
    from lottery.store import RunStore, default_root

    if args.run:
        stores = [_find(args)]
    else:
        root = default_root() if args.store is None else Path(args.store)
        stores = [RunStore(p.parent) for p in sorted(root.glob("*/config.json"))] if root.is_dir() else []
        if not stores:
            raise UsageError(f"no runs in store {str(root)!r}")
    for s in stores:
        for line in status_lines(s):
            print(line)
    return 0
