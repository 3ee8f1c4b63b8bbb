"""Models by name. Any `nn.Module` also works with the pruning code; these are the presets'.

A model factory takes (input_shape, num_classes) and returns a freshly initialised module,
drawing its randomness from torch's global RNG: `build` seeds it, so one seed is one network.
"""

import torch
from torch import nn

from lottery.config import ConfigError
from lottery.models.mlp import lenet_300_100, mlp_mnist1d, mlp_small

MODELS = {
    "lenet_300_100": lenet_300_100,
    "mlp_mnist1d": mlp_mnist1d,
    "mlp_small": mlp_small,
}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """A fresh model whose initial weights depend only on `seed` (the caller's RNG is untouched)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](input_shape, num_classes)
