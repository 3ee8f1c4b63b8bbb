"""`lottery run|presets|show|plot`. User mistakes: one line on stderr, exit code 2."""

import argparse
import os
import sys
from dataclasses import replace

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


def _set_threads(threads: int | None) -> None:
    import torch

    n = threads or os.cpu_count() or 1
    if n < 1:
        raise UserError(f"--threads {n} must be at least 1")
    torch.set_num_threads(n)


def cmd_presets(args) -> int:
    from lottery.presets import PRESETS

    for name, preset in PRESETS.items():
        print(f"{name}\n    {preset.description}\n    config hash {preset.config.hash()}")
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
    from lottery.analysis.plots import accuracy_figure
    from lottery.analysis.summary import headline
    from lottery.lottery import Experiment, RunOptions
    from lottery.progress import RichReporter
    from lottery.results import write_csv
    from lottery.store import RunStore

    cfg = resolve_config(args)
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every {args.checkpoint_every} must be at least 1")
    _set_threads(args.threads)
    options = RunOptions(store=args.store, data_dir=args.data_dir, checkpoint_every=args.checkpoint_every,
                         vectorise=not args.no_vectorise)
    reporter = RichReporter(enabled=not args.quiet)
    exp = Experiment(cfg, options, reporter=reporter)
    print(f"run {exp.store.run_dir} (config hash {cfg.hash()}): {cfg.levels} levels, seeds "
          f"{','.join(map(str, cfg.seeds))}, branches {','.join(cfg.branches)}", file=sys.stderr)
    run_dir = exp.run()
    df = write_csv(RunStore(run_dir))
    accuracy_figure(df, run_dir / "accuracy.png")
    for line in headline(df):
        print(line)
    print(f"table: {run_dir / 'results.csv'}\nfigure: {run_dir / 'accuracy.png'}")
    print(run_dir)
    return 0


def _find(args):
    from lottery.store import RunStore

    return RunStore.find(args.run, args.store)


def cmd_show(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from lottery.results import aggregate, table

    store = _find(args)
    df = table(store)
    if df.empty:
        raise UserError(f"run {store.run_dir} has no finished units yet")
    if args.csv:
        df.to_csv(sys.stdout, index=False)
        return 0
    t = Table(title="test accuracy (%), mean ± std over seeds", caption=str(store.run_dir))
    t.add_column("branch", no_wrap=True, min_width=12)
    for col in ("level", "remain %", "n", "early stop", "end", "ES step"):
        t.add_column(col, justify="right", no_wrap=True)

    def pm(row, m, scale=100, digits=2):
        std = row[f"{m}_std"]
        return f"{scale * row[f'{m}_mean']:.{digits}f}" + ("" if std != std else f" ± {scale * std:.{digits}f}")

    for _, r in aggregate(df).iterrows():
        t.add_row(r.branch, str(r.level), f"{100 * r.fraction_remaining:.1f}", str(r.n), pm(r, "test_acc_early_stop"),
                  pm(r, "test_acc_end"), pm(r, "early_stop_step", 1, 0))
    Console().print(t)
    return 0


def cmd_plot(args) -> int:
    from lottery.analysis.plots import accuracy_figure
    from lottery.results import table

    store = _find(args)
    df = table(store)
    if df.empty:
        raise UserError(f"run {store.run_dir} has no finished units yet")
    out = args.out or store.run_dir / "accuracy.png"
    accuracy_figure(df, out)
    print(out)
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
    r.add_argument("--branches", help="comma-separated: imp,reinit,random_prune")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.lr=0.01 (repeatable)")
    r.add_argument("--store", type=str, help="store directory (default $LOTTERY_STORE or ./runs)")
    r.add_argument("--data-dir", help="folder holding mnist/ (default $LOTTERY_DATA_DIR, then cache, then download)")
    r.add_argument("--threads", type=int, help="torch threads (default: the machine's cores)")
    r.add_argument("--checkpoint-every", type=int, default=500, help="steps between in-training checkpoints")
    r.add_argument("--no-vectorise", action="store_true", help="train units one at a time")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    pr = sub.add_parser("presets", help="list the named experiments", description="List the named experiments.")
    pr.set_defaults(func=cmd_presets)

    for name, func, text in (("show", cmd_show, "table of a run's results"), ("plot", cmd_plot, "draw a run's figure")):
        s = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        s.add_argument("run", help="run directory, or its hash (prefix) in the store")
        s.add_argument("--store", help="store directory (default $LOTTERY_STORE or ./runs)")
        if name == "show":
            s.add_argument("--csv", action="store_true", help="print the tidy table as CSV")
        else:
            s.add_argument("--out", help="output file (default RUN/accuracy.png)")
        s.set_defaults(func=func)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
