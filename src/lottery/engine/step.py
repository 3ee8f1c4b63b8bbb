"""One training step of a stacked group, or of one lane's slice of it (engine/lanes.py)."""

import warnings

import torch

from lottery.engine.cuda_graph import GraphedStep
from lottery.engine.scripted import INDICES, RATE, NotCompilable, ScriptedStep
from lottery.errors import EngineWarning

# steps on which a compiled step is checked against Python before it is used: TorchScript runs a
# function's first call while profiling it and the later ones through the graph it then optimised
CHECKED_STEPS = 2


class TrainStep:
    """Gather the batch, loss and gradients through the stack, mask, update: in place.

    `params` are the tensors the stack and `optimizer` work on (the group's, or views of one
    lane's slice of them); `stack_masks` and `grad_masks` the gradient masks the stack applies
    inside its backward and the step after it, over the same slice (lottery.engine.masking); and
    `loss_sum` where each replicate's training loss accumulates. With `script`, the step is
    compiled to TorchScript once the optimiser has taken its first step (engine/scripted.py)."""

    def __init__(self, data, params: dict[str, torch.Tensor], stack, optimizer, data_order,
                 stack_masks: dict[str, torch.Tensor], grad_masks: dict[str, torch.Tensor],
                 loss_sum: torch.Tensor, script: bool = False, augment=None):
        self.data, self.params, self.stack, self.optimizer = data, params, stack, optimizer
        self.augment = augment  # (x [S, B, ...], data seeds, step) → None, in place (lottery.data.augment)
        self.data_order, self.loss_sum, self.graphed = data_order, loss_sum, None
        self.script, self.scripted = script, None  # asked for; the ScriptedStep once compiled and checked
        self._candidate, self._checked = None, 0  # the ScriptedStep being checked, and on how many steps
        self.grads_masked = [params[n] for n in grad_masks]
        self.mask_list = list(grad_masks.values())
        self.kw = {"masks": stack_masks} if stack_masks else {}
        self.batch = None  # (x, y, and their [S, B] views): where each step's examples are gathered
        self.per = None  # each replicate's loss of the step, for stacks that return it (vmap, loop)
        self.step = 0  # the step being taken (the LoopStack seeds each step's randomness from it)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(x, y, and their [S, B] views): the batch lands in the same tensors every step, so the
        stack can replay its built step."""
        d, n = self.data, idx.numel()
        if self.batch is None or self.batch[0].shape[0] != n:
            x = torch.empty((n, *d.train_x.shape[1:]), dtype=d.train_x.dtype, device=idx.device)
            y = torch.empty((n,), dtype=d.train_y.dtype, device=idx.device)
            self.batch = (x, y, x.view(*idx.shape, *x.shape[1:]), y.view(idx.shape))
            self.per = torch.empty(idx.shape[0], self.loss_sum.shape[-1], device=idx.device)
        return self.batch

    def _kernels(self, flat, lr) -> list[tuple]:
        """The step on the examples `flat` (the batch's indices, seed after seed) at rate `lr`, as
        (op, args, kwargs) kernels in order, over the batch tensors `_batch` made. A stack built
        from kernels (the MLP engine) keeps its gradients in the same tensors every step, so the
        masking and the update are listed too; other stacks make new gradients each step, and
        their stack, masking and update run as three opaque calls."""
        x, y, x_seeds, y_seeds = self.batch
        gather = [(torch.index_select, (self.data.train_x, 0, flat), {"out": x}),  # cheaper than advanced
                  (torch.index_select, (self.data.train_y, 0, flat), {"out": y})]  # indexing (docs/engine.md)
        if self.augment is not None:
            gather.append((self.augment, (x_seeds, self.data_order.data_seeds, self.step), {}))
        if not hasattr(self.stack, "kernels"):
            return gather + [(self._whole_stack, (x_seeds, y_seeds, self.per), {}), (self._mask_grads, (), {}),
                             (self.optimizer.step, (lr,), {}), (torch.Tensor.add_, (self.loss_sum, self.per), {})]
        calls, per = self.stack.kernels(self.params, x_seeds, y_seeds, self.step, **self.kw)  # sets .grad
        masking = [(torch._foreach_mul_, ([p.grad for p in self.grads_masked], self.mask_list), {})] \
            if self.grads_masked else []
        update = self.optimizer.kernels(lr) or [(self.optimizer.step, (lr,), {})]
        return gather + calls + masking + update + [(torch.Tensor.add_, (self.loss_sum, per), {})]  # into float64

    def _whole_stack(self, x, y, per: torch.Tensor) -> None:
        per.copy_(self.stack.loss_and_grads(self.params, x, y, self.step, **self.kw))

    def _mask_grads(self) -> None:
        if self.grads_masked:
            torch._foreach_mul_([p.grad for p in self.grads_masked], self.mask_list)

    @torch.no_grad()
    def step_on(self, idx: torch.Tensor, lr) -> None:  # idx [S, B]; everything it writes, in place
        self._batch(idx)
        for op, args, kwargs in self._kernels(idx.reshape(-1), lr):
            op(*args, **kwargs)

    def kernels(self, t: int, lr: float) -> list[tuple]:
        """Step t as (op, args, kwargs) kernels, in order: run one after another under no_grad they
        take the step `self(t, lr)` takes, bit for bit (tested), so each can be timed alone
        (benchmarks/common.py: a step's floor on this machine)."""
        self.step = t
        idx = self.data_order.indices(t)
        self._batch(idx)
        return self._kernels(idx.reshape(-1), lr)

    def graph(self, example_idx: torch.Tensor) -> None:
        """Replay the step as a CUDA graph from now on (engine/cuda_graph.py)."""
        self.graphed = GraphedStep(self.step_on, example_idx)

    def _compile(self, idx: torch.Tensor, lr: float) -> None:
        """Take this step (idx [S, B]) in Python and compiled, from the same state: after CHECKED_STEPS
        steps the same bit for bit, use the compiled step from then on; else say why once and stay
        in Python."""
        self._batch(idx)
        if self._candidate is None:
            try:
                self._candidate = ScriptedStep(self._kernels(INDICES, RATE))
            except (NotCompilable, RuntimeError) as e:  # RuntimeError: what TorchScript refuses
                self.script = False
                self.step_on(idx, lr)
                _warn(f"the training step stays in Python: TorchScript cannot compile it ({str(e).splitlines()[0]})")
                return
        compiled, opt, flat = self._candidate, self.optimizer, idx.reshape(-1)
        if compiled.verified:  # checked over tensors laid out alike before, in this process
            self.scripted = compiled
            compiled(flat, lr)
            return
        state = [*self.params.values(), *(t for ts in opt.state.values() for t in ts), self.loss_sum]
        with torch.no_grad():
            same = compiled.check(lambda: self.step_on(idx, lr), lambda: compiled(flat, lr), state)
        self._checked += 1
        if not same:
            self.script, self._candidate = False, None
            _warn("the training step stays in Python: compiled to TorchScript, it did not take the same "
                  f"step bit for bit (torch {torch.__version__})")
        elif self._checked == CHECKED_STEPS:
            self.scripted = compiled
            compiled.mark_verified()

    def steps(self, first: int, end: int, lrs: list[float]) -> None:
        """Steps first … end − 1, step t at rate lrs[t]: what as many calls `self(t, lrs[t])` do, bit
        for bit; once the step is compiled, in one call that loops in TorchScript."""
        t = first
        while t < end and self.scripted is None:
            self(t, lrs[t])
            t += 1
        if t < end:
            self.step = end - 1
            self.scripted.run(self.data_order.span(t, end).reshape(end - t, -1), lrs[t:end])

    def __call__(self, t: int, lr: float) -> None:
        self.step = t
        idx = self.data_order.indices(t)
        if self.graphed is not None:
            self.graphed(idx, lr)
        elif self.scripted is not None:
            self.scripted(idx.reshape(-1), lr)
        elif self.script and not self.optimizer.first_step:  # SGD's first step is unlike the rest
            self._compile(idx, lr)
        else:
            self.step_on(idx, lr)


def _warn(message: str) -> None:
    # a warning, not a log line: Python shows each once where it arises, however many programs say it
    warnings.warn(message, EngineWarning, stacklevel=2)
