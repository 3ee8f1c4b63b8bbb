"""Magnitude pruning, the paper's rule: pure functions (weights, current mask, rates) → new mask.

Each level removes a fraction of the *remaining* weights, the smallest |w| first: per layer
(`layerwise`: hidden layers at `rate`, convolutional ones at `conv_rate` when given, the output
layer at `output_rate`) or with one threshold across the hidden layers (`global`, the output
layer still on its own; `output_rate=0` leaves it unpruned, as the ResNet and VGG papers do).
"""

import math

import torch

from lottery.pruning.masks import Mask
from lottery.pruning.nm import nm_step
from lottery.pruning.select import remove_lowest, remove_lowest_pooled


def prune_count(alive: int, rate: float) -> int:
    """How many of `alive` weights a pruning `rate` removes (round half up)."""
    return min(alive, math.floor(rate * alive + 0.5))


def layer_rates(mask: Mask, rate: float, output_rate: float, conv_rate: float | None = None) -> dict[str, float]:
    """The papers' rule: the output (last) layer at `output_rate`, convolutional layers (weights of
    more than two dimensions) at `conv_rate` (None: `rate`), every other layer at `rate`."""
    names = list(mask)
    conv = rate if conv_rate is None else conv_rate
    return {n: (output_rate if i == len(names) - 1 else conv if mask[n].dim() > 2 else rate)
            for i, n in enumerate(names)}


def prune_layerwise(scores: dict[str, torch.Tensor], mask: Mask, rates: dict[str, float]) -> Mask:
    """Each layer loses `rates[name]` of its remaining weights, the lowest scores first."""
    return {n: remove_lowest(scores[n], m, prune_count(int(m.sum()), rates.get(n, 0.0))) for n, m in mask.items()}


def prune_global(scores: dict[str, torch.Tensor], mask: Mask, rate: float,
                 separate: dict[str, float] | None = None) -> Mask:
    """One score threshold across layers removes `rate` of the remaining weights in all of them
    together; layers in `separate` (e.g. the output layer) are pruned on their own at their rate."""
    separate = separate or {}
    pooled = [n for n in mask if n not in separate]
    new = {n: remove_lowest(scores[n], mask[n], prune_count(int(mask[n].sum()), r)) for n, r in separate.items()}
    if pooled:
        alive = sum(int(mask[n].sum()) for n in pooled)
        new.update(remove_lowest_pooled(scores, mask, pooled, prune_count(alive, rate)))
    return {n: new[n] for n in mask}


def magnitude(weights: dict[str, torch.Tensor], mask: Mask, *, rate: float, output_rate: float,
              scope: str = "layerwise", conv_rate: float | None = None, invert: bool = False,
              nm_group: int = 4) -> Mask:
    """The papers' magnitude pruning step: hidden layers at `rate` (convolutional ones at
    `conv_rate` when given), the output layer at `output_rate`, per layer (`layerwise`) or with one
    threshold across hidden layers (`global`); or `nm`: N:M structure, every group of `nm_group`
    inputs keeping one weight fewer a level (lottery.pruning.nm; the rates do not apply). `invert`
    removes the *largest* weights instead (the inverted-scores ablation)."""
    scores = {n: (-w.abs() if invert else w.abs()) for n, w in weights.items()}
    if scope == "nm":
        return nm_step(scores, mask, nm_group)
    names = list(mask)
    if scope == "layerwise":
        return prune_layerwise(scores, mask, layer_rates(mask, rate, output_rate, conv_rate))
    if scope == "global":
        return prune_global(scores, mask, rate, {names[-1]: output_rate})
    raise ValueError(f"scope must be 'layerwise' or 'global', not {scope!r}")
