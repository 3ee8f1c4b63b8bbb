"""Early-bird tickets (lottery.imp.early_bird): the search, its stopping rule, and that it trains
through the engine's front door like every unit (options, checkpoints, resuming bit for bit)."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import kill_when_seen, tiny_config
from safetensors.torch import load_file

from lottery.analysis.table import table
from lottery.imp.driver import Experiment, RunOptions
from lottery.imp.early_bird import Search, mask_distance
from lottery.store import RunStore, Unit

ARGS = ["run", "synthetic-tiny", "--levels", "2", "--seeds", "0", "--branches", "imp,early_bird",
        "--set", "train.length=3000", "--set", "train.eval_every=100", "--checkpoint-every", "50",
        "--threads", "1", "--quiet"]
TIMING = {"train_seconds", "score_seconds", "find_seconds", "resumed_from_step"}


def cli(store, *extra):
    return subprocess.Popen([sys.executable, "-m", "lottery.cli", *ARGS, *extra, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process) -> Path:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return Path(out.strip().splitlines()[-1])


def search_record(run_dir: Path) -> tuple[dict, dict]:
    path = run_dir / "aux" / "early_bird-seed_0.safetensors"
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
    return meta, load_file(str(path))


def test_a_search_killed_midway_resumes_to_the_uninterrupted_run(tmp_path):
    reference = finish(cli(tmp_path / "a"))
    checkpoint = kill_when_seen(cli(tmp_path / "b"), tmp_path / "b", "*/checkpoints/early_bird-seed_0.safetensors")
    run_dir = checkpoint.parent.parent
    assert not (run_dir / "aux" / "early_bird-seed_0.safetensors").exists(), "killed before the search ended"
    assert finish(cli(tmp_path / "b")) == run_dir
    (meta_a, masks_a), (meta_b, masks_b) = search_record(reference), search_record(run_dir)
    assert meta_a["resumed_from_step"] == 0 and meta_b["resumed_from_step"] > 0, "the search resumed midway"
    assert meta_a["drawn"] == meta_b["drawn"] and meta_a["steps_run"] == meta_b["steps_run"]
    assert masks_a.keys() == masks_b.keys() and all(torch.equal(masks_a[k], masks_b[k]) for k in masks_a)
    a, b = table(RunStore(reference)), table(RunStore(run_dir))
    keep = [c for c in a.columns if c not in TIMING]
    assert a[keep].equals(b[keep]), "the same table, timings aside"
    assert not list(run_dir.glob("checkpoints/*.safetensors")), "a finished search leaves no checkpoint"


def test_the_search_trains_with_the_runs_options(tmp_path):
    compiled = finish(cli(tmp_path / "a", "--set", "train.length=300"))
    python = finish(cli(tmp_path / "b", "--set", "train.length=300", "--no-script"))
    assert search_record(compiled)[0]["scripted"] is True and search_record(compiled)[0]["engine"]["script"] is True
    assert search_record(python)[0]["scripted"] is False, "--no-script reaches the search"
    assert search_record(python)[0]["engine"] == {"engine": "mlp", "script": False, "cuda_graphs": False,
                                                  "lanes": "auto", "device": "cpu", "layout_independent": True}
    assert search_record(compiled)[0]["drawn"] == search_record(python)[0]["drawn"], "the same masks either way"


def test_early_bird_stops_before_the_full_budget(tmp_path):
    cfg = replace(tiny_config(lr=1e-2, length="20ep", eval_every="0.25ep"), branches=("imp", "early_bird"),
                  levels=2, seeds=(0,))
    s = RunStore(Experiment(cfg, RunOptions(store=tmp_path)).run())
    df = table(s).set_index(["branch", "level"])
    total = int(df.loc[("imp", 0)].steps)
    for level in (1, 2):
        eb = df.loc[("early_bird", level)]
        assert 0 < eb.early_bird_step < total / 2, "the mask stabilised long before the end of training"
        assert eb.find_flops < df.loc[("imp", 1)].find_flops, "cheaper than the dense training IMP needs"
        ticket, bird = s.mask(Unit(level, "imp", 0)), s.mask(Unit(level, "early_bird", 0))
        assert {n: int(m.sum()) for n, m in bird.items()} == {n: int(m.sum()) for n, m in ticket.items()}
    a = {"w": torch.tensor([True, False, True, True])}
    assert mask_distance(a, {"w": torch.tensor([True, True, True, False])}) == pytest.approx(1 / 3)
    assert mask_distance(a, a) == 0.0


def test_early_bird_rule_waits_for_a_window_of_stable_masks():
    rule = Search([{"w": 5}], scope="layerwise", window=3, epsilon=0.1)
    g = torch.Generator().manual_seed(0)
    stable = torch.randn(1, 1, 20, generator=g)
    steps = []
    for step in range(0, 200, 10):
        w = torch.randn(1, 1, 20, generator=g) if step < 100 else stable  # reshuffled, then settled
        if rule(step, {"w": w}):
            steps.append(step)
            break
    assert steps == [130], "drawn once three successive distances are small: at 100 → 110 → 120 → 130"
    assert int(rule.drawn[0][1]["w"].sum()) == 5


