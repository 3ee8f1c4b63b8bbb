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
    view: same memory, same numbers, but torch's CPU kernel ran 7-16x faster that way for 10
    classes (0.09 vs 0.70 ms for 9 x 1,000 examples; 8 vs 124 µs for 16 x 100, measured)."""
    return torch.log_softmax(logits.transpose(-1, -2), -2).transpose(-1, -2)
