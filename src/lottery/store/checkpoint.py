"""In-training checkpoints: a group's tensors and its resume state in one checked file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from lottery import atomic
from lottery.atomic import DamagedFile
from lottery.errors import StoreWarning
from lottery.store.unit import Unit

if TYPE_CHECKING:  # tensors are read and written through lottery.atomic, which loads torch then
    import torch


class Checkpoint:
    """One in-training checkpoint file: tensors plus a JSON string, saved atomically. A damaged
    one is reported and discarded (`load` returns None: training starts over), never used."""

    def __init__(self, path: Path, units: list[Unit] | None = None):
        self.path, self.units = path, units  # the units it trains: once all are done it is debris

    def save(self, tensors: dict[str, torch.Tensor], meta: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        extra = {"units": json.dumps([u.key for u in self.units])} if self.units else {}
        atomic.write_tensors(self.path, tensors, {"meta": meta, **extra})

    def load(self):
        if not self.path.exists():
            return None
        try:
            tensors = atomic.read_tensors(self.path)
            meta = atomic.read_metadata(self.path)["meta"]
            json.loads(meta)
        except (DamagedFile, KeyError, ValueError) as e:
            reason = e.reason if isinstance(e, DamagedFile) else "its metadata is unreadable"
            warnings.warn(f"checkpoint {self.path}: {reason}; discarded, its training starts over", StoreWarning,
                          stacklevel=2)
            self.remove()
            return None
        return tensors, meta

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
