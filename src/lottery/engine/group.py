"""What the engine trains and what it gives back: a group of replicates of one architecture."""

from dataclasses import dataclass, field

import torch
from torch import nn

from lottery.config import TrainConfig
from lottery.data import Dataset


@dataclass
class Replicate:
    """One training unit's inputs: starting state (parameters, already masked, and buffers),
    its mask, its data seed, and the seed of its own randomness in training (dropout)."""

    init: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    data_seed: int
    noise_seed: int | None = None  # None: derived from data_seed and the replicate's place in its stream


@dataclass
class Group:
    """Replicates of `template`'s architecture trained together under one schedule: from
    `start_step` (a rewound network continues from step k: the dense run's learning rates and
    batches from there on) to the end of `train.length`, keeping their weights at
    `snapshot_steps`. `lr_mode` 'final': the schedule's last rate throughout (fine-tuning).
    `augment`: a lottery.data augmentation ('none', 'crop_flip') applied to every training batch."""

    template: nn.Module
    replicates: list[Replicate]
    data: Dataset
    train: TrainConfig
    start_step: int = 0
    snapshot_steps: tuple[int, ...] = ()
    lr_mode: str = "schedule"
    augment: str = "none"

    def example(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Two training examples: what the engine probes a model with."""
        return self.data.train_x[:2], self.data.train_y[:2]


@dataclass
class ReplicateResult:
    final: dict[str, torch.Tensor]
    snapshots: dict[int, dict[str, torch.Tensor]]  # step → weights (e.g. the rewind point)
    history: list[dict]  # one row per evaluation: step, lr, train_loss, val_loss, val_acc
    early_stop_step: int
    val_acc_end: float
    test_acc_end: float
    test_acc_early_stop: float
    train_seconds: float  # the group's wall time divided by its size
    steps: int
    extra: dict = field(default_factory=dict)  # provenance; `diverged_step`: the first evaluation whose loss was not finite

    @property
    def diverged_step(self) -> int | None:
        return self.extra.get("diverged_step")
