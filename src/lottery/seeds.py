"""Independent, recorded seeds derived from one experiment seed.

Model init, data order and each control's randomness get separate streams, so changing one
(say, adding a control) never shifts another (say, the data order the ticket saw).
"""

import hashlib
from contextlib import contextmanager

import torch


def derive(seed: int, *purpose) -> int:
    """A 63-bit seed for `purpose` (e.g. 'data', or 'reinit', level) from an experiment seed."""
    text = ":".join(str(p) for p in (seed, *purpose))
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


@contextmanager
def seeded(seed: int, devices=()):
    """torch's global generator seeded with `seed` inside the block, the caller's state restored
    after it (CPU always, and the CUDA `devices` listed)."""
    with torch.random.fork_rng(devices=list(devices)):
        torch.manual_seed(seed)
        yield
