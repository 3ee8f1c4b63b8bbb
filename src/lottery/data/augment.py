"""Data augmentation as batched tensor ops on the training device, between the data order and the
step: every example of a batch gets its own random crop (after padding by 4 pixels) and
horizontal flip, drawn from (the stream's data seed, the step) alone. So a resumed run draws the
same, lanes draw the same, and the ticket and its controls, which share a stream, train on the
same augmented images (the paired design).
"""

import torch
from torch.nn import functional as F

from lottery.errors import ConfigError
from lottery.seeds import derive

PAD = 4


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(channels, height, width) of a dataset's inputs: images as they are, MNIST's 784 features as 1×28×28."""
    if len(input_shape) == 3:
        return tuple(input_shape)
    if len(input_shape) == 1 and input_shape[0] == 784:
        return (1, 28, 28)
    raise ConfigError(f"data.augment=crop_flip needs images; this dataset's inputs have shape {tuple(input_shape)}")


def draws(data_seed: int, step: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(flip [batch] bool, crop offsets [batch, 2] in 0…2·PAD) of one stream's batch at `step`."""
    g = torch.Generator().manual_seed(derive(data_seed, "augment", step))
    return torch.rand(batch, generator=g) < 0.5, torch.randint(0, 2 * PAD + 1, (batch, 2), generator=g)


class CropFlip:
    """Crop and flip the batch `x` [S, B, ...] (S streams) in place, stream s with its data seed."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.shape = image_shape(input_shape)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, data_seeds: list[int], step: int) -> None:
        S, B = x.shape[:2]
        C, H, W = self.shape
        images = x.view(S * B, C, H, W)
        flips, offsets = (torch.cat(t).to(x.device) for t in zip(*(draws(s, step, B) for s in data_seeds)))
        rows = offsets[:, :1] + torch.arange(H, device=x.device)  # [N, H]: the crop's rows in the padded image
        cols = offsets[:, 1:] + torch.arange(W, device=x.device)
        cols = torch.where(flips[:, None], cols.flip(1), cols)  # a flip reads the crop's columns backwards
        padded = F.pad(images, (PAD, PAD, PAD, PAD))
        n = torch.arange(S * B, device=x.device)[:, None, None]
        images.copy_(padded[n, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2))


def make(name: str, input_shape: tuple[int, ...]):
    """The augmentation `name` (lottery.config.AUGMENTATIONS) for inputs of this shape; None for none."""
    return CropFlip(input_shape) if name == "crop_flip" else None
