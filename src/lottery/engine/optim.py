"""Adam and SGD over the stacked tensors, calling torch's fused kernels directly.

The kernels are the ones `torch.optim.Adam(fused=True)` / `SGD(fused=True)` run, with the
same arguments, so the numbers are identical; what goes is torch.optim's per-call Python
bookkeeping, a few percent of a small step (docs/engine.md).
Where this torch has no fused kernel for the device, torch.optim's foreach path runs instead.

The state is plain tensors named `{i}.{key}` (i: the parameter's position), torch.optim's own
key names, so checkpoints hold the same entries either way.

The fused kernels are handed every replicate's slice of a stacked tensor as a tensor of its own:
over a whole stacked tensor, the kernel's vector loop would reach some replicates' last entries
in its scalar tail, whose arithmetic differs in the last bit (found here), so a unit's update
would depend on the replicates stacked beside it (lottery.engine.options: independence).
"""

import math

import torch

from lottery.config import TrainConfig

_FUSED: dict[tuple[str, str], bool] = {}


def _has_fused(name: str, device: torch.device) -> bool:
    """Whether this torch runs the fused kernel on `device` (CPU ones arrived in torch 2.4): tried once."""
    key = (name, device.type)
    if key not in _FUSED:
        p, g, b = (torch.zeros(1, device=device) for _ in range(3))
        try:
            if name == "_fused_adam_":
                torch._fused_adam_([p], [g], [b], [torch.zeros(1, device=device)], [], [torch.ones((), device=device)],
                                   lr=0.1, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False,
                                   maximize=False)
            else:
                torch._fused_sgd_([p], [g], [b], weight_decay=0.0, momentum=0.9, lr=0.1, dampening=0.0,
                                  nesterov=False, maximize=False, is_first_step=True)
            _FUSED[key] = True
        except (AttributeError, RuntimeError, TypeError, NotImplementedError):
            _FUSED[key] = False
    return _FUSED[key]


_INF_HOLDS: dict[str, bool] = {}


def _inf_holds(device: torch.device) -> bool:
    """Whether the fused Adam on `device` leaves zero weights exactly zero, whatever their
    gradients, weight decay and first moments, once their second moment is +inf (its step there
    is m / ∞ = ±0): tried once per device type, on gradients of every sign up to 1e30 and rates up
    to 10. (The step is (rate × m) / ∞: past 3.4e38 / (10 × rate), where that product overflows,
    it is NaN; squared gradients overflow from 1.8e19, so training has long diverged by then.)"""
    if device.type not in _INF_HOLDS:
        g = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 1e30, -1e30, 1e-8, 7.5], device=device)
        p = torch.tensor([0.0, -0.0] * 5, device=device)
        m, v = torch.zeros_like(p), torch.full_like(p, math.inf)
        step = torch.zeros((), device=device)
        for lr in (0.1, 10.0):
            step.add_(1)
            torch._fused_adam_([p], [g], [m], [v], [], [step], lr=lr, beta1=0.9, beta2=0.999, weight_decay=0.1,
                               eps=1e-8, amsgrad=False, maximize=False)
        _INF_HOLDS[device.type] = bool((p == 0).all()) and bool(torch.isinf(v).all())
    return _INF_HOLDS[device.type]


class Optimizer:
    def __init__(self, cfg: TrainConfig, params: list[torch.Tensor]):
        self.cfg, self.params = cfg, list(params)
        self.device = device = self.params[0].device if self.params else torch.device("cpu")
        kernel = "_fused_adam_" if cfg.optimizer == "adam" else "_fused_sgd_"
        self.fallback = None
        if not _has_fused(kernel, device):
            self.fallback = self._torch_optim()
            return
        zeros = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        if cfg.optimizer == "adam":
            # one step counter shared by every tensor (they all step together): one add a step, not
            # torch.optim's per-tensor scalar adds
            self.steps = torch.zeros((), dtype=torch.float32, device=device)
            self.one = torch.ones((), dtype=torch.float32, device=device)  # added as a tensor: see stacked/mlp.py
            self.state = {"exp_avg": zeros, "exp_avg_sq": [torch.zeros_like(p) for p in self.params],
                          "step": [self.steps] * len(self.params)}
        else:
            self.state = {"momentum_buffer": zeros} if cfg.momentum else {}
        self.first_step = True
        self._lists: tuple | None = None  # (the grads they were made for, per-replicate lists)

    def _per_replicate(self, params, grads, state) -> tuple[list, list, dict]:
        """The kernel's argument lists with each replicate's slice [s, r] a tensor of its own (see
        the module docstring), made again only when the gradient tensors change."""
        key = [*grads, *params]  # the tensors themselves: kept alive, they cannot be mistaken for new ones
        if self._lists is not None and len(key) == len(self._lists[0]) and all(a is b for a, b in zip(key, self._lists[0])):
            return self._lists[1]

        def split(ts):
            return [t.detach()[s, r] for t in ts for s in range(t.shape[0]) for r in range(t.shape[1])]
        lists = (split(params), split(grads),
                 {k: ([ts[0]] * sum(t.shape[0] * t.shape[1] for t in params) if k == "step" else split(ts))
                  for k, ts in state.items()})
        self._lists = (key, lists)
        return lists

    @torch.no_grad()
    def hold(self, masks: list[torch.Tensor | None]) -> bool:
        """Make every update leave the entries where `masks[i]` (one per parameter, or None) is 0
        exactly as they are, without masking the gradients: Adam's second moment there is set to
        +inf, so its step there is m / ∞ = 0 (checked on the device: `_inf_holds`). It saves a
        pass over the gradients a step (lottery.engine.masking says when it is used). Called again
        after a state is loaded, as a checkpoint's moments may be finite there. False, doing
        nothing, where it cannot (SGD, torch.optim's fallback): mask the gradients."""
        if self.fallback is not None or self.cfg.optimizer != "adam" or not _inf_holds(self.device):
            return False
        for v, mask in zip(self.state["exp_avg_sq"], masks):
            if mask is not None:
                v.masked_fill_(mask == 0, math.inf)
        return True

    def _torch_optim(self) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(self.params, lr=c.lr, weight_decay=c.weight_decay, foreach=True)
        return torch.optim.SGD(self.params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay, foreach=True)

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update of every parameter from its `.grad`, at learning rate `lr`."""
        if self.fallback is not None:
            for group in self.fallback.param_groups:
                group["lr"] = lr
            self.fallback.step()
            return
        for op, args, kwargs in self.kernels(lr):
            op(*args, **kwargs)

    def kernels(self, lr) -> list[tuple] | None:
        """The next update as (op, args, kwargs) kernels over the parameters' current `.grad`s:
        `step(lr)` without its Python, for a step compiled whole (engine/scripted.py); None for
        torch.optim's fallback. Asking counts as issuing the update (`first_step` ends): the
        first SGD step with momentum fills its buffers, unlike the steps after it."""
        if self.fallback is not None:
            return None
        c = self.cfg
        params, grads, state = self.params, [p.grad for p in self.params], self.state
        if any(g is None for g in grads):  # a parameter the loss does not use: skipped, as torch.optim does
            used = [i for i, g in enumerate(grads) if g is not None]
            params, grads = [params[i] for i in used], [grads[i] for i in used]
            state = {k: [ts[i] for i in used] for k, ts in state.items()}
        first, self.first_step = self.first_step, False
        params, grads, state = self._per_replicate(params, grads, state)
        if c.optimizer == "adam":
            return [(torch.Tensor.add_, (self.steps, self.one), {}),
                    (torch._fused_adam_, (params, grads, state["exp_avg"], state["exp_avg_sq"], [], state["step"]),
                     dict(lr=lr, beta1=0.9, beta2=0.999, weight_decay=c.weight_decay, eps=1e-8, amsgrad=False,
                          maximize=False))]
        return [(torch._fused_sgd_, (params, grads, state.get("momentum_buffer", [])),
                 dict(weight_decay=c.weight_decay, momentum=c.momentum, lr=lr, dampening=0.0, nesterov=c.nesterov,
                      maximize=False, is_first_step=first and bool(c.momentum)))]

    def part(self, index) -> "Optimizer":
        """This optimiser over `t[index]` of every parameter and state tensor: views of the same
        memory, so lanes (engine/lanes.py) can step disjoint parts of one group's tensors. The part
        counts its steps in a counter of its own, as lanes go at their own pace; `catch_up`
        brings this optimiser's counter level with it afterwards."""
        if self.fallback is not None:
            raise ValueError("only the fused optimisers can be split into parts")
        part = object.__new__(Optimizer)
        part.cfg, part.fallback, part.first_step, part.device = self.cfg, None, self.first_step, self.device
        part._lists = None
        part.params = [p.detach()[index] for p in self.params]
        part.state = {k: [t[index] for t in ts] for k, ts in self.state.items() if k != "step"}
        if self.cfg.optimizer == "adam":
            part.steps, part.one = self.steps.clone(), self.one
            part.state["step"] = [part.steps] * len(part.params)
        return part

    def catch_up(self, part: "Optimizer") -> None:
        """Take the step count of a part that has stepped for this optimiser (see `part`)."""
        if self.cfg.optimizer == "adam":
            self.steps.copy_(part.steps)
        self.first_step = part.first_step

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.fallback is not None:
            return {f"{i}.{k}": v for i, st in self.fallback.state_dict()["state"].items()
                    for k, v in st.items() if isinstance(v, torch.Tensor)}
        if self.first_step:
            return {}  # nothing learnt yet (and SGD's momentum buffers are not initialised)
        # the shared step counter is cloned per entry: a file format must not see shared memory
        return {f"{i}.{k}": (t.clone() if k == "step" else t) for k, ts in self.state.items() for i, t in enumerate(ts)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if not tensors:
            return
        if self.fallback is not None:
            state = self.fallback.state_dict()
            for i in range(len(self.params)):
                keys = {k.split(".", 1)[1] for k in tensors if k.startswith(f"{i}.")}
                state["state"][i] = {k: tensors[f"{i}.{k}"] for k in keys}
            self.fallback.load_state_dict(state)
            return
        for k, ts in self.state.items():
            for i, t in enumerate(ts):
                t.copy_(tensors[f"{i}.{k}"])  # the shared step counter is copied once per tensor: same value
        self.first_step = False
