"""Shared fixtures and helpers. Tests stay on the CPU, off the network and out of the user's cache."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from lottery import engine, pruning
from lottery.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
)
from lottery.data import load_dataset
from lottery.engine import Replicate
from lottery.models import build

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test touches the user's cache or the network, and torch stays single-threaded."""
    monkeypatch.setenv("LOTTERY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LOTTERY_OFFLINE", "1")
    monkeypatch.delenv("LOTTERY_DATA_DIR", raising=False)
    monkeypatch.delenv("LOTTERY_STORE", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data():
    """The synthetic 4-class dataset (1,000 training examples, 200 for validation)."""
    return load_dataset(DataConfig("synthetic", 200))


@pytest.fixture
def shared_data():
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no shared MNIST at {SHARED_DATA}")
    return SHARED_DATA


def tiny_config(**train) -> ExperimentConfig:
    t = dict(optimizer="adam", lr=3e-3, batch_size=50, length="2ep", eval_every="0.5ep")
    t.update(train)
    return ExperimentConfig(data=DataConfig("synthetic", 200), model=ModelConfig("mlp_small"),
                            train=TrainConfig(**t), prune=PruneConfig(rate=0.2, output_rate=0.1),
                            levels=2, seeds=(0, 1))


# --- replicates and groups ---------------------------------------------------------------------
def replicate(data, seed, data_seed, keep=0.5):
    """(model, replicate): a small ReLU MLP with a random mask keeping about `keep` of each layer."""
    model = build("mlp_small", data.input_shape, data.num_classes, seed)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = {n: torch.rand(params[n].shape, generator=torch.Generator().manual_seed(seed)) < keep
            for n in pruning.prunable_names(model)}
    mask = pruning.random_like(mask, torch.Generator().manual_seed(seed))
    return model, Replicate(pruning.apply(params, mask), mask, data_seed)


def batchnorm_replicate(data, seed, data_seed, noise_seed=None, dropout=True):
    """A model with BatchNorm statistics and, by default, dropout (which only the loop stack runs)."""
    torch.manual_seed(seed)
    # no bias before BatchNorm: its gradient is float noise around 0, which Adam would amplify
    model = nn.Sequential(nn.Flatten(), nn.Linear(data.input_shape[-1], 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                          *([nn.Dropout(0.3)] if dropout else []), nn.Linear(16, data.num_classes))
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    mask = {n: torch.rand(state[n].shape, generator=torch.Generator().manual_seed(seed)) < 0.6
            for n in pruning.prunable_names(model)}
    return model, Replicate(pruning.apply(state, mask), mask, data_seed, noise_seed)


def group(data, seeds=3, branches=2):
    """(model, replicates): `seeds` data streams × `branches` replicates sharing each."""
    pairs = [replicate(data, 10 * s + b, 100 + s) for s in range(seeds) for b in range(branches)]
    return pairs[0][0], [r for _, r in pairs]


def train(model, reps, data, cfg, *, checkpoint=None, progress=None, observer=None, start_step=0,
          snapshot_steps=(), lr_mode="schedule", augment="none", **options):
    """The engine's front door with the group spelt out and options as keywords."""
    g = engine.Group(model, reps, data, cfg, start_step=start_step, snapshot_steps=snapshot_steps, lr_mode=lr_mode,
                     augment=augment)
    options.setdefault("device", "cpu")
    return engine.train(g, engine.Options(**options), checkpoint=checkpoint, progress=progress, observer=observer)


def assert_same_training(a, b):
    """Two lists of results, the same bit for bit: weights, histories, early stopping, test accuracies."""
    for x, y in zip(a, b, strict=True):
        assert x.final.keys() == y.final.keys()
        for n in x.final:
            assert torch.equal(x.final[n], y.final[n]), n
        assert json.dumps(x.history) == json.dumps(y.history)  # training and validation losses, to the bit
        assert (x.test_acc_end, x.test_acc_early_stop, x.early_stop_step) == \
               (y.test_acc_end, y.test_acc_early_stop, y.early_stop_step)


class Counting:
    """The local executor, counting what the driver offers it and the groups it trains."""

    name = "counting"

    def __init__(self, **options):
        from lottery.execute import LocalExecutor

        self.local, self.offers, self.groups = LocalExecutor(**options), [], []

    def run(self, work):
        while jobs := work.ready():
            self.offers.append([(j.unit.level, j.unit.branch, j.unit.seed) for j in jobs])
            for g in self.local.groups(jobs, work):
                self.groups.append([(j.unit.level, j.unit.branch, j.unit.seed) for j in g])
                self.local.train(g, work)


# --- crashing and resuming ------------------------------------------------------------------
def kill_when_seen(process, root: Path, pattern: str, timeout: float = 120) -> Path:
    """SIGKILL `process` as soon as a file matching `pattern` appears under `root`; that file."""
    deadline, seen = time.time() + timeout, None
    while time.time() < deadline and seen is None:
        found = list(root.glob(pattern))
        seen = found[0] if found else None
        time.sleep(0.002)
    assert seen is not None, f"never saw {pattern} under {root}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return seen


class MemoryCheckpoint:
    def __init__(self):
        self.saved = None

    def save(self, tensors, meta):
        self.saved = ({k: v.clone() for k, v in tensors.items()}, meta)

    def load(self):
        return self.saved


class Crash(Exception):
    pass


def crash_and_resume_group(model, reps, data, cfg, crash_at: int, every: int, **kw):
    """Train `reps` until a crash at the first progress report at or after step `crash_at` (reports
    come every few steps), then again: it resumes from the last checkpoint. Their results, resumed."""
    def crash(step, total, metrics=None):
        if step >= crash_at:
            raise Crash
    checkpoint = MemoryCheckpoint()
    with pytest.raises(Crash):
        train(model, reps, data, cfg, checkpoint=checkpoint, checkpoint_every=every, progress=crash, **kw)
    resumed = train(model, reps, data, cfg, checkpoint=checkpoint, checkpoint_every=every, **kw)
    assert all(r.extra["resumed_from_step"] == crash_at // every * every for r in resumed)
    return resumed


def crash_and_resume(model, rep, data, cfg, crash_at: int, every: int, **kw):
    (resumed,) = crash_and_resume_group(model, [rep], data, cfg, crash_at, every, **kw)
    return resumed
