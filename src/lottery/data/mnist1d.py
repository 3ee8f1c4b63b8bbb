"""MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package with its defaults.

`make_dataset` defaults: 5,000 examples, 4,000 train / 1,000 test, 40 features, seed 42.
Generation takes seconds; the result is cached in the user cache directory.
"""

import torch

from lottery.data.cache import cache_dir, load_tensors, save_tensors

CACHE_NAME = "mnist1d-defaults-v1.safetensors"


def load():
    path = cache_dir() / CACHE_NAME
    if path.exists():
        t = load_tensors(path)
    else:
        t = _generate()
        save_tensors(path, t)
    return t["x"], t["y"], t["test_x"], t["test_y"]


def _generate() -> dict:
    import os

    import numpy as np

    os.environ.setdefault("MPLBACKEND", "Agg")  # mnist1d imports pyplot
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset seeds numpy's global RNG; leave the caller's alone
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return {
        "x": torch.tensor(d["x"], dtype=torch.float32),
        "y": torch.tensor(d["y"], dtype=torch.long),
        "test_x": torch.tensor(d["x_test"], dtype=torch.float32),
        "test_y": torch.tensor(d["y_test"], dtype=torch.long),
    }
