"""The plain training loop: what the engine does, for one replicate, in one sitting.

No stacking, no compiled steps, no lanes: the module itself, autograd and torch.optim. It trains
what `lottery.engine.train` trains (the same batches, learning rates, evaluation points, early
stopping, snapshots and masks) and is the specification the fast paths are tested against:
bit for bit where they run the same kernels (the loop stack), to float rounding where they
compute the same functions with other kernels (the MLP and vmap stacks, lanes).
"""

import copy
import math

import torch
from torch import nn

from lottery.config import TrainConfig
from lottery.data import Dataset
from lottery.data import augment as augmentations
from lottery.engine.group import Replicate, ReplicateResult
from lottery.engine.schedule import DataOrder, Schedule
from lottery.engine.stacked import log_softmax_classes
from lottery.seeds import derive, seeded


def train_one(template: nn.Module, rep: Replicate, data: Dataset, cfg: TrainConfig, *, start_step: int = 0,
              snapshot_steps: tuple[int, ...] = (), lr_mode: str = "schedule", augment: str = "none") -> ReplicateResult:
    model = copy.deepcopy(template)
    model.load_state_dict(rep.init)  # parameters (pruned ones already 0.0) and buffers
    params = dict(model.named_parameters())
    masks = {n: m.to(params[n].dtype) for n, m in rep.mask.items()}
    when = Schedule(cfg, len(data.train_x), start_step, snapshot_steps, lr_mode)
    order = DataOrder(len(data.train_x), cfg.batch_size, [rep.data_seed])  # the batches: a function of the seed
    noise = rep.noise_seed if rep.noise_seed is not None else derive(rep.data_seed, "noise", 0)
    augmentation = augmentations.make(augment, tuple(data.train_x.shape[1:]))  # per (data seed, step)
    if cfg.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    weight_decay=cfg.weight_decay, fused=True)

    def state():
        return {n: t.detach().clone() for n, t in model.state_dict().items()}

    history, snapshots, loss_sum, last_eval = [], {}, 0.0, when.start
    best_loss, best_step, best = math.inf, when.start, state()
    for step in range(when.start, when.total + 1):
        if step in when.snapshot_steps:
            snapshots[step] = state()
        if step in when.eval_steps:  # weights after `step` steps
            val_loss, val_acc = _evaluate(model, data.val_x, data.val_y)
            since = step - last_eval
            history.append({"step": step, "lr": when.lr_at(step), "train_loss": loss_sum / since if since else math.nan,
                            "val_loss": val_loss, "val_acc": val_acc})
            loss_sum, last_eval = 0.0, step
            if val_loss < best_loss:  # early stopping: the lowest validation loss, the earlier on a tie
                best_loss, best_step, best = val_loss, step, state()
        if step == when.total:
            break
        batch = order.indices(step)[0]
        x = data.train_x[batch]
        if augmentation is not None:
            augmentation(x[None], [rep.data_seed], step)
        model.train()
        with seeded(derive(noise, "step", step)):  # dropout: the unit's own draws, in any group
            loss = nn.functional.cross_entropy(model(x), data.train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():
            for n, m in masks.items():  # a pruned weight's gradient is zero, so nothing moves it
                params[n].grad.mul_(m)
        for g in optimizer.param_groups:
            g["lr"] = when.lrs[step]
        optimizer.step()
        loss_sum += loss.item()
    final = state()
    _, test_end = _evaluate(model, data.test_x, data.test_y)
    model.load_state_dict(best)
    _, test_best = _evaluate(model, data.test_x, data.test_y)
    return ReplicateResult(final=final, snapshots=snapshots, history=history, early_stop_step=best_step,
                           val_acc_end=history[-1]["val_acc"], test_acc_end=test_end, test_acc_early_stop=test_best,
                           train_seconds=math.nan, steps=when.total - when.start)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, summed in float64. The log-softmax is the engine's own
    (`log_softmax_classes`), which rounds differently from torch.log_softmax in the last bit."""
    model.eval()
    logits = model(x)
    loss = -log_softmax_classes(logits).gather(1, y[:, None]).double().sum() / len(x)
    return float(loss), float((logits.argmax(-1) == y).double().sum() / len(x))
