"""`compile(module)`: a pruned network for inference, each part sparse where that measures faster.

    fast = lottery.sparse.compile(net, batch_size=64)
    fast(x)  # net(x), to float rounding (inference: no gradients)

What it does, measured on the machine and threads at hand, at `batch_size`:

- A ReLU MLP (`Sequential` of an optional `Flatten`, then Linear and ReLU alternating, ending
  in Linear) whose Linear layers hold zeros becomes one compiled call for the whole network
  (lottery.sparse.kernels.CSRLayers), if that beats running it dense.
- In any other module, each Linear layer holding zeros is timed three ways (dense, torch's CSR
  matmul, the compiled kernel) and the fastest kept; convolutions stay dense (no sparse
  convolution kernel here).
- A module with no zeros in its Linear weights (nothing pruned) is returned as it is.

Weights are read as the module computes them, masks attached by torch.nn.utils.prune included;
pruned entries are the exact zeros. `choices` on the result says what was picked and the times.
"""

import copy
import statistics
import time
import warnings

import torch
from torch import nn

from lottery.sparse import kernels
from lottery.sparse.masks import bake, pruning_hooks

REPEATS = 30  # timings per candidate at compile time (median)


def density(weight: torch.Tensor) -> float:
    return float((weight != 0).sum()) / max(1, weight.numel())


def median_seconds(fn, x, repeats: int = REPEATS, warmup: int = 3) -> float:
    """The median wall time of `fn(x)` over `repeats` calls after `warmup`, without autograd."""
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def mlp_layers(module: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of `module` if it is Flatten? (Linear ReLU)* Linear, else None."""
    if not isinstance(module, nn.Sequential):
        return None
    parts = list(module)
    if parts and isinstance(parts[0], nn.Flatten):
        parts = parts[1:]
    if not parts or len(parts) % 2 == 0:
        return None
    for i, part in enumerate(parts):
        if not isinstance(part, nn.Linear if i % 2 == 0 else nn.ReLU):
            return None
    return parts[::2]


class SparseMLP(nn.Module):
    """A ReLU MLP as one compiled sparse call (see the module docstring); inference only."""

    def __init__(self, linears: list[nn.Linear], dense: nn.Module):
        super().__init__()
        self.net = kernels.CSRLayers([m.weight for m in linears], [m.bias for m in linears])
        self.dense = dense  # for gradients, should anyone ask for them
        self.in_features = linears[0].in_features

    def forward(self, x):
        if x.requires_grad and torch.is_grad_enabled():
            return self.dense(x)
        return self.net.forward(x if x.dim() == 2 else x.reshape(x.shape[0], self.in_features))


class CSRLinear(nn.Module):
    """A Linear layer through torch's CSR matmul (inference)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": measured before it is used
            warnings.simplefilter("ignore", UserWarning)
            self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()
        self.out_features = linear.out_features

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        y = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


class KernelLinear(nn.Module):
    """A Linear layer through the compiled kernel (inference)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.net = kernels.CSRLayers([linear.weight], [linear.bias], relu_between=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x):
        y = self.net.forward(x.reshape(-1, self.in_features))
        return y.reshape(*x.shape[:-1], self.out_features)


def _plain(module: nn.Module) -> nn.Module:
    """A copy whose pruning masks are part of the weights (torch.nn.utils.prune hooks removed)."""
    # the weights such hooks compute are not leaves, which deepcopy refuses: copied as plain tensors
    memo = {id(getattr(m, h._tensor_name)): getattr(m, h._tensor_name).detach().clone()
            for m in module.modules() for h in pruning_hooks(m)}
    return bake(copy.deepcopy(module, memo)).eval()


def _example(width: int, batch_size: int) -> torch.Tensor:
    return torch.randn(batch_size, width, generator=torch.Generator().manual_seed(0))


def compile(module: nn.Module, batch_size: int = 64) -> nn.Module:
    """`module` for inference with its pruned Linear layers sparse where that is faster at
    `batch_size` (see the module docstring), timed on random inputs of each part's width. The
    result's `choices`: [(part, what runs it, seconds a call dense, seconds a call as chosen)]."""
    plain = _plain(module)
    linears = [(name, m) for name, m in plain.named_modules() if isinstance(m, nn.Linear)]
    pruned = [(name, m) for name, m in linears if density(m.weight) < 1.0]
    if not pruned:
        return module  # nothing pruned: nothing to gain
    use_kernel = kernels.available()
    layers = mlp_layers(plain)
    if layers is not None and use_kernel:
        fused = SparseMLP(layers, plain)
        x = _example(layers[0].in_features, batch_size)
        dense_s, fused_s = median_seconds(plain, x), median_seconds(fused, x)
        if fused_s < dense_s:
            fused.choices = [("network", "fused sparse kernel", dense_s, fused_s)]
            return fused.eval()
        plain.choices = [("network", "dense", dense_s, dense_s)]
        return plain
    choices = []
    for name, m in pruned:
        x = _example(m.in_features, batch_size)
        options = {"dense": m, "torch CSR": CSRLinear(m)}
        if use_kernel:
            options["sparse kernel"] = KernelLinear(m)
        times = {what: median_seconds(layer, x) for what, layer in options.items()}
        best = min(times, key=times.get)
        choices.append((name, best, times["dense"], times[best]))
        if best != "dense":
            parent, _, attr = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, attr, options[best])
    plain.choices = choices
    return plain
