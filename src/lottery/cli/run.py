"""`lottery run`, and the catalogues it draws from: `lottery presets`, `lottery branches`."""

import os
import sys
from dataclasses import replace

from lottery.errors import UsageError


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the host's count."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return usable or 1


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--seeds {text!r} must be comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise UsageError("--seeds needs at least one seed")
    return seeds


def _set_threads(threads: int | None) -> None:
    import torch

    n = threads if threads is not None else usable_cores()
    if n < 1:
        raise UsageError(f"--threads {n} must be at least 1")
    torch.set_num_threads(n)


def cmd_presets(args) -> int:
    from lottery.presets import PRESETS

    for name, preset in PRESETS.items():
        print(f"{name}\n    {preset.description}\n    config hash {preset.config.hash()}")
    return 0


def cmd_branches(args) -> int:
    from lottery.imp.branches import BRANCHES

    for b in BRANCHES.values():
        print(f"{b.name:<15} {b.summary}\n{'':<15} source: {b.source}; cost to find the mask: {b.cost}")
    return 0


def resolve_config(args):
    """The preset with the command line's changes, its names checked against the registries."""
    from lottery.config import override
    from lottery.imp.driver import check_names
    from lottery.presets import PRESETS

    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)} (see `lottery presets`)")
    cfg = override(PRESETS[args.preset].config, args.set or [])
    changes = {}
    if args.levels is not None:
        changes["levels"] = args.levels
    if args.seeds is not None and args.replicates is not None:
        raise UsageError("give --seeds or --replicates, not both")
    if args.seeds is not None:
        changes["seeds"] = parse_seeds(args.seeds)
    if args.replicates is not None:
        if args.replicates < 1:
            raise UsageError(f"--replicates {args.replicates} must be at least 1")
        changes["seeds"] = tuple(range(args.replicates))
    if args.branches is not None:
        changes["branches"] = tuple(b.strip() for b in args.branches.split(",") if b.strip())
    cfg = replace(cfg, **changes) if changes else cfg
    check_names(cfg)
    return cfg


def cmd_run(args) -> int:
    from lottery import engine
    from lottery.imp.driver import RunOptions

    cfg = resolve_config(args)
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every {args.checkpoint_every} must be at least 1")
    if args.lanes is not None and args.lanes < 1:
        raise UsageError(f"--lanes {args.lanes} must be at least 1 (1: no lanes)")
    _set_threads(args.threads)
    how = engine.Options(device=args.device, stack=args.engine, script=not args.no_script,
                         cuda_graphs=not args.no_cuda_graphs, lanes=args.lanes, checkpoint_every=args.checkpoint_every,
                         independent=not args.layout_dependent)
    if args.address and args.executor != "ray":
        raise UsageError("--address names a Ray cluster: use it with --executor ray")
    options = RunOptions(store=args.store, data_dir=args.data_dir, engine=how, vectorise=not args.no_vectorise,
                         executor=args.executor, address=args.address, cpus_per_task=args.cpus_per_task)
    rewinds = [k.strip() for k in args.rewind_steps.split(",") if k.strip()] if args.rewind_steps else []
    configs = [replace(cfg, rewind_step=k) for k in rewinds] or [cfg]
    from lottery.imp.driver import Experiment
    from lottery.progress import reporter_for

    reporter = reporter_for(args.quiet, args.tensorboard)
    experiments = [Experiment(c, options, reporter=reporter) for c in configs]  # every point checked before any work
    run_dirs = [_run_one(exp) for exp in experiments]
    if len(run_dirs) > 1:  # one report comparing the rewinding points side by side
        from lottery.analysis.report import write_report

        html_path, _ = write_report([e.store for e in experiments], run_dirs[-1] / "report-rewinding", seeds=cfg.seeds)
        print(f"rewinding comparison: {html_path}")
    for d in run_dirs:
        print(d)
    units = [u for e in experiments for u in e.diverged_units()]
    if units:
        print(f"lottery: {len(units)} unit(s) diverged (their loss stopped being finite), e.g. {units[0]}: see the "
              "verdict and the diverged_step column of results.csv; a lower learning rate may help", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


EXIT_DIVERGED = 3  # the run finished, but some trainings diverged: their numbers are not a ticket's


def _run_one(exp):
    """One experiment: run it, then its table, verdict (on the seeds asked for), figure and report."""
    from lottery import atomic

    cfg = exp.cfg
    print(f"run {exp.store.run_dir} (config hash {cfg.hash()}): {cfg.levels} levels, seeds "
          f"{','.join(map(str, cfg.seeds))}, branches {','.join(cfg.branches)}, rewind_step {cfg.rewind_step}",
          file=sys.stderr)
    run_dir = exp.run()
    from lottery.analysis.report import write_report
    from lottery.analysis.table import write_csv
    from lottery.analysis.verdict import verdicts

    store = exp.store  # the store that checked the units as they were trained
    df = write_csv(store)  # every unit the store holds; the verdict, figure and report: the seeds asked for
    vs = verdicts(df, seeds=cfg.seeds)
    for line in [line for v in vs for line in v.lines()] + [vs[0].rule]:
        print(line)
    html_path, _ = write_report([store], run_dir / "report", seeds=cfg.seeds)
    atomic.write_bytes(run_dir / "accuracy.png", (html_path.parent / "figures" / run_dir.name / "accuracy.png").read_bytes())
    print(f"table: {run_dir / 'results.csv'}\nfigure: {run_dir / 'accuracy.png'}\nreport: {html_path}")
    return run_dir
