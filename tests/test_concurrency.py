"""Runs that are killed, and runs that share a store: the end result is the uninterrupted run's.

- SIGKILL at pseudo-random moments (inside training, during writes, between levels), each
  followed by a restart, ends bit for bit where an uninterrupted run ends.
- Two or three identical invocations at once, and two with different seeds on one run, all
  finish, train every unit exactly once between them, and leave the same results."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from lottery.atomic import read_tensors

ARGS = ["run", "synthetic-tiny", "--levels", "2", "--seeds", "0,1", "--set", "train.length=300",
        "--set", "train.eval_every=50", "--checkpoint-every", "25", "--threads", "1", "--quiet"]
TIMING = ["train_seconds", "score_seconds", "find_seconds"]


def cli(store: Path, *extra) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "lottery.cli", *ARGS, *extra, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return out


def run_dir(store: Path) -> Path:
    (d,) = [p for p in store.iterdir() if (p / "config.json").exists()]
    return d


def same_end(a: Path, b: Path) -> None:
    """Two run directories with the same results: the table (timing aside) and every tensor."""
    ta, tb = (pd.read_csv(d / "results.csv").drop(columns=TIMING) for d in (a, b))
    pd.testing.assert_frame_equal(ta, tb)
    files = sorted(p.relative_to(a) for p in (a / "units").rglob("*.safetensors"))
    assert files == sorted(p.relative_to(b) for p in (b / "units").rglob("*.safetensors"))
    for rel in files:
        x, y = read_tensors(a / rel), read_tensors(b / rel)
        assert list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x), rel
    for rel in (p.relative_to(a) for p in (a / "units").rglob("metrics.jsonl")):
        assert (a / rel).read_text() == (b / rel).read_text(), rel


def written(store: Path) -> list[str]:
    """Every unit written by every invocation, from the run's log."""
    log = [json.loads(line) for line in (run_dir(store) / "invocations.jsonl").read_text().splitlines()]
    return [u for entry in log if entry["event"] in ("finished", "interrupted") for u in entry["units_written"]]


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    started = time.monotonic()
    finish(cli(tmp_path / "whole"))
    seconds = time.monotonic() - started
    store, rng, kills = tmp_path / "killed", random.Random(7), 0
    while kills < 8:
        process = cli(store)
        time.sleep(rng.uniform(0.8, max(1.0, seconds)))  # past the start-up, anywhere in the work
        if process.poll() is not None:
            break  # it finished before this kill: the run is done
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
    assert kills >= 8, f"only {kills} kills landed before the run finished"
    finish(cli(store))
    same_end(run_dir(tmp_path / "whole"), run_dir(store))
    assert not list(run_dir(store).glob("checkpoints/*.safetensors")), "no checkpoint left behind"
    assert not list(run_dir(store).rglob("*.tmp")), "no temporary file left behind"


def test_identical_invocations_at_once_share_the_work(tmp_path):
    finish(cli(tmp_path / "alone"))
    for n in (2, 3):
        store = tmp_path / f"together-{n}"
        for p in [cli(store) for _ in range(n)]:
            finish(p)
        units = written(store)
        assert len(units) == len(set(units)) == 2 * (1 + 2 * 3), "every unit exactly once between them"
        same_end(run_dir(tmp_path / "alone"), run_dir(store))


def test_invocations_with_different_seeds_share_one_run(tmp_path):
    finish(cli(tmp_path / "alone", "--seeds", "0,1,2,3"))
    store = tmp_path / "shared"
    for p in [cli(store, "--seeds", "0,1"), cli(store, "--seeds", "2,3")]:
        finish(p)
    units = written(store)
    assert len(units) == len(set(units)) == 4 * (1 + 2 * 3)
    same_end(run_dir(tmp_path / "alone"), run_dir(store))


def test_a_deleted_done_marker_is_retrained_to_the_same_bits(tmp_path):
    """Found on an earlier version: the units of a level not marked DONE were retrained as a smaller
    group, whose floats differed (1.6 points of accuracy, and every later level's masks)."""
    finish(cli(tmp_path / "whole"))
    store = tmp_path / "again"
    finish(cli(store))
    (run_dir(store) / "units/level_01/reinit/seed_1/DONE").unlink()
    (run_dir(store) / "units/level_01/imp/seed_0/DONE").unlink()
    (run_dir(store) / "results.csv").unlink()
    finish(cli(store))
    same_end(run_dir(tmp_path / "whole"), run_dir(store))
    assert sorted(written(store)[-2:]) == ["level_01/imp/seed_0", "level_01/reinit/seed_1"], "only those two again"
