"""`lottery run|presets|show|plot`. User mistakes: one line on stderr, exit code 2."""

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

EXIT_USAGE = 2


class UserError(Exception):
    pass


def _user_errors():
    from lottery.config import ConfigError
    from lottery.data.mnist import DataError
    from lottery.store import StoreError

    return (UserError, ConfigError, DataError, StoreError)


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds {text!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    return seeds


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the host's count."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return usable or 1


def _set_threads(threads: int | None) -> None:
    import torch

    n = threads if threads is not None else usable_cores()
    if n < 1:
        raise UserError(f"--threads {n} must be at least 1")
    torch.set_num_threads(n)


def cmd_presets(args) -> int:
    from lottery.presets import PRESETS

    for name, preset in PRESETS.items():
        print(f"{name}\n    {preset.description}\n    config hash {preset.config.hash()}")
    return 0


def cmd_branches(args) -> int:
    from lottery.branches import BRANCHES

    for b in BRANCHES.values():
        print(f"{b.name:<15} {b.summary}\n{'':<15} source: {b.source}; cost to find the mask: {b.find}")
    return 0


def resolve_config(args):
    from lottery.config import override
    from lottery.presets import PRESETS

    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)} (see `lottery presets`)")
    cfg = override(PRESETS[args.preset].config, args.set or [])
    changes = {}
    if args.levels is not None:
        changes["levels"] = args.levels
    if args.seeds is not None and args.replicates is not None:
        raise UserError("give --seeds or --replicates, not both")
    if args.seeds is not None:
        changes["seeds"] = _parse_seeds(args.seeds)
    if args.replicates is not None:
        if args.replicates < 1:
            raise UserError(f"--replicates {args.replicates} must be at least 1")
        changes["seeds"] = tuple(range(args.replicates))
    if args.branches is not None:
        changes["branches"] = tuple(b.strip() for b in args.branches.split(",") if b.strip())
    return replace(cfg, **changes) if changes else cfg


def cmd_run(args) -> int:
    from dataclasses import replace as with_changes

    from lottery.analysis.report import write_report
    from lottery.lottery import RunOptions
    from lottery.store import RunStore

    cfg = resolve_config(args)
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every {args.checkpoint_every} must be at least 1")
    if args.lanes is not None and args.lanes < 1:
        raise UserError(f"--lanes {args.lanes} must be at least 1 (1: no lanes)")
    _set_threads(args.threads)
    options = RunOptions(store=args.store, data_dir=args.data_dir, checkpoint_every=args.checkpoint_every,
                         vectorise=not args.no_vectorise, engine=args.engine, device=args.device,
                         cuda_graphs=not args.no_cuda_graphs, script=not args.no_script,
                         lanes=args.lanes)
    rewinds = [k.strip() for k in args.rewind_steps.split(",") if k.strip()] if args.rewind_steps else []
    configs = [with_changes(cfg, rewind_step=k) for k in rewinds] or [cfg]
    run_dirs = [_run_one(c, options, args.quiet) for c in configs]
    if len(run_dirs) > 1:  # one report comparing the rewinding points side by side
        html_path, _ = write_report([RunStore(d) for d in run_dirs], run_dirs[-1] / "report-rewinding")
        print(f"rewinding comparison: {html_path}")
    for d in run_dirs:
        print(d)
    return 0


def _run_one(cfg, options, quiet: bool):
    from lottery.analysis.plots import accuracy_figure
    from lottery.analysis.report import write_report
    from lottery.analysis.verdict import verdicts
    from lottery.lottery import Experiment
    from lottery.progress import RichReporter
    from lottery.results import write_csv
    from lottery.store import RunStore

    exp = Experiment(cfg, options, reporter=RichReporter(enabled=not quiet))
    print(f"run {exp.store.run_dir} (config hash {cfg.hash()}): {cfg.levels} levels, seeds "
          f"{','.join(map(str, cfg.seeds))}, branches {','.join(cfg.branches)}, rewind_step {cfg.rewind_step}",
          file=sys.stderr)
    run_dir = exp.run()
    store = RunStore(run_dir)
    df = write_csv(store)
    vs = verdicts(df)
    for line in [line for v in vs for line in v.lines()] + [vs[0].rule]:
        print(line)
    accuracy_figure(df, run_dir)
    html_path, _ = write_report([store], run_dir / "report")
    print(f"table: {run_dir / 'results.csv'}\nfigure: {run_dir / 'accuracy.png'}\nreport: {html_path}")
    return run_dir


def _find_one(name, store):
    from lottery.store import RunStore

    return RunStore.find(name, store)


def _find(args):
    return _find_one(args.run, args.store)


def _finished_table(store):
    from lottery.results import table

    df = table(store)
    if df.empty:
        raise UserError(f"run {store.run_dir} has no finished units yet")
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
    from lottery.results import histories

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
        raise UserError(f"--delta {args.delta} must be between 0 and 100 accuracy points")
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
            raise UserError(f"no runs in store {str(root)!r}")
    for s in stores:
        for line in status_lines(s):
            print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lottery", description="Find, verify and study lottery tickets.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="run (or resume) an IMP experiment with its controls",
                       description="Run, or resume, an iterative-magnitude-pruning experiment with its controls. "
                                   "Prints the run directory as the last line of standard output.")
    r.add_argument("preset", help="a named experiment (see `lottery presets`)")
    r.add_argument("--levels", type=int, help="pruning levels after the dense training")
    r.add_argument("--seeds", help="comma-separated experiment seeds, e.g. 0,1,2")
    r.add_argument("--replicates", type=int, help="N seeds: 0..N-1")
    r.add_argument("--branches", help="comma-separated, e.g. imp,reinit,random_prune,snip (see `lottery branches`)")
    r.add_argument("--rewind-steps", metavar="K,K,...",
                   help="run once per rewinding point (steps or epochs, e.g. 0,100,2ep) and compare them")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.lr=0.01 (repeatable)")
    r.add_argument("--store", type=str, help="store directory (default $LOTTERY_STORE or ./runs)")
    r.add_argument("--data-dir", help="folder holding mnist/ (default $LOTTERY_DATA_DIR, then cache, then download)")
    r.add_argument("--threads", type=int, help="torch threads (default: the cores this process may use)")
    r.add_argument("--lanes", type=int,
                   help="on the CPU, train each level in this many single-threaded lanes side by side, split "
                        "by seed (by branch when there is one seed); default: one per thread when there are at "
                        "least as many seeds (or branches), else 1; 1: one program on all threads")
    r.add_argument("--checkpoint-every", type=int, default=500, help="steps between in-training checkpoints")
    r.add_argument("--no-vectorise", action="store_true", help="train units one at a time")
    r.add_argument("--engine", choices=("auto", "mlp", "vmap", "loop"), default="auto",
                   help="auto: hand-written kernels for ReLU MLPs, torch.func.vmap for other models, one "
                        "replicate at a time (loop) for models vmap cannot run (dropout, ops vmap lacks)")
    r.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    r.add_argument("--no-cuda-graphs", action="store_true",
                   help="on a GPU, launch the MLP engine's kernels one by one instead of replaying a CUDA graph "
                        "(slower; its learning rate is not rounded to float32)")
    r.add_argument("--no-script", action="store_true",
                   help="on the CPU, run the MLP engine's kernels from Python instead of as one TorchScript "
                        "function (same numbers; slower, most in lanes)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    pr = sub.add_parser("presets", help="list the named experiments", description="List the named experiments.")
    pr.set_defaults(func=cmd_presets)
    br = sub.add_parser("branches", help="list the branches (controls, ablations, methods)",
                        description="List every branch with what it is and the paper it comes from.")
    br.set_defaults(func=cmd_branches)

    store_help = "store directory (default $LOTTERY_STORE or ./runs)"
    run_help = "run directory, or its hash (prefix) in the store"
    for name, func, text in (("show", cmd_show, "table of a run's results"),
                             ("plot", cmd_plot, "draw a run's figures (PNG and SVG)"),
                             ("export", cmd_export, "write a run's tidy table as CSV or Parquet"),
                             ("status", cmd_status, "progress of a running or interrupted run, from the store")):
        s = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        s.add_argument("run", nargs="?" if name == "status" else None, help=run_help)
        s.add_argument("--store", help=store_help)
        if name == "show":
            s.add_argument("--csv", action="store_true", help="print the tidy table as CSV")
        elif name == "plot":
            s.add_argument("--out", help="output folder (default RUN/figures)")
        elif name == "export":
            s.add_argument("--out", required=True, help="output file (.csv or .parquet)")
            s.add_argument("--format", choices=("csv", "parquet"), help="default: from the file name")
        s.set_defaults(func=func)

    rp = sub.add_parser("report", help="HTML + Markdown report of one or more runs",
                        description="Write DIR/report.html (self-contained) and DIR/report.md for one or more runs.")
    rp.add_argument("runs", nargs="+", metavar="RUN", help=run_help)
    rp.add_argument("--out", required=True, help="output folder")
    rp.add_argument("--delta", type=float, default=0.5, help="matching margin in accuracy points (default 0.5)")
    rp.add_argument("--store", help=store_help)
    rp.set_defaults(func=cmd_report)

    cp = sub.add_parser("compare", help="where two runs differ: config and results side by side",
                        description="Show the config differences of two runs and their results side by side.")
    cp.add_argument("run_a", metavar="RUN_A", help=run_help)
    cp.add_argument("run_b", metavar="RUN_B", help=run_help)
    cp.add_argument("--store", help=store_help)
    cp.set_defaults(func=cmd_compare)
    return p


def main(argv=None) -> int:
    import logging

    args = build_parser().parse_args(argv)
    logging.basicConfig(format="lottery: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        return args.func(args)
    except _user_errors() as e:
        print(f"lottery: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lottery: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
