import pytest
import torch
from torch import nn

from lottery.engine.stacked import (
    STACKS,
    LoopStack,
    MLPStack,
    ModuleStack,
    VmapStack,
    choose,
    make_stack,
    mlp_layers,
    vectorise_problem,
)


def stacked(model_fn, S, R, seed=0):
    torch.manual_seed(seed)
    models = [model_fn() for _ in range(S * R)]
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).reshape(S, R, *p.shape)
              .clone().requires_grad_(True) for n, p in models[0].named_parameters()}
    return models[0], params


@pytest.mark.parametrize("bias, depth, S, R", [(True, 3, 2, 3), (False, 3, 2, 3), (True, 2, 2, 3), (True, 1, 2, 3),
                                             (True, 3, 6, 1), (False, 3, 5, 2), (True, 1, 5, 2)])
def test_hand_written_mlp_gradients_equal_autograd(bias, depth, S, R):
    """Both layouts of the first layer (one GEMM per seed for few seeds, one bmm for many), with
    and without masks, against vmap + autograd."""
    def make():
        layers = {3: [nn.Linear(12, 16, bias=bias), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)],
                  2: [nn.Linear(12, 16, bias=bias), nn.ReLU(), nn.Linear(16, 5)],
                  1: [nn.Linear(12, 5, bias=bias)]}[depth]
        return nn.Sequential(nn.Flatten(), *layers)
    B = 7
    template, params = stacked(make, S, R)
    x, y = torch.randn(S, B, 12), torch.randint(0, 5, (S, B))
    fast, ref = MLPStack(template, S, R), VmapStack(template, S, R)
    masks = {n: (torch.rand(p.shape) < 0.6).float() for n, p in params.items() if n.endswith("weight")}
    loss_fast = fast.loss_and_grads(params, x, y)
    grads_fast = {n: p.grad.clone() for n, p in params.items()}
    fast.loss_and_grads(params, x, y, masks=masks)
    grads_masked = {n: p.grad.clone() for n, p in params.items()}
    loss_ref = ref.loss_and_grads(params, x, y)
    torch.testing.assert_close(loss_fast, loss_ref)
    for n, p in params.items():
        torch.testing.assert_close(grads_fast[n], p.grad, rtol=1e-5, atol=1e-6)
        want = p.grad * masks[n] if n in masks else p.grad
        torch.testing.assert_close(grads_masked[n], want, rtol=1e-5, atol=1e-6)
        if n in masks:
            assert torch.all(grads_masked[n][masks[n] == 0] == 0.0)
    xs = torch.randn(11, 12)
    torch.testing.assert_close(fast.logits(params, xs), ref.logits(params, xs), rtol=1e-5, atol=1e-6)


def test_engine_choice():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    tanh = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    assert mlp_layers(mlp) == [("1.weight", "1.bias"), ("3.weight", "3.bias")]
    assert mlp_layers(tanh) is None
    assert isinstance(make_stack(mlp, 1, 1), MLPStack) and isinstance(make_stack(tanh, 1, 1), ModuleStack)
    assert isinstance(make_stack(mlp, 1, 1, engine="vmap"), VmapStack)
    # each stack answers to the name that builds it, the name the run records
    assert [make_stack(mlp, 1, 1, engine=e).name for e in STACKS] == list(STACKS)


def test_engine_choice_falls_back_to_a_loop_for_what_vmap_cannot_run():
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    plain = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    batchnorm = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))
    dropout = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.5), nn.Tanh(), nn.Linear(5, 3))
    both = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Dropout(0.5), nn.Linear(5, 3))
    assert vectorise_problem(plain, x, y) is None
    assert vectorise_problem(batchnorm, x, y) is None, "stacked buffers vectorise"
    assert "vmap cannot run it" in vectorise_problem(dropout, x, y)
    assert "vmap cannot run it" in vectorise_problem(both, x, y)
    assert isinstance(make_stack(plain, 1, 2, example=(x, y)), ModuleStack)
    assert isinstance(make_stack(batchnorm, 1, 2, example=(x, y)), ModuleStack)
    # vmap, faster for some, only where a unit's numbers may depend on its group
    assert choose(plain, (x, y), independent=False) == "vmap" == choose(plain, (x, y), "vmap")
    assert isinstance(make_stack(dropout, 1, 2, example=(x, y)), LoopStack)


@pytest.mark.parametrize("stack", [LoopStack, VmapStack])
def test_batchnorm_stacks_equal_each_module_alone(stack):
    def make():
        return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3))
    S, R, B = 2, 2, 8
    torch.manual_seed(0)
    models = [make() for _ in range(S * R)]
    state = {n: torch.stack([m.state_dict()[n] for m in models]).reshape(S, R, *t.shape).clone()
             for n, t in models[0].state_dict().items()}
    params = {n: t.requires_grad_(t.is_floating_point() and "running" not in n) for n, t in state.items()}
    x, y = torch.randn(S, B, 6), torch.randint(0, 3, (S, B))
    loss = stack(models[0], S, R).loss_and_grads(params, x, y)
    for k, m in enumerate(models):
        s, r = divmod(k, R)
        ref = nn.functional.cross_entropy(m(x[s]), y[s])
        ref.backward()
        assert loss[s, r].item() == pytest.approx(ref.item(), rel=1e-6)
        for n, p in m.named_parameters():
            torch.testing.assert_close(params[n].grad[s, r], p.grad)
        torch.testing.assert_close(params["1.running_mean"][s, r], m[1].running_mean)  # updated in place
        torch.testing.assert_close(params["1.running_var"][s, r], m[1].running_var)
        assert params["1.num_batches_tracked"][s, r] == m[1].num_batches_tracked
