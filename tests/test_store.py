from dataclasses import replace

import pytest
import torch
from conftest import tiny_config

from lottery import store as store_lib
from lottery.store import RunStore, StoreError, Unit


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


def test_unit_is_done_only_when_everything_is_written(tmp_path, monkeypatch):
    s = RunStore.create(tmp_path, tiny_config())
    unit = Unit(0, "imp", 0)
    real = store_lib.atomic_write_bytes

    def dies_on_summary(path, data):
        if path.name == "summary.json":
            raise OSError("disk died")
        real(path, data)
    monkeypatch.setattr(store_lib, "atomic_write_bytes", dies_on_summary)
    with pytest.raises(OSError):
        s.write_unit(unit, {"final": {"w": torch.ones(2)}}, [{"step": 0}], {"x": 1})
    assert not s.is_done(unit)
    monkeypatch.setattr(store_lib, "atomic_write_bytes", real)
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
