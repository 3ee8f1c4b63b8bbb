from dataclasses import replace

import pytest
import torch
from conftest import tiny_config

from lottery.errors import StoreError
from lottery.store import RunStore, Unit


def test_a_second_writer_is_locked_out(tmp_path):
    cfg = tiny_config()
    first = RunStore.create(tmp_path, cfg)
    with pytest.raises(StoreError, match="being written by another process"):
        RunStore.create(tmp_path, cfg)
    first.unlock()
    RunStore.create(tmp_path, cfg).unlock()


def test_different_configs_never_share_a_directory(tmp_path):
    a = RunStore.create(tmp_path, tiny_config())
    b = RunStore.create(tmp_path, tiny_config(lr=1e-2))
    assert a.run_dir != b.run_dir
    (b.run_dir / "config.json").write_text((a.run_dir / "config.json").read_text())  # fake a collision
    b.unlock()
    with pytest.raises(StoreError, match="different experiment"):
        RunStore.create(tmp_path, tiny_config(lr=1e-2))


def test_unit_is_done_only_when_everything_is_written(tmp_path):
    s = RunStore.create(tmp_path, tiny_config())
    unit = Unit(0, "imp", 0)
    blocker = s.unit_dir(unit) / "summary.json"
    blocker.mkdir(parents=True)  # the summary cannot be written: a folder holds its name
    with pytest.raises(OSError):
        s.write_unit(unit, {"final": {"w": torch.ones(2)}}, [{"step": 0}], {"x": 1})
    assert not s.is_done(unit)
    blocker.rmdir()
    s.write_unit(unit, {"final": {"w": torch.ones(2)}}, [{"step": 0}], {"x": 1})
    assert s.is_done(unit) and torch.equal(s.weights(unit, "final")["w"], torch.ones(2))
    assert not list(s.unit_dir(unit).glob(".*tmp")), "no temporary files left behind"


def test_find_by_hash_prefix(tmp_path):
    cfg = tiny_config()
    RunStore.create(tmp_path, cfg).unlock()
    assert RunStore.find(cfg.hash()[:6], tmp_path).run_dir.name == cfg.hash()
    with pytest.raises(StoreError, match="no run"):
        RunStore.find("zzz", tmp_path)
    assert replace(cfg, levels=9).hash() == cfg.hash()
