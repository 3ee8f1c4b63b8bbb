"""When things happen in a training: which examples each step sees, its learning rates, and the
steps at which the group evaluates, keeps snapshots and may stop. All pure functions of the
configuration and the step, so resuming needs no RNG or scheduler state."""

import math

import torch

from lottery.config import TrainConfig, to_steps
from lottery.seeds import derive


class DataOrder:
    """Which training examples each data stream sees at each step.

    The examples form an endless stream of epochs, each a fresh permutation drawn from
    (data_seed, epoch) alone, so any step's batch is known without replaying the ones before
    (resuming needs no RNG state) and each seed's order is reproducible from its seed.
    """

    def __init__(self, n: int, batch_size: int, data_seeds: list[int]):
        self.n, self.batch_size, self.data_seeds = n, batch_size, list(data_seeds)
        self._cache: dict[int, torch.Tensor] = {}
        self.device = torch.device("cpu")

    def permutation(self, epoch: int) -> torch.Tensor:  # [S, n]
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = torch.stack([  # drawn on the CPU: the same order on every device
                torch.randperm(self.n, generator=torch.Generator().manual_seed(derive(s, "epoch", epoch)))
                for s in self.data_seeds]).to(self.device)
        return self._cache[epoch]

    def to(self, device) -> "DataOrder":
        self.device = torch.device(device)
        return self

    def indices(self, step: int) -> torch.Tensor:  # [S, batch_size]
        return self.span(step, step + 1)[0]

    def span(self, first_step: int, end_step: int) -> torch.Tensor:  # [end_step - first_step, S, batch_size]
        """The batches of steps first_step … end_step − 1, step after step."""
        start, stop = first_step * self.batch_size, end_step * self.batch_size
        first, last = start // self.n, max(start, stop - 1) // self.n  # no steps: an empty view
        if first == last:  # within one epoch: a view, no copy (a step's batch, mostly)
            flat = self.permutation(first)[:, start - first * self.n: stop - first * self.n]
        else:
            flat = torch.cat([self.permutation(e)[:, max(start - e * self.n, 0): min(stop - e * self.n, self.n)]
                              for e in range(first, last + 1)], dim=1)
        return flat.view(len(self.data_seeds), end_step - first_step, self.batch_size).transpose(0, 1)


def learning_rate(cfg: TrainConfig, step: int, total: int, steps_per_epoch: float) -> float:
    """The schedule as a pure function of the step (so resuming needs no scheduler state)."""
    warmup = to_steps(cfg.warmup, steps_per_epoch)
    if warmup and step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "step":
        passed = sum(step >= to_steps(m, steps_per_epoch) for m in cfg.milestones)
        return cfg.lr * cfg.gamma ** passed
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr


class Schedule:
    """A training's steps `start` … `total` − 1: the rate of each, and the steps at which the group
    evaluates (`eval_steps`, the start and the end included) and keeps snapshots. A rewound
    network continues from step k with the dense run's rates from there on; `lr_mode` 'final'
    trains at the schedule's last rate throughout (fine-tuning)."""

    def __init__(self, cfg: TrainConfig, train_examples: int, start_step: int = 0,
                 snapshot_steps: tuple[int, ...] = (), lr_mode: str = "schedule"):
        spe = cfg.steps_per_epoch(train_examples)
        self.total = cfg.total_steps(train_examples)
        every = to_steps(cfg.eval_every, spe)
        self.start = min(start_step, self.total)
        self.eval_steps = sorted(set(range(self.start, self.total, max(1, every))) | {self.total})
        self.snapshot_steps = sorted(set(s for s in snapshot_steps if 0 <= s <= self.total))
        self.lrs = [learning_rate(cfg, t, self.total, spe) for t in range(self.total)]
        if lr_mode == "final":
            self.lrs = [self.lrs[-1]] * self.total

    def lr_at(self, step: int) -> float:
        """The rate of step `step` (the last step's at the end: what an evaluation there reports)."""
        return self.lrs[min(step, self.total - 1)]

    def next_stop(self, step: int, checkpoint_every: int | None) -> int:
        """The next step after `step` at which the whole group must be at rest: an evaluation, a
        snapshot, a checkpoint or the end. Between two, lanes run without meeting."""
        stop = min([s for s in (*self.eval_steps, *self.snapshot_steps) if s > step] + [self.total])
        if checkpoint_every:
            stop = min(stop, (step // checkpoint_every + 1) * checkpoint_every)
        return stop
