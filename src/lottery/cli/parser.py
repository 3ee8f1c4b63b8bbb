"""The command line's grammar: every command, flag and help text."""

import argparse

from lottery.cli.run import cmd_branches, cmd_presets, cmd_run
from lottery.cli.runs import (
    cmd_compare,
    cmd_export,
    cmd_plot,
    cmd_report,
    cmd_show,
    cmd_status,
    cmd_ticket,
)
from lottery.version import __version__


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake said in one line (and where the help is) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lottery", description="Find, verify and study lottery tickets.")
    p.add_argument("--version", action="version", version=f"lottery {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

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
                        "by seed (by branch when there is one seed); default: one per thread, up to the units; "
                        "the numbers are the same either way")
    r.add_argument("--checkpoint-every", type=int, default=500, help="steps between in-training checkpoints")
    r.add_argument("--no-vectorise", action="store_true", help="train units one at a time")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local (default): on this machine; ray: as Ray tasks, on a local Ray instance or the "
                        "cluster at --address (needs the extra: pip install 'lottery[ray]'; docs/cluster.md)")
    r.add_argument("--address", metavar="HOST:PORT", help="with --executor ray: the Ray cluster's head to join")
    r.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                   help="with --executor ray: the CPUs (torch threads) each task asks for (default 1)")
    r.add_argument("--engine", default="auto", metavar="STACK",
                   help="how replicates are stacked (lottery.engine.stacked): auto (default) picks hand-written "
                        "kernels for ReLU MLPs, each replicate's own module calls in lanes for other models, one "
                        "replicate at a time for models with randomness (dropout); or name one: mlp, modules, "
                        "loop, vmap (vmap's numbers depend on the group: see --layout-dependent)")
    r.add_argument("--layout-dependent", action="store_true",
                   help="allow the faster paths whose numbers depend on which units train together and on the "
                        "threads: a unit training alone on all threads, vmap for models that do not convolve "
                        "(recorded with the run; by default a unit's numbers depend on its config, seeds and "
                        "device alone)")
    r.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    r.add_argument("--no-cuda-graphs", action="store_true",
                   help="on a GPU, launch the MLP engine's kernels one by one instead of replaying a CUDA graph "
                        "(slower; its learning rate is not rounded to float32)")
    r.add_argument("--no-script", action="store_true",
                   help="on the CPU, run the MLP engine's kernels from Python instead of as one TorchScript "
                        "function (same numbers; slower, most in lanes)")
    r.add_argument("--tensorboard", metavar="DIR",
                   help="also write every evaluation of every unit to TensorBoard event files in DIR "
                        "(needs the extra: pip install 'lottery[tensorboard]')")
    r.add_argument("--quiet", action="store_true",
                   help="no progress display (by default: bars on a terminal, else a line every 30 s)")
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
            s.add_argument("--out", required=True, help="output file (.csv, .json or .parquet)")
            s.add_argument("--format", choices=("csv", "json", "parquet"), help="default: from the file name")
        s.set_defaults(func=func)

    tk = sub.add_parser("ticket", help="write a run's ticket to a file (weights, mask, provenance)",
                        description="Write one unit's ticket as a small, checked safetensors file: its trained "
                                    "sparse weights (or with --at-init its starting weights and mask: the ticket to "
                                    "train again), its architecture and where it came from. Load it with "
                                    "lottery.load_ticket(path).")
    tk.add_argument("run", help=run_help)
    tk.add_argument("--level", default="matching",
                    help="a level number, or 'matching' (default): the sparsest level the verdict calls matching")
    tk.add_argument("--seed", type=int, help="the seed (default: the run's first)")
    tk.add_argument("--branch", default="imp", help="the branch (default imp: the ticket itself)")
    tk.add_argument("--at-init", action="store_true", help="the starting (rewound) weights instead of the trained ones")
    tk.add_argument("--out", required=True, help="the file to write (.safetensors)")
    tk.add_argument("--store", help=store_help)
    tk.set_defaults(func=cmd_ticket)

    rp = sub.add_parser("report", help="HTML + Markdown report of one or more runs",
                        description="Write DIR/report.html (self-contained) and DIR/report.md for one or more runs.")
    rp.add_argument("runs", nargs="+", metavar="RUN", help=run_help)
    rp.add_argument("--out", required=True, help="output folder")
    rp.add_argument("--delta", type=float, default=0.5, help="matching margin in accuracy points (default 0.5)")
    rp.add_argument("--seeds", help="the seeds to use, e.g. 0,1,2 (default: every seed each run holds)")
    rp.add_argument("--store", help=store_help)
    rp.set_defaults(func=cmd_report)

    cp = sub.add_parser("compare", help="where two runs differ: config and results side by side",
                        description="Show the config differences of two runs and their results side by side.")
    cp.add_argument("run_a", metavar="RUN_A", help=run_help)
    cp.add_argument("run_b", metavar="RUN_B", help=run_help)
    cp.add_argument("--store", help=store_help)
    cp.set_defaults(func=cmd_compare)
    return p
