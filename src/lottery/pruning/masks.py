"""Masks: parameter name → bool tensor (True = the weight is kept).

Which parameters are prunable is a documented default: the weights of Linear and Conv layers.
Biases and normalisation parameters are never pruned. The *output layer* (where the paper
prunes at half rate) is the last prunable parameter in module order.
"""

import torch
from torch import nn

Mask = dict[str, torch.Tensor]
PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_names(model: nn.Module) -> list[str]:
    """The default prunable parameters of `model`, in module order."""
    return [f"{mod_name}.weight" if mod_name else "weight"
            for mod_name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def dense(params: dict[str, torch.Tensor], names: list[str]) -> Mask:
    return {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}


def apply(params: dict[str, torch.Tensor], mask: Mask) -> dict[str, torch.Tensor]:
    """A copy of `params` with the masked-out weights set to exactly zero."""
    return {n: (p * mask[n].to(p.dtype) if n in mask else p.clone()) for n, p in params.items()}


def counts(mask: Mask) -> dict[str, int]:
    """Kept weights per layer."""
    return {n: int(m.sum()) for n, m in mask.items()}


def kept(mask: Mask) -> int:
    """Kept weights in all layers together."""
    return sum(counts(mask).values())


def density(mask: Mask) -> dict[str, float]:
    """Fraction of weights kept, per layer."""
    return {n: float(m.float().mean()) for n, m in mask.items()}


def fraction_remaining(mask: Mask) -> float:
    """Fraction of all prunable weights kept."""
    return kept(mask) / sum(m.numel() for m in mask.values())
