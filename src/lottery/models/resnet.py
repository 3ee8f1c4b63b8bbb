"""ResNet-20 for CIFAR-10 (He et al. 2016), as the linear-mode-connectivity paper trains it
(Frankle et al. 2020, with its reference code, OpenLTH's cifar_resnet_20).

A 3×3 convolution of 16 filters, then three stages of three residual blocks (16, 32, 64 filters;
the first block of the second and third stage halves the resolution, its shortcut a 1×1
convolution with BatchNorm), global average pooling and the output layer: about 0.27 M weights.
Convolutions have no bias; BatchNorm follows each. Initialisation as the reference code's:
He-normal (Kaiming) weights for every convolution and linear layer, BatchNorm scales drawn
uniformly from [0, 1) and shifts at 0.
"""

from torch import nn
from torch.nn import functional as F

from lottery.errors import ConfigError


def he_and_uniform_batchnorm(module: nn.Module) -> nn.Module:
    """The reference code's initialisation (OpenLTH: kaiming_normal, batchnorm 'uniform')."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)
    return module


class Block(nn.Module):
    def __init__(self, f_in: int, f_out: int, downsample: bool):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        self.shortcut = nn.Sequential()
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth: int, width: int, channels: int, num_classes: int):
        super().__init__()
        blocks = (depth - 2) // 6
        self.conv = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers, filters = [], width
        for stage, f in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(Block(filters, f, downsample=stage > 0 and b == 0))
                filters = f
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, x):
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet20(input_shape, num_classes):
    """CIFAR ResNet-20 (16 filters in its first stage)."""
    if len(input_shape) != 3:
        raise ConfigError(f"model resnet20 takes images (channels, height, width); the data has shape "
                          f"{tuple(input_shape)}")
    return he_and_uniform_batchnorm(ResNet(20, 16, input_shape[0], num_classes))
