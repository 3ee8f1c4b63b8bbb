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

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(x, y, and their [S, B] views): the batch lands in the same tensors every step, so the
        stack can replay its built step."""
        d, n = self.data, idx.numel()
        if self.batch is None or self.batch[0].shape[0] != n:
            x = torch.empty((n, *d.train_x.shape[1:]), dtype=d.train_x.dtype, device=idx.device)
            y = torch.empty((n,), dtype=d.train_y.dtype, device=idx.device)
            self.batch = (x, y, x.view(*idx.shape, *x.shape[1:]), y.view(idx.shape))
        return self.batch

    def _mask_grads(self) -> None:
        if self.grads_masked:
            torch._foreach_mul_([p.grad for p in self.grads_masked], self.mask_list)

    def step_on(self, idx: torch.Tensor, lr) -> None:  # idx [S, B]; everything it writes, in place
        x, y, x_seeds, y_seeds = self._batch(idx)
        flat = idx.reshape(-1)
        torch.index_select(self.data.train_x, 0, flat, out=x)  # a third of advanced indexing's cost here (14 vs 51 µs)
        torch.index_select(self.data.train_y, 0, flat, out=y)
        per = self.stack.loss_and_grads(self.params, x_seeds, y_seeds, self.step, **self.kw)  # [S, R]; sets .grad
        self._mask_grads()
        self.optimizer.step(lr)
        self.loss_sum.add_(per.detach())  # float32 into a float64 sum

    def kernels(self, t: int, lr: float) -> list[tuple]:
        """Step t as (op, args, kwargs) kernels, in order: run one after another under no_grad they
        take the step `self(t, lr)` takes, bit for bit (tested), so each can be timed alone
        (benchmarks/common.py: a step's floor on this machine). A stack that is not built from
        kernels (vmap, loop) counts as one."""
        self.step = t
        idx = self.data_order.indices(t)
        x, y, x_seeds, y_seeds = self._batch(idx)
        flat = idx.reshape(-1)
        gather = [(torch.index_select, (self.data.train_x, 0, flat), {"out": x}),
                  (torch.index_select, (self.data.train_y, 0, flat), {"out": y})]
        if hasattr(self.stack, "kernels"):
            calls, per = self.stack.kernels(self.params, x_seeds, y_seeds, t, **self.kw)
        else:
            per = torch.empty(idx.shape[0], self.loss_sum.shape[-1], device=idx.device)
            calls = [(self._whole_stack, (x_seeds, y_seeds, t, per), {})]
        return gather + calls + [(self._mask_grads, (), {}), (self.optimizer.step, (lr,), {}),
                                 (torch.Tensor.add_, (self.loss_sum, per), {})]

    def _whole_stack(self, x, y, t: int, per: torch.Tensor) -> None:
        per.copy_(self.stack.loss_and_grads(self.params, x, y, t, **self.kw))

    def graph(self, example_idx: torch.Tensor) -> None:
        """Replay the step as a CUDA graph from now on (lottery.graphs)."""
        self.graphed = cuda_graphs.GraphedStep(self.step_on, example_idx)

    def __call__(self, t: int, lr: float) -> None:
        self.step = t
        (self.graphed or self.step_on)(self.data_order.indices(t), lr)
