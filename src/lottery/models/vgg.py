"""VGG-16 for CIFAR-10, the variant of the linear-mode-connectivity paper (Frankle et al. 2020;
its reference code, OpenLTH's cifar_vgg_16): thirteen 3×3 convolutions (64, 64, pool, 128, 128,
pool, 256 ×3, pool, 512 ×3, pool, 512 ×3), each with BatchNorm and ReLU, a 2×2 average pool and
one linear output layer. Initialisation as the reference code's (lottery.models.resnet)."""

from torch import nn

from lottery.errors import ConfigError
from lottery.models.resnet import he_and_uniform_batchnorm

PLAN_16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


class VGG(nn.Module):
    def __init__(self, plan: list, channels: int, num_classes: int):
        super().__init__()
        layers = []
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.BatchNorm2d(spec), nn.ReLU()]
                channels = spec
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(x)).flatten(1))


def vgg16(input_shape, num_classes):
    """CIFAR VGG-16 with BatchNorm."""
    if len(input_shape) != 3:
        raise ConfigError(f"model vgg16 takes images (channels, height, width); the data has shape "
                          f"{tuple(input_shape)}")
    return he_and_uniform_batchnorm(VGG(PLAN_16, input_shape[0], num_classes))
