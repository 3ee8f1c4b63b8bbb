"""A rich progress display on stderr: units of the whole run, and steps of the current group."""

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lottery.execute import Reporter


class RichReporter(Reporter):
    REFRESH_SECONDS = 0.2

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.progress = None

    def start(self, total_units, done_units):
        if not self.enabled:
            return
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(file=sys.stderr), transient=False)
        self.progress.start()
        self.units = self.progress.add_task("trainings (level × branch × seed)", total=total_units, completed=done_units)
        self.steps = None
        self._last = 0.0

    def group(self, description, total_steps):
        if not self.progress:
            return
        if self.steps is not None:
            self.progress.remove_task(self.steps)
        self.steps = self.progress.add_task(description, total=total_steps)

    def step(self, step, total):
        now = time.monotonic()
        if self.progress and (now - self._last > self.REFRESH_SECONDS or step == total):
            self._last = now
            self.progress.update(self.steps, completed=step)

    def units_done(self, n):
        if self.progress:
            self.progress.advance(self.units, n)

    def finish(self):
        if self.progress:
            self.progress.stop()
            self.progress = None
