"""Stacks whose gradients come from autograd: vectorised with torch.func, or one replicate at a time."""

import copy

import torch
from torch import nn
from torch.func import functional_call, vmap

from lottery.engine.stacked.losses import per_replicate_loss
from lottery.seeds import derive, seeded


class VmapStack:
    """Any randomness-free module, vectorised with torch.func; gradients by autograd. Buffers in
    the state are stacked like the parameters, so BatchNorm keeps running statistics per replicate."""

    name = "vmap"
    groups = True
    fixed_kernels = False  # autograd builds new gradients each step
    lanes = False  # its step runs in Python: lanes would queue for the GIL (engine/lanes.py)
    masks_gradients_of: frozenset = frozenset()  # none: the step masks every gradient after the backward

    def __init__(self, template: nn.Module, S: int, R: int):
        self.template, self.S, self.R = copy.deepcopy(template).to("meta"), S, R

        def one(p, x):
            return functional_call(self.template, p, (x,))
        self._per_seed = vmap(vmap(one, in_dims=(0, None)), in_dims=(0, 0))  # [S,R] params, [S,B] data
        self._shared = vmap(vmap(one, in_dims=(0, None)), in_dims=(0, None))  # one batch for all

    def loss_and_grads(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int = 0) -> torch.Tensor:
        for p in params.values():
            p.grad = None
        self.template.train()
        with torch.enable_grad():
            per = per_replicate_loss(self._per_seed(params, x), y)
            per.sum().backward()  # the sum of per-replicate losses: each replicate gets its own gradient
        return per.detach()

    def logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """x [N, ...] shared by every replicate → logits [S, R, N, C]."""
        self.template.eval()
        return self._shared(params, x)


class LoopStack:
    """One replicate after another through the module itself: the fallback that runs anything.

    Each replicate's parameters and buffers are views into the stacked state, so BatchNorm's
    running statistics update in place per replicate. Randomness (dropout) is drawn from
    `derive(noise_seed, "step", step)` alone, so a replicate trains the same in any group and
    after a resume.
    """

    name = "loop"
    groups = False  # one replicate after another: a group is no faster than its units apart
    fixed_kernels = False
    lanes = False  # it seeds torch's global generator, which threads share
    masks_gradients_of: frozenset = frozenset()  # none: the step masks every gradient after the backward

    def __init__(self, template: nn.Module, S: int, R: int, noise_seeds: list[int] | None = None, device="cpu"):
        self.module, self.S, self.R = copy.deepcopy(template).to(device), S, R
        self.noise_seeds = list(noise_seeds) if noise_seeds is not None else list(range(S * R))
        self.device = torch.device(device)

    def _run(self, state, s, r, x):
        return functional_call(self.module, {n: t[s, r] for n, t in state.items()}, (x,))

    def loss_and_grads(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int = 0) -> torch.Tensor:
        for p in params.values():
            p.grad = None
        self.module.train()
        per = torch.empty(self.S, self.R, device=x.device)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.enable_grad():
            for s in range(self.S):
                for r in range(self.R):
                    with seeded(derive(self.noise_seeds[s * self.R + r], "step", step), devices):
                        loss = nn.functional.cross_entropy(self._run(params, s, r, x[s]), y[s])
                        loss.backward()  # into this replicate's slice of each stacked .grad
                    per[s, r] = loss.detach()
        return per

    def logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        self.module.eval()
        return torch.stack([torch.stack([self._run(params, s, r, x) for r in range(self.R)])
                            for s in range(self.S)])
