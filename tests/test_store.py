import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from conftest import tiny_config

from lottery import atomic
from lottery.errors import StoreError, StoreWarning
from lottery.store import RunStore, Unit

UNIT = Unit(0, "imp", 0)


def written(tmp_path) -> RunStore:
    s = RunStore.create(tmp_path, tiny_config())
    s.write_unit(UNIT, {"final": {"w": torch.arange(6.0)}, "mask": {"w": torch.ones(6)}}, [{"step": 0, "val_acc": 0.5}],
                 {"level": 0, "branch": "imp", "seed": 0, "test_acc_end": 0.5})
    return RunStore(s.run_dir)  # a fresh reader: nothing remembered


def test_units_are_claimed_one_process_at_a_time(tmp_path):
    """Two invocations on one run share its units: a unit another process holds cannot be claimed."""
    s = RunStore.create(tmp_path, tiny_config())
    assert s.claims.take(UNIT, {"node": "head"})
    holder = ("import sys; from lottery.store import RunStore, Unit; "
              "print(RunStore(sys.argv[1]).claims.take(Unit(0, 'imp', 0)), RunStore(sys.argv[1]).claims.holder(Unit(0, 'imp', 0)))")
    out = subprocess.run([sys.executable, "-c", holder, str(s.run_dir)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False") and "'node': 'head'" in out
    s.claims.release(UNIT)
    out = subprocess.run([sys.executable, "-c", holder, str(s.run_dir)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("True"), "released (or its process gone): free to take"
    assert RunStore.create(tmp_path, tiny_config()).run_dir == s.run_dir, "a second invocation opens the same run"


def test_different_configs_never_share_a_directory(tmp_path):
    a = RunStore.create(tmp_path, tiny_config())
    b = RunStore.create(tmp_path, tiny_config(lr=1e-2))
    assert a.run_dir != b.run_dir
    (b.run_dir / "config.json").write_text((a.run_dir / "config.json").read_text())  # fake a collision
    with pytest.raises(StoreError, match="different experiment"):
        RunStore.create(tmp_path, tiny_config(lr=1e-2))


def test_a_damaged_config_is_rewritten_from_the_hash_that_names_its_folder(tmp_path):
    s = RunStore.create(tmp_path, tiny_config())
    good = (s.run_dir / "config.json").read_bytes()
    (s.run_dir / "config.json").write_bytes(good[:20])
    with pytest.raises(StoreError, match="config.json is damaged"):
        s.config()
    with pytest.warns(StoreWarning, match="was damaged; rewritten"):
        RunStore.create(tmp_path, tiny_config())
    assert (s.run_dir / "config.json").read_bytes() == good


def test_unit_is_done_only_when_everything_is_written(tmp_path):
    s = RunStore.create(tmp_path, tiny_config())
    blocker = s.unit_dir(UNIT) / "summary.json"
    blocker.mkdir(parents=True)  # the summary cannot be written: a folder holds its name
    with pytest.raises(OSError):
        s.write_unit(UNIT, {"final": {"w": torch.ones(2)}}, [{"step": 0}], {"x": 1})
    assert not s.is_done(UNIT)
    blocker.rmdir()
    s.write_unit(UNIT, {"final": {"w": torch.ones(2)}}, [{"step": 0}], {"x": 1})
    assert s.is_done(UNIT) and torch.equal(s.weights(UNIT, "final")["w"], torch.ones(2))
    assert not list(s.unit_dir(UNIT).glob(".*tmp")), "no temporary files left behind"
    manifest = json.loads((s.unit_dir(UNIT) / "DONE").read_text())
    assert set(manifest["files"]) == {"final.safetensors", "metrics.jsonl", "summary.json"}


def _truncate(p):
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _flip(p):
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x10  # in the tensor data or the JSON's last value
    p.write_bytes(bytes(data))


def _delete(p):
    p.unlink()


@pytest.mark.parametrize("damage", [_truncate, _flip, _delete])
@pytest.mark.parametrize("name", ["final.safetensors", "mask.safetensors", "metrics.jsonl", "summary.json", "DONE"])
def test_a_damaged_unit_file_is_detected_and_never_used(tmp_path, name, damage):
    s = written(tmp_path)
    damage(s.unit_dir(UNIT) / name)
    if name == "DONE" and damage is _delete:
        assert not s.is_done(UNIT), "no DONE: not done (recomputed as any unfinished unit)"
        return
    with pytest.warns(StoreWarning, match=f"unit {UNIT.key}: .* it will be recomputed"):
        assert not s.is_done(UNIT)
    assert UNIT in s.damaged
    assert s.summaries() == [], "reading commands skip it"
    moved = s.set_aside(UNIT)
    assert moved.parent.name == "damaged" and not s.unit_dir(UNIT).exists()


def test_a_tensor_file_checks_its_own_digest(tmp_path):
    path = tmp_path / "t.safetensors"
    atomic.write_tensors(path, {"w": torch.arange(100.0)})
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # one bit of one float
    path.write_bytes(bytes(data))
    with pytest.raises(atomic.DamagedFile, match="fails its checksum"):
        atomic.read_tensors(path)
    path.write_bytes(bytes(data[:30]))
    with pytest.raises(atomic.DamagedFile, match="truncated"):
        atomic.read_tensors(path)


def test_a_damaged_checkpoint_is_discarded_not_used(tmp_path):
    s = RunStore.create(tmp_path, tiny_config())
    ckpt = s.checkpoint("level_00-x", [UNIT])
    ckpt.save({"param.w": torch.ones(3)}, json.dumps({"step": 5}))
    assert ckpt.load()[1] == json.dumps({"step": 5})
    _flip(ckpt.path)
    with pytest.warns(StoreWarning, match="discarded, its training starts over"):
        assert ckpt.load() is None
    assert not ckpt.path.exists()


def test_tidy_removes_dead_writers_debris_only(tmp_path):
    s = written(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    host = atomic._HOST
    stale = s.unit_dir(UNIT) / f".final.safetensors.{host}.{pid}.tmp"
    live = s.unit_dir(UNIT) / f".final.safetensors.{host}.{__import__('os').getpid()}.tmp"
    other_host = s.unit_dir(UNIT) / f".final.safetensors.elsewhere.{pid}.tmp"
    for p in (stale, live, other_host):
        p.write_bytes(b"partial")
    orphan = s.checkpoint("level_00-orphan", [UNIT])
    orphan.save({"param.w": torch.ones(1)}, "{}")
    needed = s.checkpoint("level_00-needed", [UNIT, Unit(0, "imp", 1)])
    needed.save({"param.w": torch.ones(1)}, "{}")
    assert s.tidy([UNIT, Unit(0, "imp", 1)]) == 2
    assert not stale.exists() and live.exists() and other_host.exists()
    assert not orphan.path.exists() and needed.path.exists()


def test_find_by_hash_prefix(tmp_path):
    cfg = tiny_config()
    RunStore.create(tmp_path, cfg)
    assert RunStore.find(cfg.hash()[:6], tmp_path).run_dir.name == cfg.hash()
    with pytest.raises(StoreError, match="no run"):
        RunStore.find("zzz", tmp_path)
    assert replace(cfg, levels=9).hash() == cfg.hash()


def test_a_store_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        RunStore.create(tmp_path / "runs", tiny_config())


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickles_are_refused_and_nothing_runs(tmp_path, capsys):
    """A pickle where a checkpoint or a unit's weights belong is damage: reported and recomputed,
    never unpickled (the store reads safetensors only)."""
    import pickle

    from lottery.cli import main

    argv = ["run", "synthetic-tiny", "--quiet", "--levels", "1", "--store", str(tmp_path / "store")]
    assert main(argv) == 0
    (run_dir,) = [p for p in (tmp_path / "store").iterdir() if (p / "config.json").exists()]
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Payload(marker))
    (run_dir / "units/level_01/imp/seed_0/final.safetensors").write_bytes(evil)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "checkpoints/level_01-planted.safetensors").write_bytes(evil)
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "unit level_01/imp/seed_0: final.safetensors fails its checksum" in err
    assert "level_01-planted.safetensors is damaged; removed" in err
    assert not (run_dir / "checkpoints/level_01-planted.safetensors").exists()
    assert not marker.exists(), "nothing was unpickled"
    assert RunStore(run_dir).is_done(Unit(1, "imp", 0)), "recomputed"
    assert list((run_dir / "damaged").iterdir()), "the damaged unit kept for inspection"
    planted = run_dir / "checkpoints/level_01-evil.safetensors"
    planted.write_bytes(evil)
    with pytest.raises(atomic.DamagedFile):
        atomic.read_tensors(planted)
    with pytest.warns(StoreWarning, match="discarded, its training starts over"):
        assert RunStore(run_dir).checkpoint("level_01-evil").load() is None
    assert not marker.exists()
