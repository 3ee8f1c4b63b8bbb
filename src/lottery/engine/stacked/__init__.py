"""A stack of replicates of one architecture, run as one program.

Parameters are stacked [S, R, ...]: S data streams (experiment seeds) × R replicates sharing
each stream (that seed's branches). Four implementations of one interface:

- `MLPStack` (mlp.py): fully connected ReLU networks (LeNet-300-100, the MNIST-1D MLP) with a
  hand-written forward and backward. The first layer, most of the FLOPs, meets the shared
  batch of a seed with all R replicates' weights side by side in one wide matrix product;
  later layers are batched products over all S × R replicates. No autograd graph, no dX
  for the input layer, and ReLU's backward as one fused kernel.
- `ModuleStack` (modules.py): any `nn.Module` without randomness (convolutional networks
  first), each replicate through the module itself in one program that may run in lanes.
- `VmapStack` (autograd.py): the same models through `vmap(functional_call)` and autograd,
  buffers (BatchNorm statistics) stacked like the parameters. Its batching rules fold the
  replicates together, so a unit's floats depend on its group: only on request, or for models
  that do not convolve when independence is waived (lottery.engine.options).
- `LoopStack` (autograd.py): the fallback for what cannot be vectorised (dropout and other
  random ops, ops vmap lacks): one replicate after another through the module itself, each
  with its own stacked buffers and its own seeded randomness.

All set `.grad` on the stacked parameters and return each replicate's mean loss. The state
dict they take holds parameters and buffers alike, stacked [S, R, ...]. Each says what it can do
as class attributes, which the engine reads instead of names:

    groups            replicates train faster together than one after another: group units
    fixed_kernels     its step is a fixed list of kernels over fixed memory, so it compiles to
                      TorchScript on the CPU and replays as a CUDA graph on a GPU
    lanes             it may run as single-threaded lanes in threads (engine/lanes.py)
    masks_gradients_of  the parameters whose gradient masks it applies inside its backward

`make_stack` builds one by name; `choose` picks the fastest that runs a model.
"""

import warnings

import torch
from torch import nn

from lottery.engine.stacked.autograd import LoopStack, VmapStack
from lottery.engine.stacked.losses import log_softmax_classes, per_replicate_loss
from lottery.engine.stacked.mlp import MLPStack, mlp_layers
from lottery.engine.stacked.modules import ModuleStack
from lottery.errors import ConfigError, EngineWarning

__all__ = ["STACKS", "LoopStack", "MLPStack", "ModuleStack", "VmapStack", "choose", "log_softmax_classes", "make_stack",
           "mlp_layers", "per_replicate_loss", "vectorise_problem"]

STACKS = {"mlp": MLPStack, "vmap": VmapStack, "modules": ModuleStack, "loop": LoopStack}
CHOICES = ("auto", *STACKS)


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


def _fastest(template: nn.Module, example=None, independent: bool = True) -> tuple[str, str | None]:
    """'mlp' for ReLU MLPs; for other models vmap can run (no randomness: the probe on `example`
    passes), 'modules', or 'vmap' for those that do not convolve when a unit's numbers may depend on
    its group (`independent` False: vmap's batching folds replicates together); 'loop' for the
    rest, with the probe's reason."""
    if mlp_layers(template) is not None:
        return "mlp", None
    problem = vectorise_problem(template, *example) if example is not None else None
    if problem:
        return "loop", problem
    convolves = any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in template.modules())
    return ("modules" if convolves or independent else "vmap"), None


def choose(template: nn.Module, example, requested: str = "auto", independent: bool = True) -> str:
    """The stack that trains `template`: the fastest that runs it ('auto'; see `_fastest` for
    `independent`), or the one requested if it can. A model vmap cannot run trains one replicate
    at a time, with a warning that says why."""
    if requested not in CHOICES:
        raise ConfigError(f"engine {requested!r} is unknown; choose one of {', '.join(CHOICES)}")
    if requested == "mlp" and mlp_layers(template) is None:
        raise ConfigError("engine 'mlp' runs Sequential stacks of Linear and ReLU layers only; this model "
                          "is not one: use auto, vmap or loop")
    if requested in ("auto", "vmap", "modules"):
        fastest, problem = _fastest(template, example, independent)
        if problem:
            if requested == "modules":
                raise ConfigError(f"engine 'modules' runs models without randomness; {type(template).__name__} "
                                  f"has some ({problem}): use auto or loop")
            warnings.warn(f"{type(template).__name__} cannot be vectorised ({problem}); training its units one "
                          "at a time", EngineWarning, stacklevel=2)
            return "loop"
        return fastest if requested == "auto" else requested
    return requested


def make_stack(template: nn.Module, S: int, R: int, engine: str = "auto", *, example=None,
               noise_seeds: list[int] | None = None, device="cpu"):
    """The stack `engine` names ('auto': the fastest that runs `template`, probed on `example`)."""
    if engine == "auto":
        engine, _ = _fastest(template, example)
    if engine == "loop":
        return LoopStack(template, S, R, noise_seeds, device)
    if engine == "modules":
        return ModuleStack(template, S, R, device)
    if engine not in STACKS:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(CHOICES)}")
    return STACKS[engine](template, S, R)
