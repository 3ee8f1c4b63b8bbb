"""The `lottery` command: parses, calls, prints. User mistakes: one line on stderr, exit code 2.

Exit codes: 0 done; 2 a mistake the user can fix (a flag, a setting, a file, a place that cannot
be written, a full disk); 3 the run finished but some trainings diverged; 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM), either way resumable by the same command; 141 the reader of
stdout left (`| head`). Anything else is a bug of ours, with its traceback.

    parser.py  every command, flag and help text
    run.py     lottery run, presets, branches
    runs.py    lottery show, plot, report, export, compare, status (reading a store)

Each command imports what it needs when it runs, so `lottery --help` and `lottery show` stay quick.
"""

import errno
import os
import signal
import sys
import warnings
from contextlib import contextmanager

from lottery.cli.parser import build_parser
from lottery.cli.run import usable_cores
from lottery.errors import LotteryError, LotteryWarning

__all__ = ["build_parser", "entry", "main", "usable_cores"]
EXIT_USAGE = 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM
EXIT_BROKEN_PIPE = 128 + 13  # as a command killed by SIGPIPE: `lottery show --csv | head`
NEEDS_TORCH = {"run"}  # commands whose first act is to import torch (see `_deferred_signals`)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): handled as Ctrl-C is, everything written kept."""


def _terminate(signum, frame):
    raise Terminated


@contextmanager
def _deferred_signals():
    """Ctrl-C or SIGTERM while torch's C++ extension loads (the first second or two) used to end in
    a traceback from inside the import, once in a crash: held until the import is over instead."""
    seen = []
    previous = {s: signal.signal(s, lambda signum, frame: seen.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if seen:
        raise Terminated if seen[0] == signal.SIGTERM else KeyboardInterrupt


def _os_error(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{where}the disk is full ({e.strerror}); every finished unit is kept: free some space and run the "
                "same command again")
    return f"cannot use {where}{e.strerror or e}"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our warnings as one line of ours; anyone else's as Python shows them."""
    if issubclass(category, LotteryWarning):
        print(f"lottery: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a mistake argparse has already said in one line
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:  # bare `lottery`: what it can do
        parser.print_help()
        return 0
    warnings.showwarning = _show_warning
    on_term = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
    try:
        if args.command in NEEDS_TORCH and on_term is not None:
            with _deferred_signals():
                import torch  # noqa: F401
        return args.func(args)
    except LotteryError as e:
        print(f"lottery: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("lottery: terminated (SIGTERM); run the same command again to resume", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("lottery: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, and let nothing flush into the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as e:  # a place that cannot be written, a full disk: the store keeps what it finished
        print(f"lottery: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = _python_show_warning
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def entry() -> None:
    """The `lottery` program: `main`, then straight out. Everything it wrote is flushed and synced
    first (the store syncs its own files); skipping the interpreter's teardown of torch, pandas and
    matplotlib saves about 0.3 s a command. Python callers use `main`, which returns."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that left, a stream already closed
            pass
    os._exit(code)
