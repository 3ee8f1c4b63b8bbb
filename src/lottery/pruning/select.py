"""Selecting weights by score: pure functions (scores, current mask, how many) → new mask.

Nothing passed in is modified. Each function removes *exactly* the requested number of the
still-kept weights; among equal scores the one with the lower flat index goes first, so results
are deterministic. Higher scores are kept.
"""

import torch

from lottery.pruning.masks import Mask, kept


def remove_lowest(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """`mask` with its `k` lowest-scoring kept entries removed (ties: lowest flat index first)."""
    new = mask.clone()
    if k == 0:
        return new
    alive = mask.flatten().nonzero().squeeze(1)
    values = scores.flatten()[alive]
    if k < len(values) and not values.isnan().any():
        # the k-th lowest score by selection, O(n), not a stable sort (docs/engine.md): everything
        # below it goes, then the lowest-index entries equal to it
        threshold = torch.kthvalue(values, k).values
        below = values < threshold
        tied = (values == threshold).nonzero().squeeze(1)
        below[tied[: k - int(below.sum())]] = True
        new.view(-1)[alive[below]] = False
        return new
    order = torch.sort(values.double(), stable=True).indices  # with NaN scores: sorted last, kept longest
    new.view(-1)[alive[order[:k]]] = False
    return new


def remove_lowest_pooled(scores: dict[str, torch.Tensor], mask: Mask, names: list[str], k: int) -> Mask:
    """Remove the `k` lowest-scoring kept entries across the layers `names` together."""
    flat = remove_lowest(torch.cat([scores[n].flatten() for n in names]),
                         torch.cat([mask[n].flatten() for n in names]), k)
    out, offset = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = flat[offset:offset + size].view_as(mask[n]).clone()
        offset += size
    return out


def keep_top_layerwise(scores: dict[str, torch.Tensor], mask: Mask, counts: dict[str, int]) -> Mask:
    """In each layer, keep the `counts[name]` highest-scoring of its kept weights."""
    return {n: remove_lowest(scores[n], m, max(0, int(m.sum()) - counts[n])) for n, m in mask.items()}


def keep_top_global(scores: dict[str, torch.Tensor], mask: Mask, keep: int) -> Mask:
    """Keep the `keep` highest-scoring kept weights across all layers (one threshold)."""
    return remove_lowest_pooled(scores, mask, list(mask), max(0, kept(mask) - keep))


def random_like(mask: Mask, generator: torch.Generator) -> Mask:
    """A uniformly random mask with the same number of kept weights in every layer (this is
    also the 'shuffle the mask within each layer' ablation)."""
    new = {}
    for n, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[: int(m.sum())]] = True
        new[n] = flat.view_as(m)
    return new
