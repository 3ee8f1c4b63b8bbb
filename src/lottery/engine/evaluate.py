"""Evaluating a stack of replicates, and early stopping: the weights at the lowest validation loss."""

import math

import torch

from lottery.engine.stacked import log_softmax_classes

# Examples per evaluation chunk: on the CPU small enough to keep a group's activations in cache
# (docs/engine.md); GPUs want large chunks.
EVAL_CHUNK = {"cpu": 1_000}
EVAL_CHUNK_DEFAULT = 10_000


def evaluate(stack, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy of every replicate on (x, y): two [S, R] float64 tensors on
    the CPU. Sums are taken in float64, so the chunking does not change the numbers."""
    S, R = stack.S, stack.R
    loss = torch.zeros(S, R, dtype=torch.float64, device=x.device)
    correct = torch.zeros(S, R, dtype=torch.float64, device=x.device)
    with torch.inference_mode():
        chunk = EVAL_CHUNK.get(x.device.type, EVAL_CHUNK_DEFAULT)
        for i in range(0, len(x), chunk):
            xb, yb = x[i:i + chunk], y[i:i + chunk]
            logits = stack.logits(params, xb)  # [S, R, B, C]
            logp = log_softmax_classes(logits)
            loss -= logp.gather(-1, yb.expand(S, R, len(yb)).unsqueeze(-1)).double().sum((-2, -1))
            correct += (logits.argmax(-1) == yb).double().sum(-1)
    return (loss / len(x)).cpu(), (correct / len(x)).cpu()


class Best:
    """Each replicate's lowest validation loss so far, the step it came at (the early-stopping
    iteration) and its weights then. A tie keeps the earlier step."""

    def __init__(self, weights: dict[str, torch.Tensor], S: int, R: int):
        self.loss = torch.full((S, R), math.inf, dtype=torch.float64)
        self.step = torch.zeros(S, R, dtype=torch.int64)
        self.weights = weights

    @torch.no_grad()
    def update(self, step: int, val_loss: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
        improved = val_loss < self.loss
        self.loss = torch.where(improved, val_loss, self.loss)
        self.step = torch.where(improved, torch.tensor(step), self.step)
        for n, w in self.weights.items():
            sel = improved.to(w.device).view(*improved.shape, *[1] * (w.dim() - 2))
            self.weights[n] = torch.where(sel, params[n].detach(), w)
