"""The seam's two sides: what the driver offers (`Work`, its `Job`s) and what an executor does."""

from dataclasses import dataclass, field
from typing import Protocol

from torch import nn

from lottery import engine
from lottery.config import TrainConfig
from lottery.data import Dataset
from lottery.engine import Plan, Replicate, ReplicateResult
from lottery.store import Checkpoint, Unit


@dataclass
class Job:
    """A unit ready to train: its replicate (starting weights, mask, seeds) and its schedule."""

    unit: Unit
    replicate: Replicate
    start_step: int = 0  # a rewound unit continues from the rewind step
    snapshot_steps: tuple[int, ...] = ()
    lr_mode: str = "schedule"
    record: dict = field(default_factory=dict)  # the driver's own columns for the unit; executors pass it on


def group_of(jobs: list[Job], template: nn.Module, data: Dataset, train_config: TrainConfig,
             augment: str) -> engine.Group:
    """The engine's group that trains `jobs` together (they share start step, snapshots and rate mode)."""
    first = jobs[0]
    return engine.Group(template, [j.replicate for j in jobs], data, train_config, start_step=first.start_step,
                        snapshot_steps=first.snapshot_steps, lr_mode=first.lr_mode, augment=augment)


class Reporter:
    """Progress hooks of a run (lottery.progress has the CLI's; this one says nothing).

    start            the run begins: how many units in all, how many already done
    group            a group of `units` units starts training, `total_steps` steps each
    step             the group's steps so far; `metrics` after an evaluation: the group's mean
                     `train_loss` and `val_acc` there
    unit_finished    a unit is written: its summary and its history (every evaluation)
    units_done       n more units are done
    message          a line worth telling the user (waiting for another process, a unit set aside)
    finish           the run ends (finished or not)"""

    def start(self, total_units: int, done_units: int) -> None: ...
    def group(self, description: str, total_steps: int, units: int = 1) -> None: ...
    def step(self, step: int, total: int, metrics: dict | None = None) -> None: ...
    def unit_finished(self, unit: Unit, summary: dict, history: list[dict]) -> None: ...
    def units_done(self, n: int) -> None: ...
    def message(self, text: str) -> None: ...
    def finish(self) -> None: ...


class Work(Protocol):
    """What an experiment offers an executor (implemented by lottery.imp.driver.Experiment)."""

    template: nn.Module  # the architecture: a module of it
    train_data: Dataset  # on the plan's device
    train_config: TrainConfig
    augment: str  # the training batches' augmentation (lottery.data.augment)
    plan: Plan  # how the engine trains: device, stack, compiled steps, lanes
    reporter: Reporter

    def ready(self) -> list[Job]: ...  # jobs whose inputs are done, claimed for this process, each handed out once
    def wait(self) -> bool: ...  # nothing ready: wait a moment if others hold needed units; False: all done
    def finish(self, job: Job, result: ReplicateResult) -> None: ...  # record a trained unit (releases its claim)
    def running(self, jobs: list[Job], where: dict) -> None: ...  # where jobs train (a node), for `lottery status`
    def checkpoint(self, name: str, units: list[Unit] | None = None) -> Checkpoint: ...  # a training's state
    def describe(self, jobs: list[Job]) -> str: ...  # a group's name in progress displays


class Executor(Protocol):
    name: str

    def run(self, work: Work) -> None:
        """Train every job `work` makes ready, until none is left."""
