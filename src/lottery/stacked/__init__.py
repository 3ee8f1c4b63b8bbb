"""A stack of replicates of one architecture, run as one program.

Parameters are stacked [S, R, ...]: S data streams (experiment seeds) × R replicates sharing
each stream (that seed's branches). Three implementations of one interface, a module each:

- `MLPStack` (mlp.py): fully connected ReLU networks (LeNet-300-100, the MNIST-1D MLP) with a
  hand-written forward and backward. The first layer, most of the FLOPs, meets the shared
  batch of a seed with all R replicates' weights side by side in one wide matrix product;
  later layers are batched products over all S × R replicates. No autograd graph, no dX
  for the input layer, and ReLU's backward as one fused kernel.
- `VmapStack` (autograd.py): any `nn.Module` without randomness, through
  `vmap(functional_call)` and autograd; buffers (BatchNorm statistics) are stacked like the
  parameters.
- `LoopStack` (autograd.py): the fallback for what cannot be vectorised (dropout and other
  random ops, ops vmap lacks): one replicate after another through the module itself, each
  with its own stacked buffers and its own seeded randomness.

All set `.grad` on the stacked parameters and return each replicate's mean loss. The state
dict they take holds parameters and buffers alike, stacked [S, R, ...].

`make_stack` picks one (`auto`: the fastest that runs the model).
"""

import torch
from torch import nn

from lottery.stacked.autograd import LoopStack, VmapStack
from lottery.stacked.losses import log_softmax_classes, per_replicate_loss
from lottery.stacked.mlp import MLPStack, mlp_layers

__all__ = ["ENGINES", "LoopStack", "MLPStack", "VmapStack", "auto_engine", "log_softmax_classes", "make_stack",
           "mlp_layers", "per_replicate_loss", "vectorise_problem"]


def vectorise_problem(template: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Why `template` cannot train as a vectorised stack (None: it can), probed on 2 examples.

    Buffers are fine when stacked like the parameters: BatchNorm's running statistics update in
    place per replicate under vmap (tested). Random ops (dropout) are not: vmap cannot give each
    replicate its own seeded draws."""
    if mlp_layers(template) is not None:
        return None
    try:
        probe = VmapStack(template, 1, 2)
        trainable = {n for n, _ in template.named_parameters()}
        state = {n: t.detach().expand(1, 2, *t.shape).clone().requires_grad_(n in trainable)
                 for n, t in template.state_dict().items()}
        probe.loss_and_grads(state, x[None, :2], y[None, :2])
        probe.logits(state, x[:2])
    except Exception as e:  # whatever vmap refuses (random ops, in-place updates, data-dependent flow)
        lines = str(e).strip().splitlines() or [type(e).__name__]
        return f"torch.func.vmap cannot run it: {lines[0][:200]}"
    return None


ENGINES = ("auto", "mlp", "vmap", "loop")


def auto_engine(template: nn.Module, example=None) -> tuple[str, str | None]:
    """The fastest engine that runs `template`: 'mlp' for ReLU MLPs, else 'vmap' if the probe on
    `example` (a few training examples, (x, y)) passes, else 'loop' — with the probe's reason."""
    if mlp_layers(template) is not None:
        return "mlp", None
    problem = vectorise_problem(template, *example) if example is not None else None
    return ("loop" if problem else "vmap"), problem


def make_stack(template: nn.Module, S: int, R: int, engine: str = "auto", *, example=None,
               noise_seeds: list[int] | None = None, device="cpu"):
    """The implementation `engine` names; 'auto': `auto_engine`, probed on `example`."""
    if engine == "auto":
        engine, _ = auto_engine(template, example)
    if engine == "mlp":
        return MLPStack(template, S, R)
    if engine == "vmap":
        return VmapStack(template, S, R)
    if engine == "loop":
        return LoopStack(template, S, R, noise_seeds, device)
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
