"""A run directory: its config, its units' files (checked on every read), its derived outputs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from lottery import atomic
from lottery.atomic import DamagedFile
from lottery.config import ExperimentConfig
from lottery.errors import StoreError, StoreWarning
from lottery.store.checkpoint import Checkpoint
from lottery.store.claims import Claims
from lottery.store.unit import Unit

if TYPE_CHECKING:  # tensors are read and written through lottery.atomic, which loads torch then
    import torch

FORMAT = 2  # DONE holds a manifest of digests (format 1: an empty DONE, from lottery 0.1, unchecked)


def default_root() -> Path:
    return Path(os.environ.get("LOTTERY_STORE", "runs"))



def _check_root(root: Path) -> None:
    """A store root that can hold runs: a folder (made if missing) this process may write."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"store {str(root)!r} is a file, not a folder; give a folder (--store DIR)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{socket.gethostname()}-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StoreError(f"store {str(root)!r} is not writable: {e.strerror or e}") from None


class RunStore:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.claims = Claims(self.run_dir / "locks")  # the units this process trains now
        self._verified: dict[Unit, tuple] = {}  # unit → the DONE file's (mtime, size) when its files last checked out
        self.damaged: dict[Unit, str] = {}  # units found damaged in this process, with the reason

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, config: ExperimentConfig) -> "RunStore":
        """The run directory of `config` under `root`, created if new. Others may share it."""
        root = Path(root)
        _check_root(root)
        store = cls(root / config.hash())
        store.run_dir.mkdir(exist_ok=True)
        cfg_path = store.run_dir / "config.json"
        text = json.dumps(config.hashed_dict(), sort_keys=True, indent=2)
        if cfg_path.exists():
            try:
                same = json.loads(cfg_path.read_text()) == json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError):
                same = None
            if same is None:  # damaged: what it should say is known, from the hash that names the folder
                warnings.warn(f"{cfg_path} was damaged; rewritten from the configuration its folder is named after",
                              StoreWarning, stacklevel=2)
                atomic.write_bytes(cfg_path, text.encode())
            elif not same:
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

    def config(self) -> ExperimentConfig:
        path = self.run_dir / "config.json"
        try:
            return ExperimentConfig.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise StoreError(f"{self.run_dir} is not a run: it has no config.json") from None
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as e:
            raise StoreError(f"{path} is damaged or from an incompatible version ({str(e).splitlines()[0][:100]}); "
                             "running the experiment's command again rewrites it") from None

    # --- units -----------------------------------------------------------------------------
    def unit_dir(self, unit: Unit) -> Path:
        return self.run_dir / "units" / unit.key

    def write_unit(self, unit: Unit, weights: dict[str, dict[str, torch.Tensor]], history: list[dict], summary: dict) -> None:
        """All of a unit's files, then DONE with their digests. `weights` maps file stem → tensors."""
        d = self.unit_dir(unit)
        d.mkdir(parents=True, exist_ok=True)
        (d / "DONE").unlink(missing_ok=True)  # a unit being rewritten is not done until its new DONE
        files = {}
        for stem, tensors in weights.items():
            files[f"{stem}.safetensors"] = atomic.write_tensors(d / f"{stem}.safetensors", tensors)
        files["metrics.jsonl"] = "".join(json.dumps(row) + "\n" for row in history).encode()
        files["summary.json"] = json.dumps(summary, indent=2, sort_keys=True).encode()
        for name in ("metrics.jsonl", "summary.json"):
            atomic.write_bytes(d / name, files[name])
        manifest = {"format": FORMAT, "files": {name: atomic.digest(data) for name, data in files.items()}}
        atomic.write_bytes(d / "DONE", json.dumps(manifest, indent=1, sort_keys=True).encode())
        self._verified.pop(unit, None)

    def _manifest(self, unit: Unit) -> dict | None:
        """The unit's DONE manifest ({} for an unchecked format-1 unit), None when not done;
        DamagedFile when DONE is unreadable."""
        path = self.unit_dir(unit) / "DONE"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if not data:
            return {}  # format 1
        try:
            manifest = json.loads(data)
            files = manifest["files"]
            assert isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AssertionError):
            raise DamagedFile(path, "not a manifest (truncated or altered)") from None
        if isinstance(manifest.get("format"), int) and manifest["format"] > FORMAT:  # never "repaired": not ours to judge
            raise StoreError(f"{self.run_dir} was written by a newer lottery (store format {manifest['format']}; this "
                             f"one reads format {FORMAT} and older): upgrade lottery, or use another --store")
        return files

    def problem(self, unit: Unit) -> str | None:
        """Why `unit`, marked done, cannot be used (None: it can, or it is not done)."""
        d = self.unit_dir(unit)
        try:
            stat = (d / "DONE").stat()
        except FileNotFoundError:
            return None
        signature = (stat.st_mtime_ns, stat.st_size)
        if self._verified.get(unit) == signature:
            return None
        try:
            for name, expected in (self._manifest(unit) or {}).items():
                _checked_bytes(d / name, expected)
        except DamagedFile as e:
            return f"{e.path.name} {e.reason}"
        self._verified[unit] = signature
        return None

    def is_done(self, unit: Unit) -> bool:
        """Whether `unit` is complete and every file of it checks out. A damaged unit is not done:
        it is remembered in `damaged` (and reported once) for a writer to set aside."""
        if not (self.unit_dir(unit) / "DONE").exists():
            return False
        problem = self.problem(unit)
        if problem is None:
            return True
        if unit not in self.damaged:
            self.damaged[unit] = problem
            warnings.warn(f"unit {unit.key}: {problem}; it will be recomputed", StoreWarning, stacklevel=2)
        return False

    def set_aside(self, unit: Unit) -> Path | None:
        """Move a damaged unit's folder to damaged/ (kept for inspection); where it went. Call
        holding the unit's claim."""
        d = self.unit_dir(unit)
        if not d.exists():
            return None
        target = self.run_dir / "damaged" / f"{unit.key.replace('/', '-')}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        target.parent.mkdir(exist_ok=True)
        shutil.move(str(d), str(target))
        self.damaged.pop(unit, None)
        self._verified.pop(unit, None)
        return target

    def _read(self, unit: Unit, name: str) -> bytes:
        """A unit file's bytes, checked against its DONE manifest (DamagedFile if it fails)."""
        path = self.unit_dir(unit) / name
        files = self._manifest(unit)
        if files is None:
            raise StoreError(f"unit {unit.key} is not done")
        return _checked_bytes(path, files.get(name))

    def weights(self, unit: Unit, stem: str) -> dict[str, torch.Tensor]:
        name = f"{stem}.safetensors"  # checked against the manifest, then against its own digest
        return atomic.tensors_from_bytes(self.unit_dir(unit) / name, self._read(unit, name))

    def mask(self, unit: Unit) -> dict[str, torch.Tensor]:
        return {n: t.bool() for n, t in self.weights(unit, "mask").items()}

    def summary(self, unit: Unit) -> dict:
        return json.loads(self._read(unit, "summary.json"))

    def summaries(self) -> list[dict]:
        """summary.json of every finished unit whose files check out (the others are reported)."""
        out = []
        for done in sorted((self.run_dir / "units").glob("level_*/*/seed_*/DONE")):
            level, branch, seed = done.parent.relative_to(self.run_dir / "units").parts
            unit = Unit(int(level.removeprefix("level_")), branch, int(seed.removeprefix("seed_")))
            if self.is_done(unit):
                out.append(self.summary(unit))
        return out

    def history(self, unit: Unit) -> list[dict]:
        return [json.loads(line) for line in self._read(unit, "metrics.jsonl").decode().splitlines()]

    # --- the run's log and by-products -------------------------------------------------------
    def log_invocation(self, record: dict) -> None:
        """Append one line to invocations.jsonl: who ran what, when, on which versions. One
        write call per line: lines from processes appending at once do not interleave."""
        fd = os.open(self.run_dir / "invocations.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def invocations(self) -> list[dict]:
        """The invocation log; a line cut short by a crash (or altered) is skipped."""
        path = self.run_dir / "invocations.jsonl"
        out = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def checkpoint(self, name: str, units: list[Unit] | None = None) -> Checkpoint:
        """An in-training checkpoint of `units` (removed once they are done)."""
        return Checkpoint(self.run_dir / "checkpoints" / f"{name}.safetensors", units)

    def aux(self, name: str) -> Checkpoint:
        """A kept by-product a branch computes once and reuses (e.g. the early-bird search)."""
        return Checkpoint(self.run_dir / "aux" / f"{name}.safetensors")

    def tidy(self, units: list[Unit]) -> int:
        """Remove what dead writers left: their temporary files, checkpoints whose units are all
        done (a group killed while its units were being written), and damaged checkpoints (files
        are renamed into place whole, so one that does not read is damage). How many files went."""
        removed = atomic.remove_stale(self.run_dir)
        done = {u.key for u in units if self.is_done(u)}
        for ckpt in (self.run_dir / "checkpoints").glob("*.safetensors"):
            try:
                keys = json.loads(atomic.read_metadata(ckpt).get("units", "null"))
            except (DamagedFile, json.JSONDecodeError):
                warnings.warn(f"checkpoint {ckpt} is damaged; removed", StoreWarning, stacklevel=2)
                ckpt.unlink(missing_ok=True)
                removed += 1
                continue
            if keys and all(k in done for k in keys):
                ckpt.unlink(missing_ok=True)
                removed += 1
        return removed


def _checked_bytes(path: Path, expected: str | None) -> bytes:
    """The file's bytes, checked against the SHA-256 its unit's DONE recorded (None: unchecked);
    DamagedFile when missing or different."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    if expected is not None and atomic.digest(data) != expected:
        raise DamagedFile(path, "fails its checksum (truncated or altered)")
    return data
