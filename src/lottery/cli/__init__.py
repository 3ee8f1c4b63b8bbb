"""The `lottery` command: parses, calls, prints. User mistakes: one line on stderr, exit code 2.

    parser.py  every command, flag and help text
    run.py     lottery run, presets, branches
    runs.py    lottery show, plot, report, export, compare, status (reading a store)

Each command imports what it needs when it runs, so `lottery --help` and `lottery show` stay quick.
"""

import os
import sys
import warnings

from lottery.cli.parser import build_parser
from lottery.cli.run import usable_cores
from lottery.errors import LotteryError, LotteryWarning

__all__ = ["build_parser", "entry", "main", "usable_cores"]
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a command killed by SIGPIPE: `lottery show --csv | head`


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our warnings as one line of ours; anyone else's as Python shows them."""
    if issubclass(category, LotteryWarning):
        print(f"lottery: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `lottery`: what it can do
        parser.print_help()
        return 0
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except LotteryError as e:
        print(f"lottery: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lottery: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, and let nothing flush into the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        warnings.showwarning = _python_show_warning


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
