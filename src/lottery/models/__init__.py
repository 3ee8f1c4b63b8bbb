"""Models by name: a registry. Any `nn.Module` also works (`lottery.find_ticket`); these are the presets'.

A model factory takes (input_shape, num_classes) and returns a freshly initialised module,
drawing its randomness from torch's global generator: `build` seeds it, so one seed is one network.
"""

from torch import nn

from lottery.errors import ConfigError
from lottery.models.conv import cnn_mnist, cnn_mnist1d, conv2, conv4, conv6
from lottery.models.mlp import lenet_300_100, mlp_mnist1d, mlp_small
from lottery.models.resnet import resnet20
from lottery.models.vgg import vgg16
from lottery.seeds import seeded

MODELS = {
    "lenet_300_100": lenet_300_100,
    "mlp_mnist1d": mlp_mnist1d,
    "mlp_small": mlp_small,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
    "resnet20": resnet20,
    "vgg16": vgg16,
    "cnn_mnist": cnn_mnist,
    "cnn_mnist1d": cnn_mnist1d,
}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """A fresh model whose initial weights depend only on `seed` (the caller's generator is untouched)."""
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is unknown; choose one of {', '.join(MODELS)}")
    with seeded(seed):
        return MODELS[name](input_shape, num_classes)
