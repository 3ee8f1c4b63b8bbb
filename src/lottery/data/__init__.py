"""Datasets as tensors in memory: a train / validation / test split, already normalised.

Each dataset module returns raw arrays; this module owns the split and the registry, so
every dataset gets the same held-out-validation treatment.
"""

from dataclasses import dataclass

import torch

from lottery.config import ConfigError

DATASETS = ("mnist", "mnist1d", "synthetic")
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
    if data_config.dataset == "mnist":
        from lottery.data import mnist

        arrays = mnist.load(data_dir)
        x, test_x = mnist.normalise(arrays["train_images"]), mnist.normalise(arrays["test_images"])
        y, test_y = arrays["train_labels"].long(), arrays["test_labels"].long()
        classes = 10
    elif data_config.dataset == "mnist1d":
        from lottery.data import mnist1d

        x, y, test_x, test_y = mnist1d.load()
        classes = 10
    elif data_config.dataset == "synthetic":
        from lottery.data import synthetic

        x, y, test_x, test_y = synthetic.make()
        classes = synthetic.NUM_CLASSES
    else:  # the config validates names; this guards direct callers
        raise ConfigError(f"unknown dataset {data_config.dataset!r}; choose one of {', '.join(DATASETS)}")
    return split_validation(data_config.dataset, x, y, test_x, test_y, data_config.validation_size, classes)
