"""Instability analysis (Frankle et al. 2020, linear mode connectivity): is a network, from its
rewind point k, stable to the noise of SGD?

Two copies start from the same weights at step k and train to the end with different data
orders (and augmentation draws): the level's IMP ticket, and the `instability` branch's copy.
The test error is then measured along the straight line between their final weights, at
`POINTS` evenly spaced points, both ends included (the masks agree, so every point keeps them).
BatchNorm's statistics are computed afresh at each point on training data, as interpolated
statistics mean nothing. The *error barrier* is the highest error on the path minus the mean of
its two ends: about 0 when the copies land in one linearly connected basin (stable), large when a
ridge of higher error lies between them (unstable).
"""

import copy

import torch
from torch import nn

POINTS = 11
BN_EXAMPLES = 10_000  # training examples that re-estimate BatchNorm's statistics at each point
CHUNK = 1_000


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 − α)·a + α·b for every floating tensor; integer buffers (BatchNorm's counts) from a."""
    return {n: ((1 - alpha) * t + alpha * b[n]) if t.is_floating_point() else t.clone() for n, t in a.items()}


@torch.no_grad()
def _recompute_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """BatchNorm's running statistics as the exact averages over `x` (in train mode, no gradients)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    for i in range(0, len(x), CHUNK):
        model(x[i:i + CHUNK])


@torch.no_grad()
def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = sum(int((model(x[i:i + CHUNK]).argmax(-1) != y[i:i + CHUNK]).sum()) for i in range(0, len(x), CHUNK))
    return wrong / len(x)


def error_path(template: nn.Module, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], data,
               points: int = POINTS) -> list[float]:
    """Test error at `points` evenly spaced points from `a` (first) to `b` (last)."""
    model = copy.deepcopy(template).cpu()
    bn_x = data.train_x[:BN_EXAMPLES].cpu()
    errors = []
    for i in range(points):
        model.load_state_dict(interpolate(a, b, i / (points - 1)))
        _recompute_batchnorm(model, bn_x)
        errors.append(_error(model, data.test_x.cpu(), data.test_y.cpu()))
    return errors


def barrier(errors: list[float]) -> float:
    """The highest error on the path minus the mean of its ends (0 for a path that never rises)."""
    return max(errors) - (errors[0] + errors[-1]) / 2
