import pytest
import torch

from lottery.config import TrainConfig
from lottery.engine import optim

SETTINGS = [
    dict(optimizer="adam", lr=1e-2),
    dict(optimizer="adam", lr=1e-2, weight_decay=1e-3),
    dict(optimizer="sgd", lr=0.05),
    dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4),
    dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True),
]


def reference(cfg, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay, foreach=False)


def run(make, cfg, steps=6):
    torch.manual_seed(0)
    params = [torch.randn(2, 1, 3, 5, requires_grad=True), torch.randn(1, 2, 4, requires_grad=True)]  # stacked [S, R, ...]
    opt = make(cfg, params)
    for t in range(steps):
        lr = cfg.lr * (1 - t / steps)  # a changing rate, as schedules make it
        for p in params:
            p.grad = torch.randn_like(p)
        if isinstance(opt, torch.optim.Optimizer):
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
        else:
            opt.step(lr)
    return params, opt


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("fused", [True, False])
def test_equals_torch_optim(setting, fused, monkeypatch):
    if not fused:  # the path torch versions without fused CPU kernels take
        monkeypatch.setattr(optim, "_has_fused", lambda name, device: False)
    cfg = TrainConfig(**setting)
    ours, opt = run(optim.Optimizer, cfg)
    assert (opt.fallback is None) == fused
    theirs, _ = run(reference, cfg)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("setting", SETTINGS)
def test_state_round_trip_continues_identically(setting):
    cfg = TrainConfig(**setting)
    params, opt = run(optim.Optimizer, cfg, steps=3)
    saved = {k: v.clone() for k, v in opt.state_tensors().items()}
    copies = [p.detach().clone().requires_grad_(True) for p in params]
    again = optim.Optimizer(cfg, copies)
    again.load_state_tensors(saved)
    for a, b in ((opt, params), (again, copies)):
        for p, g in zip(b, (torch.ones(2, 1, 3, 5), torch.ones(1, 2, 4))):
            p.grad = g
        a.step(cfg.lr)
    for p, q in zip(params, copies):
        assert torch.equal(p, q)


@pytest.mark.parametrize("setting", [SETTINGS[0], SETTINGS[4]])
def test_a_replicates_updates_do_not_depend_on_what_is_stacked_beside_it(setting):
    """Replicate [0, 0]'s parameters after many steps, stacked with others or alone: the same bits.
    Four entries alone fall in the fused kernel's scalar tail, stacked with a second replicate in
    its vector loop, where Adam's arithmetic differed in the last bit within ~100 steps."""
    cfg = TrainConfig(**setting)
    torch.manual_seed(0)
    start, grads = torch.randn(3, 2, 4), torch.randn(300, 3, 2, 4)
    results = []
    for S, R in ((1, 1), (1, 2), (3, 2)):
        p = start[:S, :R].clone().requires_grad_(True)
        opt = optim.Optimizer(cfg, [p])
        for g in grads:
            p.grad = g[:S, :R].clone()
            opt.step(cfg.lr)
        results.append(p.detach()[0, 0])
    assert all(torch.equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_adam_holds_masked_entries_without_masked_gradients(weight_decay):
    """Adam with +inf second moments at the pruned entries (Optimizer.hold) leaves them 0.0 under
    any gradient, and moves the kept entries exactly as Adam on masked gradients does."""
    torch.manual_seed(0)
    mask = torch.rand(2, 20, 30) < 0.3
    start = torch.randn(2, 20, 30) * mask
    cfg = TrainConfig(optimizer="adam", lr=0.1, weight_decay=weight_decay)
    held, masked = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
    a, b = optim.Optimizer(cfg, [held]), optim.Optimizer(cfg, [masked])
    assert a.hold([mask])
    for _ in range(5):
        g = torch.randn(2, 20, 30) * 1e3
        held.grad, masked.grad = g.clone(), g * mask
        a.step(cfg.lr)
        b.step(cfg.lr)
    assert torch.all(held[~mask] == 0.0) and torch.equal(held, masked)
    assert not torch.equal(held[mask], start[mask])


def test_only_fused_adam_holds(monkeypatch):
    p = torch.zeros(3, requires_grad=True)
    mask = torch.tensor([True, False, True])
    assert not optim.Optimizer(TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9), [p]).hold([mask])
    monkeypatch.setattr(optim, "_has_fused", lambda name, device: False)
    assert not optim.Optimizer(TrainConfig(optimizer="adam", lr=0.1), [p]).hold([mask])
