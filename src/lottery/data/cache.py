"""The user cache directory: where derived data (a verified MNIST, a generated MNIST-1D) is kept."""

import hashlib
import os
from pathlib import Path

import torch

from lottery import atomic
from lottery.errors import DataError


def cache_dir() -> Path:
    """$LOTTERY_CACHE_DIR, else $XDG_CACHE_HOME/lottery, else ~/.cache/lottery. Never beside the data."""
    if os.environ.get("LOTTERY_CACHE_DIR"):
        return Path(os.environ["LOTTERY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lottery"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_tensors(path, tensors, metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A cached file's tensors (lottery.atomic.DamagedFile when it is damaged: the caller rebuilds it)."""
    return atomic.read_tensors(path)


def check_md5(name: str, data: bytes, expected: str) -> None:
    """Refuse a data file whose MD5 is not the one its publisher gives (DataError, one line)."""
    actual = hashlib.md5(data).hexdigest()
    if actual != expected:
        raise DataError(f"{name}: MD5 {actual} does not match the published {expected}; refusing the file")
