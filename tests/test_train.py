import pytest
import torch
from torch import nn

from lottery import masks as masks_lib
from lottery import pruning
from lottery.config import DataConfig, TrainConfig
from lottery.data import load_dataset
from lottery.models import build
from lottery.stacked import VmapStack
from lottery.train import DataOrder, GroupTrainer, Replicate, learning_rate, train


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


def each_alone(model, pairs, together, data, cfg):
    """(replicate, its result trained in the group, its result trained alone), for each replicate."""
    for (_, rep), joint in zip(pairs, together):
        (alone,) = train(model, [rep], data, cfg)
        yield rep, joint, alone


def test_vectorised_group_equals_separate_runs(data):
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=40, length="2ep", eval_every="0.5ep")
    pairs = [replicate(data, s, data_seed) for s, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model = pairs[0][0]
    together = train(model, [r for _, r in pairs], data, cfg)
    for rep, joint, alone in each_alone(model, pairs, together, data, cfg):
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


@pytest.mark.parametrize("n, batch_size", [(100, 30), (100, 20), (7, 20)])  # batches across epochs; within; > an epoch
def test_a_span_of_steps_is_their_batches_in_order(n, batch_size):
    order = DataOrder(n=n, batch_size=batch_size, data_seeds=[1, 2])
    stream = torch.cat([DataOrder(n, batch_size, [1, 2]).permutation(e) for e in range(30)], dim=1)  # epoch after epoch
    for first, end in ((0, 1), (0, 4), (3, 9), (5, 6), (2, 2), (5, 5)):  # (5, 5) at 20 a batch: an epoch's end
        want = stream[:, first * batch_size: end * batch_size].reshape(2, end - first, batch_size).transpose(0, 1)
        assert torch.equal(order.span(first, end), want), (first, end)
        for t in range(first, end):
            assert torch.equal(order.indices(t), want[t - first])


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


def batchnorm_replicate(data, seed, data_seed, noise_seed=None, dropout=True):
    """A model with BatchNorm statistics and, by default, dropout (which only the fallback runs)."""
    torch.manual_seed(seed)
    # no bias before BatchNorm: its gradient is float noise around 0, which Adam would amplify
    model = nn.Sequential(nn.Flatten(), nn.Linear(data.input_shape[-1], 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                          *([nn.Dropout(0.3)] if dropout else []), nn.Linear(16, data.num_classes))
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    mask = {n: torch.rand(state[n].shape, generator=torch.Generator().manual_seed(seed)) < 0.6
            for n in masks_lib.prunable_names(model)}
    return model, Replicate(masks_lib.apply(state, mask), mask, data_seed, noise_seed)


def test_fallback_replicates_train_the_same_alone_as_together(data):
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="2ep", eval_every="1ep")
    pairs = [batchnorm_replicate(data, s, data_seed, noise) for s, data_seed, noise in ((0, 10, 5), (1, 10, 6), (2, 11, 7))]
    model = pairs[0][0]
    together = train(model, [r for _, r in pairs], data, cfg)
    for rep, joint, alone in each_alone(model, pairs, together, data, cfg):
        for n in rep.init:
            torch.testing.assert_close(joint.final[n], alone.final[n], rtol=1e-5, atol=1e-6)
        for n, m in rep.mask.items():
            assert torch.all(joint.final[n][~m] == 0.0)
        assert joint.final["2.num_batches_tracked"].item() == joint.steps
    _, other_noise = batchnorm_replicate(data, 0, 10, 99)
    (changed,) = train(model, [other_noise], data, cfg)
    assert not torch.allclose(changed.final["1.weight"], together[0].final["1.weight"]), "dropout is seeded per replicate"


class MemoryCheckpoint:
    def __init__(self):
        self.saved = None

    def save(self, tensors, meta):
        self.saved = ({k: v.clone() for k, v in tensors.items()}, meta)

    def load(self):
        return self.saved


def crash_and_resume(model, rep, data, cfg, crash_at: int, every: int, **kw):
    """Train `rep` until a crash at step `crash_at`, then again: it resumes from the last checkpoint."""
    (resumed,) = crash_and_resume_group(model, [rep], data, cfg, crash_at, every, **kw)
    return resumed


def crash_and_resume_group(model, reps, data, cfg, crash_at: int, every: int, **kw):
    """`crash_and_resume` for a group of replicates trained together: their results, resumed."""
    class Crash(Exception):
        pass

    def crash(step, total):  # progress comes every few steps (lottery.train.STEPS_PER_CALL)
        if step >= crash_at:
            raise Crash
    checkpoint = MemoryCheckpoint()
    with pytest.raises(Crash):
        train(model, reps, data, cfg, checkpoint=checkpoint, checkpoint_every=every, progress=crash, **kw)
    resumed = train(model, reps, data, cfg, checkpoint=checkpoint, checkpoint_every=every, **kw)
    assert all(r.extra["resumed_from_step"] == crash_at // every * every for r in resumed)
    return resumed


def test_fallback_resume_equals_uninterrupted(data):
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="1ep")
    model, rep = batchnorm_replicate(data, 0, 10, 5)
    (whole,) = train(model, [rep], data, cfg)
    resumed = crash_and_resume(model, rep, data, cfg, crash_at=7, every=5)
    for n in rep.init:
        assert torch.equal(resumed.final[n], whole.final[n]), n  # buffers and dropout draws included
    assert resumed.test_acc_early_stop == whole.test_acc_early_stop


def test_masks_beyond_the_weights_hold_too(data):
    """The MLP stack masks weight gradients itself; a pruned bias is masked by the trainer."""
    model, rep = replicate(data, 0, 1)
    bias = next(n for n in rep.init if n.endswith("bias"))
    rep.mask[bias] = torch.arange(rep.init[bias].numel()).reshape(rep.init[bias].shape) % 2 == 0
    start = masks_lib.apply(rep.init, rep.mask)
    (res,) = train(model, [Replicate(start, rep.mask, 1)], data,
                   TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="2ep", eval_every="1ep"))
    for n, m in rep.mask.items():
        assert torch.all(res.final[n][~m] == 0.0), n
        assert not torch.equal(res.final[n][m], start[n][m]), n


@pytest.mark.parametrize("optimizer, masking", [("adam", False), ("sgd", True)])
def test_adam_steps_mask_no_gradients_and_sgd_steps_do(data, optimizer, masking):
    """Adam holds pruned weights through its state (Optimizer.hold), so its step lists no gradient
    masking; SGD's must mask them."""
    model, rep = replicate(data, 0, 1)
    trainer = GroupTrainer(model, [rep], data, TrainConfig(optimizer=optimizer, lr=1e-2, batch_size=40))
    mask_memory = {m.untyped_storage().data_ptr() for m in trainer.masks.values()}
    args = [a for _, args, kwargs in trainer.program().kernels(0, 1e-2) for v in (*args, *kwargs.values())
            for a in (v if isinstance(v, list) else [v])]
    reads_masks = any(isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() in mask_memory for a in args)
    assert reads_masks == masking


def test_a_checkpoint_whose_adam_state_does_not_hold_pruned_weights_resumes_holding_them(data):
    """A checkpoint from before Optimizer.hold has finite second moments at pruned weights: the
    resumed trainer holds them again, and trains as the uninterrupted run does."""
    model, rep = replicate(data, 0, 1)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="1ep")
    (whole,) = train(model, [rep], data, cfg)
    checkpoint = MemoryCheckpoint()

    class Crash(Exception):
        pass

    def crash(step, total):
        if step >= 7:
            raise Crash
    with pytest.raises(Crash):
        train(model, [rep], data, cfg, checkpoint=checkpoint, checkpoint_every=5, progress=crash)
    tensors, meta = checkpoint.load()
    old = {k: (torch.where(torch.isinf(t), torch.zeros_like(t), t) if k.endswith("exp_avg_sq") else t)
           for k, t in tensors.items()}
    assert any(torch.isinf(t).any() for t in tensors.values()) and not any(torch.isinf(t).any() for t in old.values())
    checkpoint.save(old, meta)
    (resumed,) = train(model, [rep], data, cfg, checkpoint=checkpoint, checkpoint_every=5)
    for n, m in rep.mask.items():
        assert torch.all(resumed.final[n][~m] == 0.0), f"{n}: a pruned weight moved"
        assert torch.equal(resumed.final[n], whole.final[n]), n


def test_batchnorm_models_train_vectorised_as_they_would_alone(data):
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="2ep", eval_every="1ep")
    pairs = [batchnorm_replicate(data, seed, data_seed, dropout=False)
             for seed, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model = pairs[0][0]
    trainer = GroupTrainer(model, [r for _, r in pairs], data, cfg)
    assert isinstance(trainer.stack, VmapStack) and (trainer.S, trainer.R) == (2, 2)
    together = trainer.run()
    for rep, joint, alone in each_alone(model, pairs, together, data, cfg):
        for n in rep.init:
            torch.testing.assert_close(joint.final[n], alone.final[n], rtol=1e-4, atol=1e-5)
        assert joint.final["2.num_batches_tracked"].item() == joint.steps
        assert not torch.equal(joint.final["2.running_mean"], rep.init["2.running_mean"])


@pytest.mark.parametrize("make, engine", [(replicate, "mlp"), (replicate, "vmap"),
                                          (lambda data, s, ds: batchnorm_replicate(data, s, ds, dropout=False), "vmap")])
def test_a_step_run_as_its_kernels_is_the_step(data, make, engine):
    """TrainStep.kernels (what the benchmarks time one by one) is the step, bit for bit."""
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="10", eval_every="10")
    pairs = [make(data, s, ds) for s, ds in ((0, 1), (1, 1), (2, 2), (3, 2))]
    stepped, by_kernels = (GroupTrainer(pairs[0][0], [r for _, r in pairs], data, cfg, engine=engine) for _ in range(2))
    whole, parts = stepped.program(), by_kernels.program()
    for t in range(3):
        whole(t, 1e-2)
        kernels = parts.kernels(t, 1e-2)
        with torch.no_grad():
            for op, args, kwargs in kernels:
                op(*args, **kwargs)
    if engine == "mlp":
        assert sum(op in (torch.mm, torch.bmm, torch.addmm, torch.baddbmm) for op, _, _ in kernels) >= 5, \
            "the MLP engine's products are kernels of their own"
    for n, p in stepped.params.items():
        assert torch.equal(p, by_kernels.params[n]), n
        assert not torch.equal(p, torch.stack([r.init[n] for _, r in pairs]).view_as(p)), f"{n} did not train"
    assert torch.equal(stepped.train_loss_sum, by_kernels.train_loss_sum) and bool(stepped.train_loss_sum.all())
    state = stepped.optimizer.state_tensors()
    for k, v in by_kernels.optimizer.state_tensors().items():
        assert torch.equal(v, state[k]), k
