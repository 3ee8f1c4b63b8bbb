import pytest
import torch

from lottery import masks as masks_lib
from lottery import pruning
from lottery.config import DataConfig, TrainConfig
from lottery.data import load_dataset
from lottery.models import build
from lottery.train import DataOrder, Replicate, learning_rate, train


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig("synthetic", 200))


def replicate(data, seed, data_seed, keep=0.5):
    model = build("mlp_small", data.input_shape, data.num_classes, seed)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = masks_lib.dense(params, masks_lib.prunable_names(model))
    mask = pruning.random_like({n: torch.rand(m.shape, generator=torch.Generator().manual_seed(seed)) < keep
                                for n, m in mask.items()}, torch.Generator().manual_seed(seed))
    return model, Replicate(masks_lib.apply(params, mask), mask, data_seed)


@pytest.mark.parametrize("opt", [
    dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3),
    dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    dict(optimizer="adam", lr=1e-2, weight_decay=1e-3),
])
def test_pruned_weights_stay_exactly_zero(data, opt):
    model, rep = replicate(data, 0, 1)
    cfg = TrainConfig(batch_size=40, length="2ep", eval_every="1ep", **opt)
    (res,) = train(model, [rep], data, cfg)
    for n, m in rep.mask.items():
        assert torch.all(res.final[n][~m] == 0.0), f"{n}: a pruned weight moved"
        assert not torch.equal(res.final[n][m], rep.init[n][m]), f"{n}: kept weights should train"


def test_vectorised_group_equals_separate_runs(data):
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=40, length="2ep", eval_every="0.5ep")
    pairs = [replicate(data, s, data_seed) for s, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model = pairs[0][0]
    together = train(model, [r for _, r in pairs], data, cfg)
    for (_, rep), joint in zip(pairs, together):
        (alone,) = train(model, [rep], data, cfg)
        for n in rep.init:
            torch.testing.assert_close(joint.final[n], alone.final[n], rtol=1e-4, atol=1e-5)
            assert torch.all(joint.final[n][~rep.mask[n]] == 0.0) if n in rep.mask else True
        assert joint.early_stop_step == alone.early_stop_step
        assert joint.test_acc_end == pytest.approx(alone.test_acc_end, abs=1 / 400 + 1e-9)
        for a, b in zip(joint.history, alone.history):
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-5)


def test_data_order_per_seed_reproducible_and_spans_epochs():
    order = DataOrder(n=100, batch_size=30, data_seeds=[1, 2])
    idx = order.indices(3)  # positions 90..119 cross into the second epoch
    assert idx.shape == (2, 30)
    assert not torch.equal(idx[0], idx[1]), "different seeds see different batches"
    again = DataOrder(n=100, batch_size=30, data_seeds=[1, 2]).indices(3)
    assert torch.equal(idx, again), "an order is a function of its seed alone"
    first_epoch = torch.cat([order.indices(s)[0] for s in range(3)] + [order.indices(3)[0, :10]])
    assert sorted(first_epoch.tolist()) == list(range(100)), "each epoch visits every example once"


def test_branches_of_a_seed_share_batches(data, monkeypatch):
    seen = []
    import lottery.train as t
    original = t.DataOrder.indices
    monkeypatch.setattr(t.DataOrder, "indices", lambda self, step: seen.append(list(self.data_seeds)) or original(self, step))
    pairs = [replicate(data, s, ds) for s, ds in ((0, 7), (1, 7), (2, 8), (3, 8))]
    train(pairs[0][0], [r for _, r in pairs], data, TrainConfig(batch_size=40, length="10", eval_every="5"))
    assert seen[0] == [7, 8], "one stream per data seed, shared by the replicates of that seed"


def test_schedules():
    spe = 100.0
    warm = TrainConfig(lr=1.0, warmup="10", length="1000")
    assert learning_rate(warm, 0, 1000, spe) == pytest.approx(0.1)
    assert learning_rate(warm, 50, 1000, spe) == 1.0
    step = TrainConfig(lr=1.0, schedule="step", milestones=("2ep", "500"), gamma=0.1, length="1000")
    assert [learning_rate(step, s, 1000, spe) for s in (199, 200, 499, 500)] == pytest.approx([1, 0.1, 0.1, 0.01])
    cos = TrainConfig(lr=1.0, schedule="cosine", length="1000")
    assert learning_rate(cos, 0, 1000, spe) == 1.0
    assert learning_rate(cos, 500, 1000, spe) == pytest.approx(0.5)
    assert learning_rate(cos, 1000, 1000, spe) == pytest.approx(0.0, abs=1e-12)
