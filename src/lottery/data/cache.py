"""The user cache directory and atomic, code-free tensor files in it."""

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def cache_dir() -> Path:
    """$LOTTERY_CACHE_DIR, else $XDG_CACHE_HOME/lottery, else ~/.cache/lottery. Never beside the data."""
    if os.environ.get("LOTTERY_CACHE_DIR"):
        return Path(os.environ["LOTTERY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lottery"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write safetensors atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))
