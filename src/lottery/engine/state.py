"""A group's state stacked [S, R, ...]: S data streams (one per experiment seed) × R replicates
sharing each stream (that seed's branches: the ticket and its controls see the same batches, a
paired design). Parameters, buffers and masks are stacked along those two dimensions; one
replicate alone is S = R = 1."""

import torch
from torch import nn

from lottery.engine.group import Replicate
from lottery.seeds import derive


def layout(replicates: list[Replicate]) -> tuple[int, int, list[int]]:
    """(S, R, order): the replicates arranged [S, R] by data seed, `order[k]` the input position
    of stacked replicate k; uneven groups fall back to one stream each."""
    by_seed: dict[int, list[int]] = {}
    for i, r in enumerate(replicates):
        by_seed.setdefault(r.data_seed, []).append(i)
    sizes = {len(v) for v in by_seed.values()}
    if len(sizes) == 1:
        return len(by_seed), sizes.pop(), [i for v in by_seed.values() for i in v]
    return len(replicates), 1, list(range(len(replicates)))


class Stacked:
    """The stacked tensors of a group on `device`: `params` (parameters, trained, and buffers such
    as BatchNorm statistics, all [S, R, ...]) and `masks` (in the parameters' dtype)."""

    def __init__(self, template: nn.Module, replicates: list[Replicate], device: torch.device):
        self.S, self.R, self.order = layout(replicates)
        self.K = self.S * self.R
        ordered = [replicates[i] for i in self.order]
        first = ordered[0]
        self.names = list(first.init)
        trainable = {n for n, _ in template.named_parameters()}
        self.param_names = [n for n in self.names if n in trainable]
        self.params = {n: torch.stack([r.init[n] for r in ordered]).reshape(self.S, self.R, *first.init[n].shape)
                       .to(device).requires_grad_(n in trainable) for n in self.names}
        self.masks = {n: torch.stack([r.mask[n] for r in ordered]).reshape(self.S, self.R, *first.mask[n].shape)
                      .to(device, self.params[n].dtype) for n in first.mask}
        self.data_seeds = [ordered[s * self.R].data_seed for s in range(self.S)]
        # each replicate's own randomness in training (dropout): its own seed, in any group
        self.noise_seeds = [r.noise_seed if r.noise_seed is not None else derive(r.data_seed, "noise", k % self.R)
                            for k, r in enumerate(ordered)]

    def copy(self, device=None) -> dict[str, torch.Tensor]:
        """A copy of the stacked state, on its device unless `device` says otherwise."""
        return {n: p.detach().to(device or p.device, copy=True) for n, p in self.params.items()}

    def unstacked(self, k: int) -> tuple[int, int]:
        """(s, r) of stacked replicate k."""
        return divmod(k, self.R)
