"""Keeping pruned weights at exactly zero: the one policy, decided here.

A pruned weight starts at 0.0 (the driver applies the mask to the starting weights), and no
update may move it. Weight decay of a zero weight is zero; what remains is its gradient and the
optimiser's state, handled in the first way that applies:

1. The optimiser holds it: fused Adam with a +inf second moment there steps by m / ∞ = 0 whatever
   the gradient (`Optimizer.hold`, checked on the device). Its gradient needs no mask: that saves
   a pass over the gradients every step.
2. Otherwise its gradient is zeroed before every update, so momentum stays 0 there too: by the
   stack, right after the gradient's product while it is in cache, for the parameters it can
   (`stack.masks_gradients_of`: the MLP engine's weights), else by the step after the backward.

All-ones masks (a dense layer) need nothing. Held state is set again after a checkpoint is
loaded, as a checkpoint's moments may be finite there.
"""

import torch


def hold(optimizer, param_names: list[str], masks: dict[str, torch.Tensor]) -> set[str]:
    """Ask the optimiser to hold the pruned entries of every parameter; the names it holds."""
    return set(param_names) if optimizer.hold([masks.get(n) for n in param_names]) else set()


def gradient_masks(masks: dict[str, torch.Tensor], held: set[str], stack) -> tuple[dict, dict]:
    """(masks the stack applies inside its backward, masks the step applies after it): every
    mask that is not all ones on a parameter the optimiser does not hold, each applied once."""
    needed = {n: m for n, m in masks.items() if n not in held and not bool(m.all())}
    in_stack = {n: m for n, m in needed.items() if n in stack.masks_gradients_of}
    return in_stack, {n: m for n, m in needed.items() if n not in in_stack}
