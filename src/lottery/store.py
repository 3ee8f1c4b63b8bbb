"""Content-addressed run directories: the config's hash names the directory.

    <store>/<hash>/config.json                    the hashed config (what makes the experiment)
    <store>/<hash>/units/level_03/imp/seed_0/     one training unit:
        mask.safetensors, init.safetensors, final.safetensors (rewind.safetensors at level 0)
        metrics.jsonl (one row per evaluation), summary.json, DONE (written last)
    <store>/<hash>/checkpoints/                   in-training checkpoints of unfinished groups
    <store>/<hash>/aux/                           by-products branches reuse (e.g. early-bird searches)
    <store>/<hash>/results.csv, accuracy.png      derived outputs, rebuilt from the units

Every file is written atomically and fsynced (lottery.atomic), and DONE is written last, so a
unit is either complete or absent no matter when the process dies. A lock file keeps a second
process out of a run directory while one is writing it.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lottery import atomic
from lottery.config import ExperimentConfig
from lottery.errors import StoreError

if TYPE_CHECKING:  # tensors are read and written through lottery.atomic, which loads torch then
    import torch


def default_root() -> Path:
    return Path(os.environ.get("LOTTERY_STORE", "runs"))


@dataclass(frozen=True, order=True)
class Unit:
    level: int
    branch: str
    seed: int

    @property
    def key(self) -> str:
        return f"level_{self.level:02d}/{self.branch}/seed_{self.seed}"


class Checkpoint:
    """One in-training checkpoint file: tensors plus a JSON string, saved atomically."""

    def __init__(self, path: Path):
        self.path = path

    def save(self, tensors: dict[str, torch.Tensor], meta: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_tensors(self.path, tensors, {"meta": meta})

    def load(self):
        if not self.path.exists():
            return None
        return atomic.read_tensors(self.path), atomic.read_metadata(self.path)["meta"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class RunStore:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._lock_file = None

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, config: ExperimentConfig) -> "RunStore":
        """The run directory of `config` under `root`, created if new, locked for writing."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StoreError(f"store {str(root)!r} is not writable: {e.strerror or e}") from None
        store = cls(root / config.hash())
        store.run_dir.mkdir(exist_ok=True)
        store.lock()
        cfg_path = store.run_dir / "config.json"
        text = json.dumps(config.hashed_dict(), sort_keys=True, indent=2)
        if cfg_path.exists():
            if json.loads(cfg_path.read_text()) != json.loads(text):
                raise StoreError(f"{store.run_dir} holds a different experiment (hash collision?); refusing to mix them")
        else:
            atomic.write_bytes(cfg_path, text.encode())
        return store

    @classmethod
    def find(cls, name: str, root: Path | None = None) -> "RunStore":
        """A run by directory path, or by hash (or unique hash prefix) in the store."""
        path = Path(name)
        if (path / "config.json").exists():
            return cls(path)
        root = Path(root) if root else default_root()
        matches = sorted(p for p in root.glob(f"{name}*") if (p / "config.json").exists()) if root.is_dir() else []
        if len(matches) == 1:
            return cls(matches[0])
        if not matches:
            raise StoreError(f"no run {name!r}: give a run directory or a hash in store {str(root)!r}")
        raise StoreError(f"{name!r} matches {len(matches)} runs; give more of the hash")

    def lock(self) -> None:
        self._lock_file = open(self.run_dir / ".lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"run {self.run_dir} is being written by another process; "
                             "wait for it to finish or stop it first") from None

    def unlock(self) -> None:
        if self._lock_file:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def config(self) -> ExperimentConfig:
        return ExperimentConfig.from_dict(json.loads((self.run_dir / "config.json").read_text()))

    # --- units -----------------------------------------------------------------------------
    def unit_dir(self, unit: Unit) -> Path:
        return self.run_dir / "units" / unit.key

    def is_done(self, unit: Unit) -> bool:
        return (self.unit_dir(unit) / "DONE").exists()

    def write_unit(self, unit: Unit, weights: dict[str, dict[str, torch.Tensor]], history: list[dict], summary: dict) -> None:
        """All of a unit's files, then DONE. `weights` maps file stem → tensors."""
        d = self.unit_dir(unit)
        d.mkdir(parents=True, exist_ok=True)
        for stem, tensors in weights.items():
            atomic.write_tensors(d / f"{stem}.safetensors", tensors)
        atomic.write_bytes(d / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history).encode())
        atomic.write_bytes(d / "summary.json", json.dumps(summary, indent=2, sort_keys=True).encode())
        atomic.write_bytes(d / "DONE", b"")

    def weights(self, unit: Unit, stem: str) -> dict[str, torch.Tensor]:
        return atomic.read_tensors(self.unit_dir(unit) / f"{stem}.safetensors")

    def mask(self, unit: Unit) -> dict[str, torch.Tensor]:
        return {n: t.bool() for n, t in self.weights(unit, "mask").items()}

    def summaries(self) -> list[dict]:
        """summary.json of every finished unit."""
        return [json.loads((p.parent / "summary.json").read_text())
                for p in sorted((self.run_dir / "units").glob("level_*/*/seed_*/DONE"))]

    def history(self, unit: Unit) -> list[dict]:
        return [json.loads(line) for line in (self.unit_dir(unit) / "metrics.jsonl").read_text().splitlines()]

    def log_invocation(self, record: dict) -> None:
        """Append one line to invocations.jsonl: who ran what, when, on which versions."""
        with open(self.run_dir / "invocations.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def invocations(self) -> list[dict]:
        path = self.run_dir / "invocations.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def checkpoint(self, name: str) -> Checkpoint:
        """An in-training checkpoint (removed once its units are done)."""
        return Checkpoint(self.run_dir / "checkpoints" / f"{name}.safetensors")

    def aux(self, name: str) -> Checkpoint:
        """A kept by-product a branch computes once and reuses (e.g. the early-bird search)."""
        return Checkpoint(self.run_dir / "aux" / f"{name}.safetensors")
