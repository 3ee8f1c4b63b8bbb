"""The engine's contract: what a group of replicates trained together gives, whatever the path."""

import pytest
import torch
from conftest import (
    Crash,
    MemoryCheckpoint,
    assert_same_training,
    batchnorm_replicate,
    crash_and_resume,
    replicate,
    train,
)

from lottery import engine
from lottery.config import TrainConfig
from lottery.engine.schedule import DataOrder, learning_rate
from lottery.errors import ConfigError, EngineWarning

OPTIMISERS = [
    dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3),
    dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    dict(optimizer="adam", lr=1e-2, weight_decay=1e-3),
]


class EveryStep:
    """An observer that checks the pruned weights of every replicate at every evaluation."""

    def __init__(self, masks):
        self.masks, self.seen = masks, 0

    def __call__(self, step, params):
        for n, m in self.masks.items():
            assert torch.all(params[n].detach()[~m.expand_as(params[n])] == 0.0), f"step {step}: {n} moved"
        self.seen += 1
        return False

    def state(self):
        return {}, None


@pytest.mark.parametrize("opt", OPTIMISERS)
@pytest.mark.parametrize("stack", ["mlp", "vmap"])
def test_pruned_weights_are_exactly_zero_after_every_step(data, opt, stack):
    pairs = [replicate(data, s, ds) for s, ds in ((0, 1), (1, 1), (2, 2), (3, 2))]
    reps = [r for _, r in pairs]
    cfg = TrainConfig(batch_size=40, length="1ep", eval_every="1", **opt)
    masks = {n: torch.stack([r.mask[n] for r in reps]).view(2, 2, *reps[0].mask[n].shape) for n in reps[0].mask}
    watch = EveryStep(masks)
    results = train(pairs[0][0], reps, data, cfg, observer=watch, stack=stack)
    assert watch.seen == results[0].steps + 1, "an evaluation at every step, the start included"
    for rep, res in zip(reps, results):
        for n, m in rep.mask.items():
            assert torch.all(res.final[n][~m] == 0.0), f"{n}: a pruned weight moved"
            assert not torch.equal(res.final[n][m], rep.init[n][m]), f"{n}: kept weights should train"


def each_alone(model, pairs, together, data, cfg):
    """(replicate, its result trained in the group, its result trained alone), for each replicate."""
    for (_, rep), joint in zip(pairs, together):
        (alone,) = train(model, [rep], data, cfg)
        yield rep, joint, alone


def assert_each_as_alone(model, pairs, together, data, cfg):
    """Each replicate trained in the group ends bit for bit as alone, its pruned weights at zero."""
    for rep, joint, alone in each_alone(model, pairs, together, data, cfg):
        assert_same_training([joint], [alone])
        for n, m in rep.mask.items():
            assert torch.all(joint.final[n][~m] == 0.0)


def test_vectorised_group_equals_separate_runs(data):
    """Each unit of a group ends as it would alone, bit for bit (lottery.engine.options: independence)."""
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=40, length="2ep", eval_every="0.5ep")
    pairs = [replicate(data, s, data_seed) for s, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model = pairs[0][0]
    together = train(model, [r for _, r in pairs], data, cfg)
    assert_each_as_alone(model, pairs, together, data, cfg)


def test_replicates_sharing_a_data_seed_see_the_same_batches(data):
    """A paired design: the branches of a seed train on the same batches, so two copies of one
    replicate end alike in a group, and the same replicate on another data seed does not."""
    _, rep = replicate(data, 0, 10)
    model, other = replicate(data, 1, 10)
    other_stream = engine.Replicate(rep.init, rep.mask, data_seed=11)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="1ep", eval_every="1ep")
    a, b, c, _ = train(model, [rep, rep, other_stream, other], data, cfg)
    first = next(iter(rep.mask))
    assert_same_training([a], [b])
    assert (a.final[first] - c.final[first]).abs().max() > 1e-3, "another data seed, other batches"


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


def test_fallback_replicates_train_the_same_alone_as_together(data):
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="2ep", eval_every="1ep")
    pairs = [batchnorm_replicate(data, s, data_seed, noise) for s, data_seed, noise in ((0, 10, 5), (1, 10, 6), (2, 11, 7))]
    model = pairs[0][0]
    together = train(model, [r for _, r in pairs], data, cfg)
    assert_each_as_alone(model, pairs, together, data, cfg)
    assert all(joint.final["2.num_batches_tracked"].item() == joint.steps for joint in together)
    _, other_noise = batchnorm_replicate(data, 0, 10, 99)
    (changed,) = train(model, [other_noise], data, cfg)
    assert not torch.allclose(changed.final["1.weight"], together[0].final["1.weight"]), "dropout is seeded per replicate"


def test_fallback_resume_equals_uninterrupted(data):
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="1ep")
    model, rep = batchnorm_replicate(data, 0, 10, 5)
    (whole,) = train(model, [rep], data, cfg)
    resumed = crash_and_resume(model, rep, data, cfg, crash_at=7, every=5)
    for n in rep.init:
        assert torch.equal(resumed.final[n], whole.final[n]), n  # buffers and dropout draws included
    assert resumed.test_acc_early_stop == whole.test_acc_early_stop


def test_masks_beyond_the_weights_hold_too(data):
    """A pruned bias stays zero as a pruned weight does."""
    model, rep = replicate(data, 0, 1)
    bias = next(n for n in rep.init if n.endswith("bias"))
    rep.mask[bias] = torch.arange(rep.init[bias].numel()).reshape(rep.init[bias].shape) % 2 == 0
    start = {n: t * rep.mask[n] if n in rep.mask else t for n, t in rep.init.items()}
    for opt in OPTIMISERS:
        (res,) = train(model, [engine.Replicate(start, rep.mask, 1)], data,
                       TrainConfig(batch_size=40, length="2ep", eval_every="1ep", **opt))
        for n, m in rep.mask.items():
            assert torch.all(res.final[n][~m] == 0.0), (opt, n)
            assert not torch.equal(res.final[n][m], start[n][m]), (opt, n)


def test_a_checkpoint_whose_adam_state_does_not_hold_pruned_weights_resumes_holding_them(data):
    """No optimiser state can revive a pruned weight: a checkpoint whose Adam moments at pruned
    weights are finite (one from an older version, or edited) resumes to the uninterrupted run."""
    model, rep = replicate(data, 0, 1)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="1ep")
    (whole,) = train(model, [rep], data, cfg)
    checkpoint = MemoryCheckpoint()

    def crash(step, total, metrics=None):
        if step >= 7:
            raise Crash
    with pytest.raises(Crash):
        train(model, [rep], data, cfg, checkpoint=checkpoint, checkpoint_every=5, progress=crash)
    tensors, meta = checkpoint.load()
    old = {k: (torch.where(torch.isinf(t), torch.zeros_like(t), t) if k.endswith("exp_avg_sq") else t)
           for k, t in tensors.items()}
    checkpoint.save(old, meta)
    (resumed,) = train(model, [rep], data, cfg, checkpoint=checkpoint, checkpoint_every=5)
    for n, m in rep.mask.items():
        assert torch.all(resumed.final[n][~m] == 0.0), f"{n}: a pruned weight moved"
        assert torch.equal(resumed.final[n], whole.final[n]), n


@pytest.mark.parametrize("independent", [True, False])
def test_batchnorm_models_train_vectorised_as_they_would_alone(data, independent):
    """Bit for bit through the modules stack; through vmap (chosen only when independence is
    waived), to float rounding."""
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="2ep", eval_every="1ep")
    pairs = [batchnorm_replicate(data, seed, data_seed, dropout=False)
             for seed, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model = pairs[0][0]
    options = engine.Options(device="cpu", independent=independent)
    plan = engine.plan(model, (data.train_x[:2], data.train_y[:2]), options)
    assert (plan.stack, plan.independent) == (("modules", True) if independent else ("vmap", False))
    together = train(model, [r for _, r in pairs], data, cfg, independent=independent)
    assert together[0].extra["group_size"] == 4
    for rep, joint, alone in each_alone(model, pairs, together, data, cfg):
        if independent:
            assert_same_training([joint], [alone])
        for n in rep.init:
            torch.testing.assert_close(joint.final[n], alone.final[n], rtol=1e-4, atol=1e-5)
        assert joint.final["2.num_batches_tracked"].item() == joint.steps
        assert not torch.equal(joint.final["2.running_mean"], rep.init["2.running_mean"])


@pytest.mark.parametrize("make, stack", [(replicate, "mlp"), (replicate, "vmap"),
                                         (lambda data, s, ds: batchnorm_replicate(data, s, ds, dropout=False), "vmap")])
def test_a_step_run_as_its_kernels_is_the_step(data, make, stack):
    """Trainer.program().kernels (what the benchmarks time one by one) is the step, bit for bit."""
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="10", eval_every="10")
    pairs = [make(data, s, ds) for s, ds in ((0, 1), (1, 1), (2, 2), (3, 2))]
    group = engine.Group(pairs[0][0], [r for _, r in pairs], data, cfg)
    plan = engine.plan(group.template, group.example(), engine.Options(device="cpu", stack=stack))
    stepped, by_kernels = engine.Trainer(group, plan), engine.Trainer(group, plan)
    whole, parts = stepped.program(), by_kernels.program()
    for t in range(3):
        whole(t, 1e-2)
        kernels = parts.kernels(t, 1e-2)
        with torch.no_grad():
            for op, args, kwargs in kernels:
                op(*args, **kwargs)
    if stack == "mlp":
        assert sum(op in (torch.mm, torch.bmm, torch.addmm, torch.baddbmm) for op, _, _ in kernels) >= 5, \
            "the MLP engine's products are kernels of their own"
    for n, p in stepped.params.items():
        assert torch.equal(p, by_kernels.params[n]), n
        assert not torch.equal(p, torch.stack([r.init[n] for _, r in pairs]).view_as(p)), f"{n} did not train"
    assert torch.equal(stepped.train_loss_sum, by_kernels.train_loss_sum) and bool(stepped.train_loss_sum.all())
    state = stepped.optimizer.state_tensors()
    for k, v in by_kernels.optimizer.state_tensors().items():
        assert torch.equal(v, state[k]), k


def test_the_plan_says_what_the_engine_will_do(data):
    """Which stack trains a model and whether its step is compiled: the engine's plan, recorded by runs."""
    example = (data.train_x[:2], data.train_y[:2])
    mlp, _ = replicate(data, 0, 1)
    bn, _ = batchnorm_replicate(data, 0, 1, dropout=False)
    assert engine.plan(mlp, example).record() == {"engine": "mlp", "script": True, "cuda_graphs": False,
                                                   "lanes": "auto", "device": "cpu", "layout_independent": True}
    assert not engine.plan(mlp, example, engine.Options(stack="vmap")).independent, "vmap folds replicates together"
    assert not engine.plan(mlp, example, engine.Options(script=False)).script
    assert engine.plan(mlp, example, engine.Options(stack="vmap")).stack == "vmap"
    assert not engine.plan(bn, example).script, "only fixed-kernel steps compile"
    dropout, _ = batchnorm_replicate(data, 0, 1)
    with pytest.warns(EngineWarning, match="cannot be vectorised"):
        plan = engine.plan(dropout, example)
    assert plan.stack == "loop" and not plan.groups
    with pytest.raises(ConfigError, match="engine 'mlp' runs Sequential stacks of Linear and ReLU"):
        engine.plan(bn, example, engine.Options(stack="mlp"))
