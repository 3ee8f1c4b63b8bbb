import pytest
import torch
from torch import nn

from lottery.stacked import MLPStack, VmapStack, make_stack, mlp_layers


def stacked(model_fn, S, R, seed=0):
    torch.manual_seed(seed)
    models = [model_fn() for _ in range(S * R)]
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).reshape(S, R, *p.shape)
              .clone().requires_grad_(True) for n, p in models[0].named_parameters()}
    return models[0], params


@pytest.mark.parametrize("bias", [True, False])
def test_hand_written_mlp_gradients_equal_autograd(bias):
    def make():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 16, bias=bias), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                             nn.Linear(8, 5))
    S, R, B = 2, 3, 7
    template, params = stacked(make, S, R)
    x, y = torch.randn(S, B, 12), torch.randint(0, 5, (S, B))
    fast, ref = MLPStack(template, S, R), VmapStack(template, S, R)
    loss_fast = fast.loss_and_grads(params, x, y)
    grads_fast = {n: p.grad.clone() for n, p in params.items()}
    loss_ref = ref.loss_and_grads(params, x, y)
    torch.testing.assert_close(loss_fast, loss_ref)
    for n, p in params.items():
        torch.testing.assert_close(grads_fast[n], p.grad, rtol=1e-5, atol=1e-6)
    xs = torch.randn(11, 12)
    torch.testing.assert_close(fast.logits(params, xs), ref.logits(params, xs), rtol=1e-5, atol=1e-6)


def test_engine_choice():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    tanh = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    assert mlp_layers(mlp) == [("1.weight", "1.bias"), ("3.weight", "3.bias")]
    assert mlp_layers(tanh) is None
    assert isinstance(make_stack(mlp, 1, 1), MLPStack) and isinstance(make_stack(tanh, 1, 1), VmapStack)
    assert isinstance(make_stack(mlp, 1, 1, engine="vmap"), VmapStack)
