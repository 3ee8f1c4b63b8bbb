"""N:M structured sparsity: in every group of M consecutive input weights of an output unit, at
most N are kept (2:4, 4:8: the patterns sparse tensor cores run). Pure functions (scores, current
mask, N, M) → new mask.

Groups run along each output unit's flattened input weights (a Linear row; a convolution's in ×
kh × kw), M at a time; where a row does not divide into groups of M (LeNet's 300 and 100 inputs
by 8), its last, shorter group keeps at most N as well.
"""

import torch

from lottery.pruning.masks import Mask


def groups_fit(shape) -> bool:
    """Whether a weight of this shape has rows to group (a matrix or a convolution: not a vector)."""
    return len(shape) >= 2


def _grouped(t: torch.Tensor, m: int, fill) -> torch.Tensor:
    """[rows, groups, m]: each row's inputs in groups of `m`, a short last group padded with `fill`."""
    rows = t.reshape(t.shape[0], -1)
    pad = (-rows.shape[1]) % m
    if pad:
        rows = torch.cat([rows, torch.full((rows.shape[0], pad), fill, dtype=rows.dtype)], 1)
    return rows.reshape(rows.shape[0], -1, m)


def keep_n_of_m(scores: torch.Tensor, mask: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """`mask` with at most `n` kept entries in every group of `m`: the `n` highest-scoring of those
    kept now (ties: the lower index stays); groups with `n` or fewer keep theirs."""
    if not 1 <= n <= m:
        raise ValueError(f"N:M needs 1 ≤ N ≤ M, got {n}:{m}")
    if not groups_fit(mask.shape):
        return mask.clone()
    grouped_scores = _grouped(scores.double(), m, 0.0).reshape(-1, m)
    alive = _grouped(mask, m, False).reshape(-1, m)  # padding is dead: never kept
    # dead entries rank last; among equal scores the lower index ranks first (a stable sort)
    ranked = torch.where(alive, grouped_scores, torch.full_like(grouped_scores, -torch.inf))
    order = torch.sort(-ranked, dim=1, stable=True).indices
    keep = torch.zeros_like(alive)
    keep.scatter_(1, order[:, :n], True)
    width = mask.reshape(mask.shape[0], -1).shape[1]
    kept = (keep & alive).reshape(mask.shape[0], -1)[:, :width]
    return kept.reshape(mask.shape)


def satisfies(mask: torch.Tensor, n: int, m: int) -> bool:
    """Whether every group of `m` keeps at most `n` (vectors, which have no groups: True)."""
    return not groups_fit(mask.shape) or bool((_grouped(mask, m, False).sum(2) <= n).all())


def kept_per_group(mask: torch.Tensor, m: int) -> int:
    """The most any group of `m` keeps (0 for a vector, which has no groups)."""
    return int(_grouped(mask, m, False).sum(2).max()) if groups_fit(mask.shape) else 0


def nm_step(scores: dict[str, torch.Tensor], mask: Mask, m: int, n: int | None = None) -> Mask:
    """One IMP level of N:M pruning: every group of `m` keeps its highest-scoring weights, one
    fewer than its layer's fullest group keeps now (M:M → (M−1):M → … → 1:M), or `n` when given."""
    out = {}
    for name, current in mask.items():
        have = kept_per_group(current, m)
        if have == 0:
            out[name] = current.clone()
            continue
        target = n if n is not None else have - 1
        if target < 1:
            raise ValueError(f"{name} keeps 1 of every {m} already: N:M pruning with M = {m} ends at 1:{m}")
        out[name] = keep_n_of_m(scores[name], current, target, m)
    return out
