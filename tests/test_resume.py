"""A run killed with SIGKILL mid-training resumes to exactly the numbers of an uninterrupted run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import kill_when_seen
from safetensors.torch import load_file

ARGS = ["run", "synthetic-tiny", "--levels", "2", "--seeds", "0,1", "--set", "train.length=600",
        "--set", "train.eval_every=50", "--checkpoint-every", "25", "--threads", "1", "--quiet"]


def cli(store, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "lottery.cli", *ARGS, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def unit_files(run_dir: Path):
    return sorted(p.relative_to(run_dir) for p in (run_dir / "units").rglob("*") if p.is_file())


def test_sigkill_mid_training_then_resume_equals_uninterrupted(tmp_path, capsys):
    straight = cli(tmp_path / "a")
    out, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err
    reference = Path(out.strip().splitlines()[-1])

    checkpoint = kill_when_seen(cli(tmp_path / "b"), tmp_path / "b", "*/checkpoints/level_01-*.safetensors")
    run_dir = checkpoint.parent.parent
    assert not (run_dir / "units/level_01/imp/seed_0/DONE").exists(), "killed before level 1 finished"
    assert (run_dir / "units/level_00/imp/seed_0/DONE").exists(), "level 0 survived the kill"
    from lottery.cli import main
    assert main(["status", str(run_dir)]) == 0
    status = capsys.readouterr().out
    assert "units done, 0 running" in status and "(killed)" in status, "its claims died with it"
    assert "in training: level_01" in status and "ETA" in status

    resumed = cli(tmp_path / "b")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert Path(out.strip().splitlines()[-1]).name == reference.name

    assert unit_files(run_dir) == unit_files(reference)
    for rel in unit_files(reference):
        if rel.suffix == ".safetensors":
            a, b = load_file(str(reference / rel)), load_file(str(run_dir / rel))
            assert all(torch.equal(a[k], b[k]) for k in a), f"{rel} differs after resume"
        elif rel.name == "summary.json":
            a, b = json.loads((reference / rel).read_text()), json.loads((run_dir / rel).read_text())
            if rel.parts[1] == "level_01":
                assert b["resumed_from_step"] > 0 and a["resumed_from_step"] == 0, "level 1 resumed from its checkpoint"
            for s in (a, b):
                s.pop("train_seconds"), s.pop("score_seconds"), s.pop("resumed_from_step")
            assert a == b, f"{rel} differs after resume"
        elif rel.name == "metrics.jsonl":
            assert (reference / rel).read_text() == (run_dir / rel).read_text()
    assert not list(run_dir.glob("checkpoints/*.safetensors")), "finished groups leave no checkpoints"
