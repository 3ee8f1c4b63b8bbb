"""Pruning-at-initialisation scores that need the model: SNIP, GraSP, SynFlow.

Each is a pure function of (model structure, parameters, current mask, data or none): nothing
passed in is modified, and the result is a score per prunable weight (higher = keep) or, for
SynFlow's iterative rule, the final mask. The model is only used for its structure, through
`torch.func.functional_call` with the given parameters (and buffers), in eval mode as in
SynFlow's reference code: dropout off, so a score is reproducible, and BatchNorm on its running
statistics, so a single example (SynFlow's input) works.
"""

import copy
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

from lottery.pruning.masks import Mask, kept
from lottery.pruning.select import keep_top_global


@contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _masked(params, mask):
    return {n: (p * mask[n].to(p.dtype) if n in mask else p) for n, p in params.items()}


def snip(model: nn.Module, params: dict[str, torch.Tensor], mask: Mask, x: torch.Tensor, y: torch.Tensor) -> dict:
    """SNIP (Lee et al. 2019): connection sensitivity |∂L/∂w ⊙ w| on a batch, at the masked weights."""
    w = {n: p.detach().clone().requires_grad_(n in mask) for n, p in _masked(params, mask).items()}
    with _eval_mode(model):
        loss = nn.functional.cross_entropy(functional_call(model, w, (x,)), y)
    grads = torch.autograd.grad(loss, [w[n] for n in mask])
    return {n: (g * w[n]).abs().detach() for n, g in zip(mask, grads)}


def grasp(model: nn.Module, params: dict[str, torch.Tensor], mask: Mask, x: torch.Tensor, y: torch.Tensor,
          temperature: float = 200.0) -> dict:
    """GraSP (Wang et al. 2020): the paper removes the weights with the largest −w ⊙ Hg (they
    preserve gradient flow least), so the keep-score returned here is w ⊙ Hg. Hg is the
    Hessian-gradient product of the loss with softened logits (temperature 200, as in the paper)."""
    w = {n: p.detach().clone().requires_grad_(n in mask) for n, p in _masked(params, mask).items()}
    ws = [w[n] for n in mask]
    # g at the (detached) weights, then Hg = ∂(gᵀ ∂L/∂w)/∂w with g held constant
    with _eval_mode(model):
        loss = nn.functional.cross_entropy(functional_call(model, w, (x,)) / temperature, y)
        g = [t.detach() for t in torch.autograd.grad(loss, ws)]
        loss = nn.functional.cross_entropy(functional_call(model, w, (x,)) / temperature, y)
    grads = torch.autograd.grad(loss, ws, create_graph=True)
    hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(grads, g)), ws)
    return {n: (w[n] * h).detach() for n, h in zip(mask, hg)}


def synflow(model: nn.Module, params: dict[str, torch.Tensor], mask: Mask, input_shape: tuple[int, ...],
            keep: int, rounds: int = 100) -> Mask:
    """SynFlow (Tanaka et al. 2020): iterative, data-free. Each round scores |w ⊙ ∂R/∂w| where
    R is the output sum of the network with |w| on an all-ones input, and prunes globally to
    the next point of an exponential schedule ending at `keep` weights. Uses no data; it avoids
    layer collapse because a layer's last weights carry all the synaptic flow. The additive
    terms (biases, BatchNorm shifts and running means) are zeroed in the linearised network so
    that all of the flow runs through the weights: with biases, flow that bypasses earlier layers
    lets a later layer take the whole budget at extreme sparsity (tests/test_branches.py).
    Multiplicative terms that are not pruned (BatchNorm scales and variances, weights left out
    of the mask) keep their absolute values, so flow still passes through them."""
    total = kept(mask)
    current = {n: m.clone() for n, m in mask.items()}
    abs_params = {n: _linearised(n, p) for n, p in params.items()}
    x = torch.ones(1, *input_shape, dtype=torch.float64)
    model64 = _double(model).eval()
    for k in range(1, rounds + 1):
        w = {n: (p * current[n] if n in current else p).requires_grad_(n in current) for n, p in abs_params.items()}
        out = functional_call(model64, w, (x,)).sum()
        grads = torch.autograd.grad(out, [w[n] for n in current])
        scores = {n: (g * w[n]).abs().detach() for n, g in zip(current, grads)}
        target = int(round(total * (keep / total) ** (k / rounds)))
        current = keep_top_global(scores, current, target)
    return current


def _linearised(name: str, t: torch.Tensor) -> torch.Tensor:
    """|t| for a multiplicative entry, 0 for an additive one; integer buffers as they are."""
    if not t.is_floating_point():
        return t
    if name.rsplit(".", 1)[-1] in ("bias", "running_mean"):
        return torch.zeros_like(t, dtype=torch.float64)
    return t.detach().double().abs()


def _double(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).double()
