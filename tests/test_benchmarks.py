"""The benchmarks' own measuring tools (benchmarks/common.py) measure what they say they do."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

common = pytest.importorskip("common")


@pytest.fixture(scope="module")
def data():
    from lottery.config import DataConfig
    from lottery.data import load_dataset
    return load_dataset(DataConfig("synthetic", 200))


def test_timing_a_kernel_alone_leaves_its_values_as_the_step_left_them():
    t = torch.linspace(-3, 3, 1000)
    before = t.clone()
    assert common._alone(torch.Tensor.exp_, (t,), {}, repeats=5) > 0
    assert torch.equal(t, before), "exp_ was timed on the same values each call, and they were put back"
    p, g, m, v = (torch.rand(100) for _ in range(4))
    state = [x.clone() for x in (p, m, v)]
    args = ([p], [g], [m], [v], [], [torch.ones(())])
    kwargs = dict(lr=0.1, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
    common._alone(torch._fused_adam_, args, kwargs, repeats=5)
    assert all(torch.equal(a, b) for a, b in zip((p, m, v), state)), "the optimiser's tensors were put back"


def test_the_floor_of_a_group_in_lanes_times_the_programs_the_lanes_run(data, monkeypatch):
    monkeypatch.setattr(common, "DEVICE", torch.device("cpu"))  # a CPU measure, also where a GPU is present
    trainer = common.engine_trainer(data, "mlp_small", 3, 10 ** 6, streams=1, batch_size=20, lr=1e-2, lanes=2)
    floor = common.step_floor(trainer, 1e-2, warmup=3, repeats=3)
    assert floor["products"] > 0 and floor["optimizer"] > 0 and floor["other"] > 0
    assert floor["floor"] == pytest.approx(floor["products"] + floor["masks"] + floor["optimizer"])
    assert floor["alone"] == pytest.approx(floor["floor"] + floor["other"])
    assert floor["in_lanes"] is not None, "the lanes' one-replicate programs were timed"
    assert floor["floor"] == min(floor["one_program"], floor["in_lanes"]) and floor["gflops"] > 0
    assert floor["lanes"] == (2 if floor["floor"] == floor["in_lanes"] else 1)
    assert "products" in common.describe_floor(floor)
    alone = common.engine_trainer(data, "mlp_small", 3, 10 ** 6, streams=1, batch_size=20, lr=1e-2, lanes=1)
    one = common.step_floor(alone, 1e-2, warmup=3, repeats=3)
    assert one["in_lanes"] is None and one["floor"] == one["one_program"] and one["lanes"] == 1
