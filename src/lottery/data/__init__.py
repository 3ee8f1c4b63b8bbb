"""Datasets as tensors in memory: a train / validation / test split, already normalised.

A registry, like the models': each dataset module gives its raw examples (`Source.load`), and
this module owns the split, so every dataset gets the same held-out-validation treatment. A new
dataset is a module with a loader and one entry in `DATASETS`.
"""

from dataclasses import dataclass
from typing import Callable

import torch

from lottery.data import cifar10, mnist, mnist1d, synthetic
from lottery.errors import ConfigError

SPLIT_SEED = 0  # the validation split is part of the dataset, not of an experiment's seed


@dataclass(frozen=True)
class Dataset:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def to(self, device) -> "Dataset":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Dataset(name=self.name, num_classes=self.num_classes, **moved)


@dataclass(frozen=True)
class Source:
    """A dataset by name: `load(data_dir)` → (train x, train y, test x, test y), normalised."""

    load: Callable[[str | None], tuple[torch.Tensor, ...]]
    num_classes: int
    summary: str
    input_shape: tuple[int, ...] = ()  # one example's shape as `load` gives it (a model is built for it)


DATASETS: dict[str, Source] = {
    "mnist": Source(mnist.examples, 10, "MNIST digits, 60,000 train / 10,000 test, 784 pixels (LeCun et al. 1998)",
                    (784,)),
    "mnist1d": Source(lambda data_dir: mnist1d.load(), 10,
                      "MNIST-1D, 4,000 train / 1,000 test, 40 features, generated locally (Greydanus 2020)", (40,)),
    "cifar10": Source(cifar10.examples, 10, "CIFAR-10, 50,000 train / 10,000 test colour images 32×32, from your "
                      "files (--data-dir; Krizhevsky 2009)", (3, 32, 32)),
    "synthetic": Source(lambda data_dir: synthetic.make(), synthetic.NUM_CLASSES,
                        "a tiny 4-class problem, 1,200 train / 400 test, 20 features, for tests", (20,)),
}


def split_validation(name, x, y, test_x, test_y, validation_size, num_classes) -> Dataset:
    """Hold out `validation_size` training examples (a fixed random subset) for validation."""
    if validation_size >= len(x):
        raise ConfigError(f"data.validation_size={validation_size} must be smaller than the {len(x)} "
                          f"training examples of {name}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val, train = order[:validation_size], order[validation_size:]
    return Dataset(name, x[train], y[train], x[val], y[val], test_x, test_y, num_classes)


def load_dataset(data_config, data_dir=None) -> Dataset:
    """The dataset a `DataConfig` names, split and normalised."""
    source = DATASETS.get(data_config.dataset)
    if source is None:
        raise ConfigError(f"data.dataset={data_config.dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    x, y, test_x, test_y = source.load(data_dir)
    return split_validation(data_config.dataset, x, y, test_x, test_y, data_config.validation_size, source.num_classes)
