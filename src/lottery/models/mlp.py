"""Fully connected networks: LeNet-300-100 (Frankle & Carbin 2019) and small MLPs."""

import math

from torch import nn

from lottery.errors import ConfigError


def glorot(module: nn.Module) -> nn.Module:
    """Gaussian Glorot weights and zero biases for every convolution and linear layer, as in the paper."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class MLP(nn.Sequential):
    """Flatten → (Linear → ReLU)* → Linear, Glorot-normal weights and zero biases, as in the paper."""

    def __init__(self, sizes: list[int]):
        layers = [nn.Flatten()]
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        glorot(self)


def _features(input_shape, expected=None, model=""):
    n = math.prod(input_shape)
    if expected is not None and n != expected:
        raise ConfigError(f"model {model} takes {expected} input features, but the data has {n} "
                          f"(shape {tuple(input_shape)}); pick a model that fits the dataset")
    return n


def lenet_300_100(input_shape, num_classes):
    """784-300-100-10: the fully connected network of the lottery-ticket paper (MNIST)."""
    return MLP([_features(input_shape, 784, "lenet_300_100"), 300, 100, num_classes])


def mlp_mnist1d(input_shape, num_classes):
    """40-100-100-10: the MLP of the MNIST-1D paper (Greydanus 2020)."""
    return MLP([_features(input_shape, 40, "mlp_mnist1d"), 100, 100, num_classes])


def mlp_small(input_shape, num_classes):
    """A tiny MLP (any input size, 32-32 hidden) for tests and quick checks."""
    return MLP([_features(input_shape), 32, 32, num_classes])
