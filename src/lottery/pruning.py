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
    values = scores.flatten()[alive]
    if k < len(values) and not values.isnan().any():
        # the k-th lowest score by selection, O(n) (a stable sort of LeNet's first layer took 18 ms,
        # this 2.4): everything below it goes, then the lowest-index entries equal to it
        threshold = torch.kthvalue(values, k).values
        below = values < threshold
        tied = (values == threshold).nonzero().squeeze(1)
        below[tied[: k - int(below.sum())]] = True
        new.view(-1)[alive[below]] = False
        return new
    order = torch.sort(values.double(), stable=True).indices  # with NaN scores: sorted last, kept longest
    new.view(-1)[alive[order[:k]]] = False
    return new


def prune_layerwise(scores: dict[str, torch.Tensor], mask: Mask, rates: dict[str, float]) -> Mask:
    """Each layer loses `rates[name]` of its remaining weights, the lowest scores first."""
    return {n: _remove_lowest(scores[n], m, prune_count(int(m.sum()), rates.get(n, 0.0))) for n, m in mask.items()}


def magnitude_layerwise(weights: dict[str, torch.Tensor], mask: Mask, rates: dict[str, float]) -> Mask:
    """Each layer loses `rates[name]` of its remaining weights, the smallest |w| first."""
    return prune_layerwise({n: w.abs() for n, w in weights.items()}, mask, rates)


def _remove_lowest_pooled(scores: dict[str, torch.Tensor], mask: Mask, names: list[str], k: int) -> Mask:
    """Remove the `k` lowest-scoring kept entries across the layers `names` together."""
    flat = _remove_lowest(torch.cat([scores[n].flatten() for n in names]),
                          torch.cat([mask[n].flatten() for n in names]), k)
    out, offset = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = flat[offset:offset + size].view_as(mask[n]).clone()
        offset += size
    return out


def prune_global(scores: dict[str, torch.Tensor], mask: Mask, rate: float,
                 separate: dict[str, float] | None = None) -> Mask:
    """One score threshold across layers removes `rate` of the remaining weights in all of them
    together; layers in `separate` (e.g. the output layer) are pruned on their own at their rate.
    """
    separate = separate or {}
    pooled = [n for n in mask if n not in separate]
    new = {n: _remove_lowest(scores[n], mask[n], prune_count(int(mask[n].sum()), r)) for n, r in separate.items()}
    if pooled:
        alive = sum(int(mask[n].sum()) for n in pooled)
        new.update(_remove_lowest_pooled(scores, mask, pooled, prune_count(alive, rate)))
    return {n: new[n] for n in mask}


def magnitude_global(weights: dict[str, torch.Tensor], mask: Mask, rate: float,
                     separate: dict[str, float] | None = None) -> Mask:
    """`prune_global` by |w|: the smallest weights across layers go first."""
    return prune_global({n: w.abs() for n, w in weights.items()}, mask, rate, separate)


def keep_top_layerwise(scores: dict[str, torch.Tensor], mask: Mask, counts: dict[str, int]) -> Mask:
    """In each layer, keep the `counts[name]` highest-scoring of its kept weights."""
    return {n: _remove_lowest(scores[n], m, max(0, int(m.sum()) - counts[n])) for n, m in mask.items()}


def keep_top_global(scores: dict[str, torch.Tensor], mask: Mask, keep: int) -> Mask:
    """Keep the `keep` highest-scoring kept weights across all layers (one threshold)."""
    names = list(mask)
    alive = sum(int(mask[n].sum()) for n in names)
    return _remove_lowest_pooled(scores, mask, names, max(0, alive - keep))


def random_like(mask: Mask, generator: torch.Generator) -> Mask:
    """A uniformly random mask with the same number of kept weights in every layer (this is
    also the 'shuffle the mask within each layer' ablation)."""
    new = {}
    for n, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[: int(m.sum())]] = True
        new[n] = flat.view_as(m)
    return new


def magnitude(weights: dict[str, torch.Tensor], mask: Mask, *, rate: float, output_rate: float,
              scope: str = "layerwise", invert: bool = False) -> Mask:
    """The paper's magnitude pruning step: hidden layers at `rate`, the output layer at
    `output_rate`, per layer (`layerwise`) or with one threshold across hidden layers (`global`).
    `invert` removes the *largest* weights instead (the inverted-scores ablation).
    """
    scores = {n: (-w.abs() if invert else w.abs()) for n, w in weights.items()}
    names = list(mask)
    if scope == "layerwise":
        return prune_layerwise(scores, mask, layer_rates(names, rate, output_rate))
    if scope == "global":
        return prune_global(scores, mask, rate, {names[-1]: output_rate})
    raise ValueError(f"scope must be 'layerwise' or 'global', not {scope!r}")
