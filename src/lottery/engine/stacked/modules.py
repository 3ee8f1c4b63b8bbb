"""The stack for convolutional networks: each replicate through the module itself, one after
another, in one program that can run in lanes.

Why not vmap: for convolutions its batching rule folds the replicates into grouped convolutions
and extra copies, slower than calling each replicate's convolutions as they are; and a group's
units then share the cores as one program, where lanes give each core whole programs
(measurements: docs/engine.md). Each replicate's parameters are leaves of their own that share
memory with the stacked state, their gradients views of one stacked gradient buffer: a
replicate's backward writes only its own slice (autograd through `state[s, r]` views would
materialise a gradient of the whole stack for every replicate). The replicates of one seed read
the same batch. Images go through in channels-last layout, which the CPU's convolution kernels
run faster. A model this stack runs has no randomness (the engine chooses it only for models
vmap can run), so its programs may run in threads side by side.
"""

import copy

import torch
from torch import nn
from torch.func import functional_call


class ModuleStack:
    name = "modules"
    groups = True  # in lanes, a group's units keep every core busy with whole programs
    fixed_kernels = False  # autograd: a new graph each step
    lanes = True  # no randomness, no shared state: programs may run in threads
    masks_gradients_of: frozenset = frozenset()  # the step masks gradients after the backward

    def __init__(self, template: nn.Module, S: int, R: int, device="cpu"):
        self.module, self.S, self.R = copy.deepcopy(template).to(device), S, R
        self.parameters = {n for n, _ in template.named_parameters()}  # the rest of the state: buffers
        self._for: list[torch.Tensor] = []  # the stacked tensors the replicates' leaves were made from
        self._leaves: list[dict[str, torch.Tensor]] = []  # replicate k's parameters (leaves) and buffers (views)

    def _replicates(self, state: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Each replicate's tensors over the stacked `state`, made once per state: parameters as
        leaves sharing the stacked memory, with gradients that are views of the stacked ones."""
        tensors = list(state.values())
        if len(tensors) == len(self._for) and all(a is b for a, b in zip(tensors, self._for)):
            self._attach(state)
            return self._leaves
        for n, p in state.items():
            if n in self.parameters and p.grad is None:
                p.grad = torch.zeros_like(p)
        leaves = []
        for k in range(self.S * self.R):
            s, r = divmod(k, self.R)
            one = {}
            for n, t in state.items():
                if n in self.parameters:
                    leaf = t.detach()[s, r].requires_grad_(True)
                    leaf.grad = t.grad[s, r]
                    one[n] = leaf
                else:
                    one[n] = t[s, r]  # a buffer (BatchNorm statistics): updated in place
            leaves.append(one)
        self._for, self._leaves = tensors, leaves
        return leaves

    def _attach(self, state):
        """The stacked gradients are the buffers the leaves' gradients view (unless replaced)."""
        for k, one in enumerate(self._leaves):
            s, r = divmod(k, self.R)
            for n, t in state.items():
                if n in self.parameters and (one[n].grad is None or t.grad is None):
                    t.grad = torch.zeros_like(t) if t.grad is None else t.grad
                    one[n].grad = t.grad[s, r]

    @staticmethod
    def _layout(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def loss_and_grads(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int = 0) -> torch.Tensor:
        leaves = self._replicates(params)
        with torch.no_grad():
            for n, p in params.items():
                if n in self.parameters:
                    p.grad.zero_()
        self.module.train()
        per = torch.empty(self.S, self.R, device=x.device)
        with torch.enable_grad():
            for s in range(self.S):
                xs = self._layout(x[s])
                for r in range(self.R):
                    loss = nn.functional.cross_entropy(functional_call(self.module, leaves[s * self.R + r], (xs,)), y[s])
                    loss.backward()  # into this replicate's slice of each stacked gradient
                    per[s, r] = loss.detach()
        return per

    @torch.no_grad()
    def logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """x [N, ...] shared by every replicate → logits [S, R, N, C]."""
        self.module.eval()
        x = self._layout(x)
        out = [functional_call(self.module, {n: t[s, r] for n, t in params.items()}, (x,))
               for s in range(self.S) for r in range(self.R)]
        return torch.stack(out).view(self.S, self.R, len(x), -1)
