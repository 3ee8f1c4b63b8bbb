"""The fast engine against the plain reference loop (lottery.engine.reference): the same training.

Bit for bit where the engine runs the reference's kernels (the loop stack: the module itself,
autograd, the fused optimisers); to float rounding where it computes the same functions with
other kernels (the hand-written MLP stack, vmap, lanes), with the same steps, rates and batches.
"""

import math

import pytest
import torch
from conftest import batchnorm_replicate, group, replicate, train

from lottery.config import TrainConfig
from lottery.engine.reference import train_one

SCHEDULES = [
    dict(optimizer="adam", lr=1e-2, weight_decay=1e-3, schedule="step", milestones=("1ep",), gamma=0.5),
    dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, warmup="5", schedule="cosine"),
]


def same_structure(ref, res, start_step):
    assert [h["step"] for h in res.history] == [h["step"] for h in ref.history]
    assert res.history[0]["step"] == start_step and math.isnan(res.history[0]["train_loss"])
    assert [h["lr"] for h in res.history] == [h["lr"] for h in ref.history]
    assert res.steps == ref.steps and res.snapshots.keys() == ref.snapshots.keys()


@pytest.mark.parametrize("opt", SCHEDULES)
def test_the_loop_stack_is_the_reference_bit_for_bit(data, opt):
    """A BatchNorm + dropout model (only the loop stack runs it), rewound to step 7, a snapshot
    kept at step 12: weights, buffers, losses, early stopping and test accuracies, to the bit."""
    model, rep = batchnorm_replicate(data, 0, 10, noise_seed=5)
    cfg = TrainConfig(batch_size=40, length="3ep", eval_every="0.5ep", **opt)
    (res,) = train(model, [rep], data, cfg, start_step=7, snapshot_steps=(12,), stack="loop")
    ref = train_one(model, rep, data, cfg, start_step=7, snapshot_steps=(12,))
    same_structure(ref, res, 7)
    for n in ref.final:
        assert torch.equal(res.final[n], ref.final[n]), n
        assert torch.equal(res.snapshots[12][n], ref.snapshots[12][n]), n
    for a, b in zip(res.history, ref.history):
        assert a["train_loss"] == b["train_loss"] or math.isnan(b["train_loss"])
        assert (a["val_acc"], a["val_loss"]) == (b["val_acc"], b["val_loss"])
    assert (res.early_stop_step, res.test_acc_end, res.test_acc_early_stop) == \
           (ref.early_stop_step, ref.test_acc_end, ref.test_acc_early_stop)
    for n, m in rep.mask.items():
        assert torch.all(ref.final[n][~m] == 0.0)


@pytest.mark.parametrize("opt", SCHEDULES)
@pytest.mark.parametrize("how", [dict(stack="mlp", lanes=1), dict(stack="mlp", lanes=2), dict(stack="vmap"),
                                 dict(stack="mlp", lanes=1, script=False)])
def test_the_fast_stacks_are_the_reference_to_float_rounding(data, opt, how):
    """Two seeds × two branches in one group (or in lanes), each as the reference trains it alone."""
    model, reps = group(data, seeds=2, branches=2)
    cfg = TrainConfig(batch_size=40, length="2ep", eval_every="0.5ep", **opt)
    torch.set_num_threads(2)
    results = train(model, reps, data, cfg, start_step=3, snapshot_steps=(5,), **how)
    for rep, res in zip(reps, results):
        ref = train_one(model, rep, data, cfg, start_step=3, snapshot_steps=(5,))
        same_structure(ref, res, 3)
        for n in ref.final:
            torch.testing.assert_close(res.final[n], ref.final[n], rtol=1e-4, atol=1e-5)
        for a, b in zip(res.history[1:], ref.history[1:]):
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert res.early_stop_step == ref.early_stop_step
        assert res.test_acc_early_stop == pytest.approx(ref.test_acc_early_stop, abs=1 / 400 + 1e-9)


def test_fine_tuning_trains_at_the_final_rate(data):
    model, rep = replicate(data, 0, 1)
    cfg = TrainConfig(optimizer="sgd", lr=0.1, batch_size=40, length="2ep", eval_every="1ep", schedule="step",
                      milestones=("1ep",), gamma=0.1)
    (res,) = train(model, [rep], data, cfg, lr_mode="final", stack="loop")
    ref = train_one(model, rep, data, cfg, lr_mode="final")
    assert [h["lr"] for h in ref.history] == pytest.approx([0.01] * len(ref.history))
    for n in ref.final:
        assert torch.equal(res.final[n], ref.final[n]), n
