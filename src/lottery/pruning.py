"""Pruning strategies as pure functions: (weights, current mask, rule) → new mask.

Nothing passed in is modified. Each function removes *exactly* the requested number of the
still-unpruned weights; among equal scores the one with the lower flat index goes first, so
results are deterministic. Users can call these on their own tensors.
"""

import math

import torch

from lottery.masks import Mask


def prune_count(alive: int, rate: float) -> int:
    """How many of `alive` weights a pruning `rate` removes (round half up)."""
    return min(alive, math.floor(rate * alive + 0.5))


def layer_rates(names: list[str], rate: float, output_rate: float) -> dict[str, float]:
    """The paper's rule: every layer at `rate`, the output (last) layer at `output_rate`."""
    return {n: (output_rate if i == len(names) - 1 else rate) for i, n in enumerate(names)}


def _remove_lowest(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """`mask` with its `k` lowest-scoring kept entries removed (ties: lowest flat index first)."""
    new = mask.clone()
    if k == 0:
        return new
    alive = mask.flatten().nonzero().squeeze(1)
    order = torch.sort(scores.flatten()[alive].double(), stable=True).indices
    new.view(-1)[alive[order[:k]]] = False
    return new


def magnitude_layerwise(weights: dict[str, torch.Tensor], mask: Mask, rates: dict[str, float]) -> Mask:
    """Each layer loses `rates[name]` of its remaining weights, the smallest |w| first."""
    return {n: _remove_lowest(weights[n].abs(), m, prune_count(int(m.sum()), rates.get(n, 0.0)))
            for n, m in mask.items()}


def magnitude_global(weights: dict[str, torch.Tensor], mask: Mask, rate: float,
                     separate: dict[str, float] | None = None) -> Mask:
    """One |w| threshold across layers removes `rate` of the remaining weights in all of them
    together; layers in `separate` (e.g. the output layer) are pruned on their own at their rate.
    """
    separate = separate or {}
    pooled = [n for n in mask if n not in separate]
    new = {n: _remove_lowest(weights[n].abs(), mask[n], prune_count(int(mask[n].sum()), r))
           for n, r in separate.items()}
    if pooled:
        scores = torch.cat([weights[n].abs().flatten() for n in pooled])
        flat = torch.cat([mask[n].flatten() for n in pooled])
        flat = _remove_lowest(scores, flat, prune_count(int(flat.sum()), rate))
        offset = 0
        for n in pooled:
            size = mask[n].numel()
            new[n] = flat[offset:offset + size].view_as(mask[n]).clone()
            offset += size
    return {n: new[n] for n in mask}


def random_like(mask: Mask, generator: torch.Generator) -> Mask:
    """A uniformly random mask with the same number of kept weights in every layer."""
    new = {}
    for n, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[: int(m.sum())]] = True
        new[n] = flat.view_as(m)
    return new


def magnitude(weights: dict[str, torch.Tensor], mask: Mask, *, rate: float, output_rate: float,
              scope: str = "layerwise") -> Mask:
    """The paper's magnitude pruning step: hidden layers at `rate`, the output layer at
    `output_rate`, per layer (`layerwise`) or with one threshold across hidden layers (`global`).
    """
    names = list(mask)
    if scope == "layerwise":
        return magnitude_layerwise(weights, mask, layer_rates(names, rate, output_rate))
    if scope == "global":
        return magnitude_global(weights, mask, rate, {names[-1]: output_rate})
    raise ValueError(f"scope must be 'layerwise' or 'global', not {scope!r}")
