"""On the CPU, the training step compiled to one TorchScript function that runs without the GIL.

Why: lanes (engine/lanes.py) are threads of one Python process, and each of the few dozen kernels
a step calls from Python takes the interpreter's lock (the GIL) to start and to return, so two
lanes of a small model queue for it all step long. A TorchScript function runs its kernels with
the GIL released and dispatches them without Python in between (measurements: docs/engine.md).

The function is generated from the step's kernels (lottery.engine.step.TrainStep.kernels): the
same ATen ops on the same tensors with the same arguments, in the same order, so it trains bit
for bit as the Python loop does; `ScriptedStep.check` proves it on the first steps it is used for
(lottery.engine.step.CHECKED_STEPS), and the caller falls back to Python otherwise. A function
that passed is not checked again in the process over tensors laid out alike (the next IMP
level's trainer, a lane of the same shape). What changes from step to step enters as arguments:
the batches' example indices and the learning rates. Every list of tensors (the optimiser's) is
an argument too: a fused optimiser call on lists built inside the function is dropped by
TorchScript's dead-code elimination, which does not see the writes (found here).

The function takes several steps a call, looping in TorchScript (`ScriptedStep.run`): called once
a step from Python, each lane's steps paid its Python wrapper and a wait for the GIL, which the
other lane holds for its own.

Which runs compile their step is the engine's plan (lottery.engine.options.plan): on the CPU,
for stacks whose step is a fixed list of kernels.
"""

import torch


class Placeholder:
    """An argument of the compiled step that changes from one step to the next."""

    def __init__(self, name: str):
        self.name = name


INDICES, RATE = Placeholder("indices"), Placeholder("lr")
# (source, layout of its tensors) → the compiled function. One function per layout: TorchScript
# specialises a function to what its first calls saw, so each runs (and is checked) on one layout.
_COMPILED: dict[tuple, object] = {}
# the keys of functions that took the same steps as Python in their checks: the same kernels over
# tensors laid out alike (the next IMP level's trainer, a lane of equal shape) need no new check
_VERIFIED: set[tuple] = set()


class NotCompilable(Exception):
    """A kernel TorchScript cannot express (a Python callable, an unknown argument type)."""


def _op_call(op, args: list[str], kwargs: list[str]) -> str:
    """The TorchScript expression calling `op`: a tensor method, a torch function or an ATen overload."""
    name = getattr(op, "__name__", None)
    if isinstance(op, torch._ops.OpOverload):  # e.g. aten.threshold_backward.grad_input: picked by its kwargs
        return f"torch.ops.{op.namespace}.{op._overloadpacket.__name__}({', '.join(args + kwargs)})"
    if name and getattr(torch.Tensor, name, None) is op:
        return f"{args[0]}.{name}({', '.join(args[1:] + kwargs)})"
    if name and getattr(torch, name, None) is op:
        return f"torch.{name}({', '.join(args + kwargs)})"
    raise NotCompilable(f"{op!r} is not a torch function, tensor method or ATen op")


class ScriptedStep:
    """`kernels` (with INDICES and RATE in place of the step's own values) as one TorchScript
    function: `step(indices, lr)` takes one step, `step.run(indices, lrs)` several."""

    def __init__(self, kernels: list[tuple]):
        self.tensors: list[torch.Tensor] = []
        self.lists: list[list[torch.Tensor]] = []
        self._names: dict[int, str] = {}
        lines = [f"        {_op_call(op, [self._ref(a) for a in args], [f'{k}={self._ref(v)}' for k, v in kwargs.items()])}"
                 for op, args, kwargs in kernels]
        params = ["ts: List[Tensor]"] + [f"l{i}: List[Tensor]" for i in range(len(self.lists))]
        source = (f"def steps({', '.join(params + ['all_indices: Tensor', 'lrs: List[float]'])}):\n"
                  "    for i in range(len(lrs)):\n"
                  "        indices = all_indices[i]\n"
                  "        lr = lrs[i]\n" + "\n".join(lines) + "\n")
        self.source = source
        self.key = (source, _layout(self.tensors + [t for ts in self.lists for t in ts]))
        if self.key not in _COMPILED:  # the next group or lane over tensors laid out alike reuses it
            _COMPILED[self.key] = torch.jit.CompilationUnit(source).steps
        self._fn = _COMPILED[self.key]

    @property
    def verified(self) -> bool:
        """Whether this function over tensors laid out like these passed its checks before."""
        return self.key in _VERIFIED

    def mark_verified(self) -> None:
        _VERIFIED.add(self.key)

    def _ref(self, value) -> str:
        """`value` as TorchScript: a tensor or list of tensors by identity (an argument), else a literal."""
        if isinstance(value, Placeholder):
            return value.name
        if isinstance(value, torch.Tensor):
            if id(value) not in self._names:
                self._names[id(value)] = f"ts[{len(self.tensors)}]"
                self.tensors.append(value)
            return self._names[id(value)]
        if isinstance(value, (list, tuple)):
            if not all(isinstance(t, torch.Tensor) for t in value):
                raise NotCompilable("a list of something other than tensors")
            self.lists.append(list(value))
            return f"l{len(self.lists) - 1}"
        if value is None or isinstance(value, bool):
            return repr(value)
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and value == value and abs(value) != float("inf"):
            return repr(value)  # the shortest repr parses back to the same double
        raise NotCompilable(f"an argument TorchScript cannot hold as a literal: {value!r}")

    def __call__(self, indices: torch.Tensor, lr: float) -> None:
        """One step on the examples `indices`, at rate `lr`."""
        self.run(indices.unsqueeze(0), [lr])

    @torch.no_grad()  # its kernels write into tensors that require grad, as the Python loop's do
    def run(self, indices: torch.Tensor, lrs: list[float]) -> None:
        """len(lrs) steps, one after another, with no Python between them: step i on the examples
        `indices[i]`, at rate `lrs[i]`."""
        self._fn(self.tensors, *self.lists, indices, [float(lr) for lr in lrs])

    def check(self, eager, compiled, state: list[torch.Tensor]) -> bool:
        """Whether `compiled()` takes the step `eager()` takes, bit for bit, on everything in
        `state` (what a step changes and later steps read): both run from the same state and are
        compared; the state is left as the eager step left it."""
        before = [t.clone() for t in state]
        eager()
        after = [t.clone() for t in state]
        for t, b in zip(state, before):
            t.copy_(b)
        compiled()
        same = all(torch.equal(t, a) for t, a in zip(state, after))
        for t, a in zip(state, after):
            t.copy_(a)
        return same


def _layout(tensors: list[torch.Tensor]) -> tuple:
    """What the compiled function's behaviour could depend on besides values: each tensor's dtype,
    shape, strides and whether it requires grad, and which tensors share memory, where in it."""
    storages: dict[int, tuple[int, int]] = {}  # data pointer → (its number, offset of its first tensor)
    out = []
    for t in tensors:
        number, base = storages.setdefault(t.untyped_storage().data_ptr(), (len(storages), t.storage_offset()))
        out.append((t.dtype, tuple(t.shape), t.stride(), t.requires_grad, number, t.storage_offset() - base))
    return tuple(out)
