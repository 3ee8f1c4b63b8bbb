"""One training step of a stacked group, or of one lane's slice of it (lottery.lanes)."""

import torch

from lottery import graphs as cuda_graphs


class TrainStep:
    """Gather the batch, loss and gradients through the stack, mask, update: in place.

    `params` are the tensors the stack and `optimizer` work on (the group's, or views of one
    lane's slice of them), `masks` the masks of the pruned parameters over the same slice, and
    `loss_sum` where each replicate's training loss accumulates."""

    def __init__(self, data, params: dict[str, torch.Tensor], stack, optimizer, data_order,
                 masks: dict[str, torch.Tensor], loss_sum: torch.Tensor):
        self.data, self.params, self.stack, self.optimizer = data, params, stack, optimizer
        self.data_order, self.loss_sum, self.graphed = data_order, loss_sum, None
        # the stack masks the gradients it can while they are in cache; the rest, after it
        in_stack = {n: m for n, m in masks.items() if n in stack.masks_gradients_of}
        self.grads_masked = [params[n] for n in masks if n not in in_stack]
        self.mask_list = [masks[n] for n in masks if n not in in_stack]
        self.kw = {"masks": in_stack} if in_stack else {}
        self.batch = None  # (x, y, and their [S, B] views): where each step's examples are gathered
        self.step = 0  # the step being taken (the LoopStack seeds each step's randomness from it)

    def step_on(self, idx: torch.Tensor, lr) -> None:  # idx [S, B]; everything it writes, in place
        d, flat = self.data, idx.reshape(-1)
        if self.batch is None or self.batch[0].shape[0] != flat.shape[0]:
            # the batch lands in the same tensors every step, so the stack can replay its built step
            x = torch.empty((flat.shape[0], *d.train_x.shape[1:]), dtype=d.train_x.dtype, device=flat.device)
            y = torch.empty(flat.shape, dtype=d.train_y.dtype, device=flat.device)
            self.batch = (x, y, x.view(*idx.shape, *x.shape[1:]), y.view(idx.shape))
        x, y, x_seeds, y_seeds = self.batch
        torch.index_select(d.train_x, 0, flat, out=x)  # a third of advanced indexing's cost here (14 vs 51 µs)
        torch.index_select(d.train_y, 0, flat, out=y)
        per = self.stack.loss_and_grads(self.params, x_seeds, y_seeds, self.step, **self.kw)  # [S, R]; sets .grad
        if self.grads_masked:
            torch._foreach_mul_([p.grad for p in self.grads_masked], self.mask_list)
        self.optimizer.step(lr)
        self.loss_sum.add_(per.detach())  # float32 into a float64 sum

    def graph(self, example_idx: torch.Tensor) -> None:
        """Replay the step as a CUDA graph from now on (lottery.graphs)."""
        self.graphed = cuda_graphs.GraphedStep(self.step_on, example_idx)

    def __call__(self, t: int, lr: float) -> None:
        self.step = t
        (self.graphed or self.step_on)(self.data_order.indices(t), lr)
