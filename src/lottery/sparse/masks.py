"""Masks on modules, in torch.nn.utils.prune's convention (`weight_orig` and a `weight_mask`
buffer): `attach` puts a ticket's mask on a module so further training keeps pruned weights at
0.0; `bake` makes every such mask part of its weight again."""

import torch
from torch import nn
from torch.nn.utils import prune


def attach(module: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Attach each mask (parameter name → bool, True where kept) to `module`; it, changed in place."""
    for name, mask in masks.items():
        path, _, attr = name.rpartition(".")
        owner = module.get_submodule(path) if path else module
        prune.custom_from_mask(owner, attr, mask.to(getattr(owner, attr).device))
    return module


def pruning_hooks(module: nn.Module) -> list:
    """The torch.nn.utils.prune hooks on `module` itself (not its children)."""
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def bake(module: nn.Module) -> nn.Module:
    """Make every mask torch.nn.utils.prune attached part of its weight (pruned entries stay
    0.0 as plain numbers, nothing keeps them there any more); the module, changed in place."""
    for m in module.modules():
        for hook in pruning_hooks(m):
            prune.remove(m, hook._tensor_name)
    return module
