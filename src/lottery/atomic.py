"""Files written whole or not at all: a reader sees the old file or the complete new one.

Each file is written under a temporary name beside its target, flushed to disk (fsync), renamed
over the target, and the rename itself made durable by syncing the folder. A process killed at
any point leaves either the old file or the new one, plus at most a stray temporary file. Tensor
files are safetensors: loading them never executes code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when tensors are written or read, not when a store is listed
    import torch


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_folder(path.parent)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    write_bytes(path, save({k: v.detach().contiguous() for k, v in tensors.items()}, metadata=metadata))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def read_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata, read from its header alone (no tensor is loaded)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(size)).get("__metadata__", {})


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
