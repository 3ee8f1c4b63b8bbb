"""How a run shows its progress, on stderr: bars on a terminal; in a batch job (SLURM, nohup, CI:
stderr is not a terminal) a plain line every 30 seconds; and, asked for, TensorBoard event files.
"""

import sys
import time

from lottery.execute import Reporter
from lottery.store import Unit

LINE_SECONDS = 30.0


def reporter_for(quiet: bool, tensorboard=None, stream=None) -> Reporter:
    """The CLI's reporter: bars when `stream` (stderr) is a terminal, else a line every 30 s;
    nothing shown when `quiet`; TensorBoard files in `tensorboard` (a folder) besides."""
    stream = stream or sys.stderr
    shown = [] if quiet else [RichReporter(stream) if stream.isatty() else LineReporter(stream)]
    if tensorboard:
        shown.append(TensorBoardReporter(tensorboard))
    return shown[0] if len(shown) == 1 else Reporters(shown)


class Reporters(Reporter):
    """Several reporters, each told everything."""

    def __init__(self, reporters: list[Reporter]):
        self.reporters = reporters

    def start(self, *args):
        for r in self.reporters:
            r.start(*args)

    def group(self, *args):
        for r in self.reporters:
            r.group(*args)

    def step(self, *args):
        for r in self.reporters:
            r.step(*args)

    def unit_finished(self, *args):
        for r in self.reporters:
            r.unit_finished(*args)

    def units_done(self, *args):
        for r in self.reporters:
            r.units_done(*args)

    def message(self, text):
        for r in self.reporters:
            r.message(text)

    def finish(self):
        for r in self.reporters:
            r.finish()


class _Tally:
    """Units done and the current group's share of its steps: the run's progress as a fraction."""

    def __init__(self):
        self.total = self.done = self.group_units = 0
        self.step, self.steps, self.started, self.metrics = 0, 1, time.monotonic(), None

    def fraction(self) -> float:
        return (self.done + self.group_units * self.step / max(1, self.steps)) / max(1, self.total)

    def eta(self, done_at_start: int) -> float | None:
        """Seconds left at the pace of this invocation (None: too early to say)."""
        worked = self.fraction() - done_at_start / max(1, self.total)
        elapsed = time.monotonic() - self.started
        return elapsed * (1 - self.fraction()) / worked if worked > 0.005 else None


def duration(seconds: float | None) -> str:
    """Seconds as people say them: 40 s, 12 min, 2.5 h ("?" when unknown)."""
    if seconds is None or seconds != seconds:
        return "?"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 else \
        f"{seconds:.0f} s"


class LineReporter(Reporter):
    """A plain line every `every` seconds: level, units done, step, loss and accuracy, ETA."""

    def __init__(self, stream, every: float = LINE_SECONDS):
        self.stream, self.every, self.tally, self.description = stream, every, _Tally(), ""
        self._last = time.monotonic()

    def start(self, total_units, done_units):
        self.tally.total, self.tally.done, self.done_at_start = total_units, done_units, done_units

    def group(self, description, total_steps, units=1):
        self.description, self.tally.steps, self.tally.group_units, self.tally.step = description, total_steps, units, 0

    def step(self, step, total, metrics=None):
        self.tally.step = step
        if metrics:
            self.tally.metrics = metrics
        if time.monotonic() - self._last >= self.every:
            self.line()

    def units_done(self, n):
        self.tally.done, self.tally.group_units = self.tally.done + n, 0

    def message(self, text):
        print(f"lottery: {text}", file=self.stream, flush=True)

    def finish(self):
        self.line()

    def line(self):
        t, self._last = self.tally, time.monotonic()
        parts = [self.description or "starting", f"{t.done}/{t.total} units", f"step {t.step}/{t.steps}"]
        if t.metrics:
            loss = t.metrics["train_loss"]
            parts += ([f"train loss {loss:.4g}"] if loss == loss else []) + [f"val acc {100 * t.metrics['val_acc']:.2f}%"]
        parts.append(f"ETA {duration(t.eta(self.done_at_start))}")
        print("lottery: " + " · ".join(parts), file=self.stream, flush=True)


class RichReporter(Reporter):
    """Bars: units of the whole run, and steps of the group in training with its validation accuracy."""

    REFRESH_SECONDS = 0.2

    def __init__(self, stream=None):
        self.stream, self.progress = stream or sys.stderr, None

    def start(self, total_units, done_units):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[accuracy]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=Console(file=self.stream), transient=False)
        self.progress.start()
        self.units = self.progress.add_task("trainings (level × branch × seed)", total=total_units,
                                            completed=done_units, accuracy="")
        self.steps = None
        self._last = 0.0

    def group(self, description, total_steps, units=1):
        if not self.progress:
            return
        if self.steps is not None:
            self.progress.remove_task(self.steps)
        self.steps = self.progress.add_task(description, total=total_steps, accuracy="")

    def step(self, step, total, metrics=None):
        now = time.monotonic()
        if not self.progress:
            return
        if metrics:
            self.progress.update(self.steps, accuracy=f"val acc {100 * metrics['val_acc']:.2f}%")
        if now - self._last > self.REFRESH_SECONDS or step == total:
            self._last = now
            self.progress.update(self.steps, completed=step)

    def units_done(self, n):
        if self.progress:
            self.progress.advance(self.units, n)

    def message(self, text):
        if self.progress:
            self.progress.console.print(f"lottery: {text}", highlight=False, markup=False)
        else:
            print(f"lottery: {text}", file=self.stream, flush=True)

    def finish(self):
        if self.progress:
            self.progress.stop()
            self.progress = None


class TensorBoardReporter(Reporter):
    """Every evaluation of every finished unit as TensorBoard scalars, one run per unit
    (`<folder>/<branch>/level_LL/seed_S`): train_loss, val_loss and val_acc against the step."""

    def __init__(self, folder):
        from lottery.errors import UsageError

        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install 'lottery[tensorboard]'") from None
        self.folder, self.writer = str(folder), SummaryWriter

    def unit_finished(self, unit: Unit, summary: dict, history: list[dict]):
        with self.writer(f"{self.folder}/{unit.branch}/level_{unit.level:02d}/seed_{unit.seed}") as w:
            for row in history:
                for key in ("train_loss", "val_loss", "val_acc"):
                    if row[key] == row[key]:  # NaN: no training before the first evaluation
                        w.add_scalar(key, row[key], row["step"])
            w.add_scalar("test_acc_early_stop", summary["test_acc_early_stop"], summary["early_stop_step"])
