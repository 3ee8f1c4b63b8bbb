"""The commands that read finished (or running) runs: show, plot, report, export, compare, status."""

import sys
from pathlib import Path

from lottery.errors import UsageError


def _find_one(name, store):
    from lottery.store import RunStore

    return RunStore.find(name, store)


def _find(args):
    return _find_one(args.run, args.store)


def _output_folder(out) -> Path:
    """--out as a folder this command can write, checked before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (it is made if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot use it as a folder ({e.strerror or e})") from None
    return out


def _finished_table(store):
    from lottery.analysis.table import table

    df = table(store)
    if df.empty:
        raise UsageError(f"run {store.run_dir} has no finished units yet")
    return df


# columns `show` leaves out, in this order, until its table fits the terminal
NARROW_DROPS = ("find s", "find GFLOPs", "early-stop step", "test acc end (%)")


def cmd_show(args) -> int:
    from rich.console import Console

    store = _find(args)
    df = _finished_table(store)
    if args.csv:
        df.to_csv(sys.stdout, index=False)
        return 0
    console = Console()  # the terminal's width ($COLUMNS when set), 80 when not a terminal
    table, dropped = _fitting_table(df, store, console)
    console.print(table)
    if dropped:
        console.print(f"(left out for width: {', '.join(dropped)}; `lottery show --csv` has every column)",
                      highlight=False, markup=False)
    return 0


def _fitting_table(df, store, console):
    """The results as a rich table whose rows fit `console` unwrapped, and the columns left out."""
    from rich.table import Table

    from lottery.analysis.summary import results_table

    tbl = results_table(df)
    seeds = ", ".join(map(str, sorted(df.seed.unique())))
    dropped = []
    for drop in (None, *NARROW_DROPS):
        if drop:
            tbl, dropped = tbl.drop(columns=[drop]), [*dropped, drop]
        t = Table(title=f"mean [95% CI] over seeds {seeds}", caption=str(store.run_dir), caption_justify="left")
        for i, col in enumerate(tbl.columns):
            t.add_column(col, justify="left" if i == 0 else "right", no_wrap=True)
        for row in tbl.itertuples(index=False):
            t.add_row(*map(str, row))
        if console.measure(t, options=console.options.update(max_width=10_000)).maximum <= console.width:
            break
    return t, dropped


def cmd_plot(args) -> int:
    from lottery.analysis.plots import all_figures
    from lottery.analysis.table import histories

    store = _find(args)
    out = _output_folder(args.out) if args.out else store.run_dir / "figures"
    for path in all_figures(_finished_table(store), histories(store), out).values():
        print(path)
    return 0


def cmd_report(args) -> int:
    from lottery.analysis.report import write_report
    from lottery.cli.run import parse_seeds

    stores = [_find_one(name, args.store) for name in args.runs]
    _output_folder(args.out)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    for s in stores:
        df = _finished_table(s)
        if seeds is not None and not set(seeds) <= set(df.seed):
            raise UsageError(f"--seeds {args.seeds}: run {s.run_dir.name} holds seeds "
                             f"{', '.join(map(str, sorted(df.seed.unique())))}")
    if not 0 < args.delta < 100:
        raise UsageError(f"--delta {args.delta} must be between 0 and 100 accuracy points")
    html_path, md_path = write_report(stores, args.out, delta=args.delta / 100, seeds=seeds)
    print(md_path)
    print(html_path)
    return 0


EXPORT_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


def cmd_export(args) -> int:
    fmt = args.format or EXPORT_FORMATS.get(Path(args.out).suffix.lower())
    if fmt is None:
        raise UsageError(f"--out {args.out}: cannot tell the format from the name; use a .csv, .json or .parquet "
                         "file name, or --format csv|json|parquet")
    store = _find(args)
    df = _finished_table(store)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401  (pandas writes Parquet through it)
        except ImportError:
            raise UsageError("Parquet needs pyarrow: pip install 'lottery[parquet]' (or export .csv or .json)") from None
        import io

        buffer = io.BytesIO()
        df.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    elif fmt == "json":
        data = df.to_json(orient="records", indent=1).encode()  # one object per row, NaN as null
    else:
        data = df.to_csv(index=False).encode()
    from lottery import atomic

    atomic.write_bytes(Path(args.out), data)  # whole or not at all
    print(args.out)
    return 0


def cmd_ticket(args) -> int:
    from lottery.sparse import ticket_file
    from lottery.store import Unit

    store = _find(args)
    df = _finished_table(store)
    seed = args.seed if args.seed is not None else int(sorted(df.seed.unique())[0])
    if args.level == "matching":
        from lottery.analysis.verdict import verdict

        v = verdict(df)
        if v.status != "matching":
            raise UsageError(f"the verdict names no matching level ({v.lines()[0]}); give --level N")
        level = v.level
    else:
        try:
            level = int(args.level)
        except ValueError:
            raise UsageError(f"--level {args.level!r} must be a level number or 'matching'") from None
    size = ticket_file.write(Path(args.out), *ticket_file.from_store(store, Unit(level, args.branch, seed),
                                                                      at_init=args.at_init))
    dense = sum(4 * t.numel() for t in store.weights(Unit(0, "imp", seed), "final").values())
    print(f"{args.out}: {args.branch} level {level} seed {seed}, {'starting' if args.at_init else 'trained'} "
          f"weights; {size:,} bytes, {size / dense:.1%} of the dense network's {dense:,}", file=sys.stderr)
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
