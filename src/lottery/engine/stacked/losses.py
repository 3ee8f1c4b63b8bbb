"""Losses over a stack of replicates' logits."""

import torch
from torch import nn


def per_replicate_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logits [S, R, B, C], y [S, B] → mean cross-entropy of each replicate, [S, R]."""
    S, R, B, C = logits.shape
    target = y[:, None, :].expand(S, R, B).reshape(-1)
    return nn.functional.cross_entropy(logits.reshape(-1, C), target, reduction="none").view(S, R, B).mean(-1)


def log_softmax_classes(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last dimension (the classes), computed as dimension 1 of a transposed
    view: the same memory and the same values to float rounding (an entry can differ from
    torch.log_softmax(logits, -1) in its last bit), but torch's CPU kernel runs several times
    faster that way for 10 classes (docs/engine.md)."""
    return torch.log_softmax(logits.transpose(-1, -2), -2).transpose(-1, -2)
