"""MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package with its defaults.

`make_dataset` defaults: 5,000 examples, 4,000 train / 1,000 test, 40 features, seed 42.
Generation takes seconds; the result is cached in the user cache directory. Every load checks the
arrays against the SHA-256 of the reference generation: a cache that differs is dropped and
generated again, and a generation that differs (another mnist1d or numpy) is used with a warning.
"""

import hashlib
import warnings

import torch

from lottery.atomic import DamagedFile, read_metadata
from lottery.data.cache import cache_dir, load_tensors, save_tensors
from lottery.errors import DataWarning

CACHE_NAME = "mnist1d-defaults-v1.safetensors"
KEYS = ("x", "y", "test_x", "test_y")
GENERATED = "lottery.generated"  # the cache's header: the digest of what this machine generated
SHA256 = "b09ad3e22c854bc5a1948b85c373aab653ceb38c9170f5ed05b7d054e4160db9"  # mnist1d 0.0.2's defaults


def digest(t: dict) -> str:
    h = hashlib.sha256()
    for k in KEYS:
        h.update(t[k].numpy().tobytes())
    return h.hexdigest()


def load():
    path = cache_dir() / CACHE_NAME
    t = None
    if path.exists():
        try:
            t = load_tensors(path)
            if digest(t) not in (SHA256, read_metadata(path).get(GENERATED)):
                raise ValueError("its arrays differ from what was generated")
        except (DamagedFile, KeyError, ValueError) as e:
            warnings.warn(f"the MNIST-1D cache {path} is damaged or altered ({e}); generated again", DataWarning,
                          stacklevel=2)
            path.unlink(missing_ok=True)
            t = None
    if t is None:
        t = _generate()
        generated = digest(t)
        if generated != SHA256:
            warnings.warn("MNIST-1D as generated here differs from the reference generation (another mnist1d or "
                          "numpy version?); numbers will not compare with runs made elsewhere", DataWarning,
                          stacklevel=2)
        save_tensors(path, t, {GENERATED: generated})
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
