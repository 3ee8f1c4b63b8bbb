import os
from pathlib import Path

import pytest
import torch

from lottery.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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


def tiny_config(**train) -> ExperimentConfig:
    t = dict(optimizer="adam", lr=3e-3, batch_size=50, length="2ep", eval_every="0.5ep")
    t.update(train)
    return ExperimentConfig(data=DataConfig("synthetic", 200), model=ModelConfig("mlp_small"),
                            train=TrainConfig(**t), prune=PruneConfig(rate=0.2, output_rate=0.1),
                            levels=2, seeds=(0, 1))


@pytest.fixture
def shared_data():
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no shared MNIST at {SHARED_DATA}")
    return SHARED_DATA


os.environ.setdefault("MPLBACKEND", "Agg")
