"""Convolutional networks: Conv-2, Conv-4 and Conv-6 (Frankle & Carbin 2019), and small CNNs for
MNIST and MNIST-1D that train here in minutes.

Conv-N (the lottery-ticket paper, Fig. 2): N/2 blocks of two 3×3 convolutions (64, 128, 256
filters) with ReLU and a 2×2 max-pool after each block, then fully connected 256, 256 and the
output; Gaussian Glorot initialisation, zero biases, no BatchNorm. Flattened inputs (MNIST's 784
features, MNIST-1D's 40) are reshaped to images (or signals) inside the model, so the datasets
stay as they are.
"""

import math

import torch
from torch import nn

from lottery.errors import ConfigError
from lottery.models.mlp import glorot


def _flat_size(features: nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(math.prod(features(torch.zeros(1, *shape)).shape[1:]))


def _image(input_shape, model: str) -> tuple[int, ...]:
    """(channels, height, width) of the inputs: images as they are, MNIST's 784 features as 1×28×28."""
    if len(input_shape) == 3:
        return tuple(input_shape)
    if math.prod(input_shape) == 784:
        return (1, 28, 28)
    raise ConfigError(f"model {model} takes images (channels, height, width) or MNIST's 784 features; the data has "
                      f"shape {tuple(input_shape)}: pick a model that fits the dataset")


class ConvNet(nn.Sequential):
    """Conv-N: `plan` lists the filters of each convolution, 'M' a max-pool; then `hidden` fully
    connected layers."""

    def __init__(self, input_shape, num_classes: int, plan: list, hidden=(256, 256), model: str = "conv"):
        shape = _image(input_shape, model)
        layers, channels = ([] if len(input_shape) == 3 else [nn.Unflatten(1, shape)]), shape[0]
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
                channels = spec
        layers.append(nn.Flatten())
        width = _flat_size(nn.Sequential(*layers), tuple(input_shape))
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
        glorot(self)


def conv2(input_shape, num_classes):
    """Conv-2 (Frankle & Carbin 2019): 64, 64, pool; FC 256, 256, output."""
    return ConvNet(input_shape, num_classes, [64, 64, "M"], model="conv2")


def conv4(input_shape, num_classes):
    """Conv-4: 64, 64, pool, 128, 128, pool; FC 256, 256, output."""
    return ConvNet(input_shape, num_classes, [64, 64, "M", 128, 128, "M"], model="conv4")


def conv6(input_shape, num_classes):
    """Conv-6: 64, 64, pool, 128, 128, pool, 256, 256, pool; FC 256, 256, output."""
    return ConvNet(input_shape, num_classes, [64, 64, "M", 128, 128, "M", 256, 256, "M"], model="conv6")


def cnn_mnist(input_shape, num_classes):
    """A small CNN for MNIST: 5×5 convolutions of 16 and 32 filters, each with ReLU and a 2×2
    max-pool, then FC 128 and the output (about 0.2 M weights); Glorot initialisation."""
    shape = _image(input_shape, "cnn_mnist")
    head = [] if len(input_shape) == 3 else [nn.Unflatten(1, shape)]
    features = nn.Sequential(*head, nn.Conv2d(shape[0], 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    width = _flat_size(features, tuple(input_shape))
    return glorot(nn.Sequential(*features, nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, num_classes)))


def cnn_mnist1d(input_shape, num_classes):
    """The MNIST-1D paper's CNN (Greydanus 2020): three 1-D convolutions of 25 channels (kernel 5
    then 3, 3; stride 2; ReLU), then the output layer."""
    if len(input_shape) != 1:
        raise ConfigError(f"model cnn_mnist1d takes 1-D signals; the data has shape {tuple(input_shape)}")
    layers = nn.Sequential(nn.Unflatten(1, (1, input_shape[0])), nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                           nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
                           nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
    width = _flat_size(layers, tuple(input_shape))
    return glorot(nn.Sequential(*layers, nn.Linear(width, num_classes)))
