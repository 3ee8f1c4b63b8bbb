"""The hand-written engine for ReLU MLPs: forward and backward as a few wide matrix products."""

import torch
from torch import nn


def mlp_layers(template: nn.Module) -> list[tuple[str, str | None]] | None:
    """(weight name, bias name) of each Linear if `template` is Flatten? (Linear ReLU)* Linear, else None."""
    if not isinstance(template, nn.Sequential) or any(True for _ in template.buffers()):
        return None
    mods = list(template.named_children())
    if mods and isinstance(mods[0][1], nn.Flatten):
        mods = mods[1:]
    layers = []
    for i, (name, m) in enumerate(mods):
        want_linear = i % 2 == 0
        if want_linear and isinstance(m, nn.Linear):
            layers.append((f"{name}.weight", f"{name}.bias" if m.bias is not None else None))
        elif not want_linear and isinstance(m, nn.ReLU):
            continue
        else:
            return None
    return layers if mods and len(mods) % 2 == 1 else None


class MLPStack:
    """Hand-written forward/backward for a stack of ReLU MLPs (see the module docstring).

    Gradient masks, when given, are applied to each weight gradient right after its product,
    while it is still in cache: a separate pass over all gradients afterwards costs far more once
    they have left the cache (docs/engine.md)."""

    name = "mlp"
    groups = True
    fixed_kernels = True  # the step is a list of kernels over reused buffers (`_build`)
    lanes = True  # it draws nothing from torch's global generator

    def __init__(self, template: nn.Module, S: int, R: int):
        layers = mlp_layers(template)
        if layers is None:
            raise ValueError("MLPStack needs a Sequential of Linear and ReLU layers")
        self.layers, self.S, self.R = layers, S, R
        self.masks_gradients_of = frozenset(w for w, _ in layers)  # weights only: masked biases are left to the trainer
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._plan_for: list[torch.Tensor] = []  # the tensors the cached training plan views
        self._plan: list[dict] = []
        self._step = None  # ((plan, x, y), calls, loss buffer): the built training step (see _build)

    def _buffer(self, key, shape, like: torch.Tensor, fill: float | None = None) -> torch.Tensor:
        """A reused work tensor. Fresh multi-MB allocations every step cost page faults that
        made step times swing (docs/engine.md); reusing the same memory keeps them flat."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != torch.Size(shape) or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
            if fill is not None:
                buf.fill_(fill)
        return buf

    def _seed_parts(self) -> list[slice]:
        """The seeds each first-layer product covers. A few seeds: one product each beats one bmm
        over all of them at LeNet's shapes, called as a bmm over a batch of one rather than as mm
        (faster there, with the same bits). Many seeds: one bmm call saves the per-call overhead
        that dominates small models (measurements: docs/engine.md)."""
        return [slice(s, s + 1) for s in range(self.S)] if self.S <= 4 else [slice(None)]

    @torch.no_grad()
    def _views(self, params: dict[str, torch.Tensor]) -> list[dict]:
        """Each layer's weight and bias in the shapes the products use: the first layer's R
        replicates side by side, [S, in, R*out]; later layers one matrix per replicate."""
        S, R = self.S, self.R
        views = []
        for i, (w_name, b_name) in enumerate(self.layers):
            w = params[w_name]
            b = params[b_name] if b_name is not None else None
            out, inp = w.shape[2], w.shape[3]
            if i == 0:
                wide = w.reshape(S, R * out, inp).transpose(1, 2)
                bias = b.reshape(S, R * out) if b is not None else None
                v = {"w": wide, "b": bias}
            else:
                w3 = w.reshape(S * R, out, inp)
                v = {"w": w3, "wt": w3.transpose(1, 2), "b": b.reshape(S * R, 1, out) if b is not None else None}
            v["params"] = (w, b)
            views.append(v)
        return views

    @torch.no_grad()
    def _training_plan(self, params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> list[dict]:
        """The views plus gradient buffers, built once per state: the trainer updates its tensors
        in place, so the views stay valid, and the 30-odd view and .grad-setting calls a step
        (a good part of a small step's fixed cost) are paid once."""
        tensors = [params[n] for pair in self.layers for n in pair if n is not None]
        tensors += [masks.get(w_name) for w_name, _ in self.layers]
        if len(tensors) == len(self._plan_for) and all(a is b for a, b in zip(tensors, self._plan_for)):
            return self._plan
        plan = self._views(params)
        for i, (v, (w_name, _)) in enumerate(zip(plan, self.layers)):
            w, b = v["params"]
            shape = v["w"].shape
            grad_shape = (shape[0], shape[2], shape[1]) if i == 0 else tuple(shape)
            v["mask"] = masks[w_name].reshape(grad_shape) if w_name in masks else None
            v["gw"] = torch.empty(grad_shape, dtype=w.dtype, device=w.device)
            v["gb"] = torch.empty(grad_shape[:2], dtype=w.dtype, device=w.device) if b is not None else None
            w.grad = v["gw"].view_as(w)
            if b is not None:
                b.grad = v["gb"].view_as(b)
            v["grads"] = (w.grad, b.grad if b is not None else None)
        self._plan_for, self._plan = tensors, plan
        return plan

    def _build(self, views: list[dict], x: torch.Tensor, y: torch.Tensor | None = None):
        """The step as a list of (op, args, kwargs) over fixed tensors, and its outputs.

        x [S, N, F] (one batch per seed). Without y: the forward pass into fresh memory (evaluation,
        whose logits the caller keeps) → (calls, logits [S*R, C, N]). With y: forward, loss and
        backward into reused buffers and the plan's gradients → (calls, per-replicate loss [S, R]).
        Built once and replayed while the same batch buffers come back: the views, shapes and
        buffer look-ups of a step are a measurable part of a small step.

        The last layer computes W·hᵀ, classes × examples: with 10 classes that product, and
        log-softmax over a leading class dimension, run faster than h·Wᵀ (docs/engine.md)."""
        S, R = self.S, self.R
        N = x.shape[1]
        train = y is not None
        calls = []

        def call(op, *args, **kwargs):
            calls.append((op, args, kwargs))

        def mem(key, shape, like=x):
            return self._buffer(key, shape, like) if train else torch.empty(shape, dtype=like.dtype, device=like.device)

        first = views[0]
        wide_out = first["w"].shape[2]
        h0 = mem(("h0",), (S, N, wide_out))
        for part in self._seed_parts():
            if first["b"] is not None:
                call(torch.baddbmm, first["b"][part].unsqueeze(1), x[part], first["w"][part], out=h0[part])
            else:
                call(torch.bmm, x[part], first["w"][part], out=h0[part])
        # [S, N, R*out] → [S*R, N, out]: the per-replicate layout of the later layers
        out = wide_out // R
        if R > 1:
            h = mem(("h0r",), (S * R, N, out))
            call(torch.Tensor.copy_, h.view(S, R, N, out), h0.view(S, N, R, out).transpose(1, 2))
        else:
            h = h0.view(S, N, out)
        acts = []
        for i, v in enumerate(views[1:], 1):
            call(torch.Tensor.relu_, h)
            acts.append(h)
            rows = v["w"].shape[1]
            if i == len(views) - 1:
                o = mem(("out", i), (S * R, rows, N))
                bias = v["b"].view(S * R, rows, 1) if v["b"] is not None else None
                lhs, rhs = v["w"], h.transpose(1, 2)
            else:
                o = mem(("out", i), (S * R, N, rows))
                bias, lhs, rhs = v["b"], h, v["wt"]
            if bias is not None:
                call(torch.baddbmm, bias, lhs, rhs, out=o)
            else:
                call(torch.bmm, lhs, rhs, out=o)
            h = o
        logits = h if len(views) > 1 else h.transpose(1, 2)  # a single layer: a classes-first view
        if not train:
            return calls, logits

        # loss: each replicate's mean cross-entropy; d(mean CE)/dlogits = (softmax − onehot) / N
        C = logits.shape[1]
        dz = mem(("logp",), (S * R, C, N))
        call(torch.log_softmax, logits, 1, out=dz)
        if R == 1:
            target = y.view(S, 1, N)
        else:
            target = mem(("target",), (S * R, 1, N), like=y)
            call(torch.Tensor.copy_, target.view(S, R, 1, N), y.view(S, 1, 1, N).expand(S, R, 1, N))
        picked = mem(("picked",), (S * R, 1, N))
        per = mem(("per",), (S, R))
        call(torch.gather, dz, 1, target, out=picked)
        call(torch.sum, picked.view(S, R, N), -1, out=per)
        # scales as 0-dim tensors, not Python numbers: the same float32 products, but the op skips
        # wrapping a number into a tensor, costly with the caches cold as they are mid-step
        # (docs/engine.md)
        call(torch.Tensor.mul_, per, self._buffer(("scale", -1.0 / N), (), dz, fill=-1.0 / N))
        call(torch.Tensor.exp_, dz)
        call(torch.Tensor.scatter_add_, dz, 1, target, self._buffer(("minus_one",), target.shape, dz, fill=-1.0))
        call(torch.Tensor.mul_, dz, self._buffer(("scale", 1.0 / N), (), dz, fill=1.0 / N))
        for i in range(len(views) - 1, 0, -1):
            v, a = views[i], acts[i - 1]
            last = i == len(views) - 1
            call(torch.bmm, dz if last else dz.transpose(1, 2), a, out=v["gw"])
            if v["mask"] is not None:
                call(torch.Tensor.mul_, v["gw"], v["mask"])
            if v["gb"] is not None:
                call(torch.sum, dz, 2 if last else 1, out=v["gb"])
            back = mem(("back", i), a.shape)
            call(torch.bmm, dz.transpose(1, 2) if last else dz, v["w"], out=back)
            call(torch.ops.aten.threshold_backward.grad_input, back, a, 0, grad_input=back)  # ReLU backward, fused
            dz = back
        if len(views) == 1:
            dz = dz.transpose(1, 2)  # back to examples × classes, the first layer's layout
        if first["gb"] is not None:
            # summed in the per-replicate layout, [S*R, N, out]: over the wide one the reduction's
            # order for a replicate's last columns would depend on R (the vector loop's tail)
            call(torch.sum, dz.view(S * R, N, out), 1, out=first["gb"].view(S * R, out))
        if R > 1:
            together = mem(("back", 0), (S, N, R * out))
            call(torch.Tensor.copy_, together.view(S, N, R, out), dz.view(S, R, N, out).transpose(1, 2))
            dz = together
        else:
            dz = dz.view(S, N, out)
        for part in self._seed_parts():
            call(torch.bmm, dz[part].transpose(1, 2), x[part], out=first["gw"][part])
            if first["mask"] is not None:
                call(torch.Tensor.mul_, first["gw"][part], first["mask"][part])
        return calls, per

    def _built(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
               masks: dict[str, torch.Tensor] | None) -> tuple[list, torch.Tensor]:
        """The step built over the training plan and its loss buffer: built again only when the
        tensors it works on change. Every parameter's `.grad` is its gradient buffer."""
        plan = self._training_plan(params, masks or {})
        key = (plan, x, y)
        if self._step is None or any(a is not b for a, b in zip(key, self._step[0])):
            self._step = (key, *self._build(plan, x.reshape(self.S, x.shape[1], -1), y))
        for v in plan:  # re-attach the buffers if anyone detached them (e.g. zero_grad(set_to_none))
            w, b = v["params"]
            if w.grad is not v["grads"][0]:
                w.grad = v["grads"][0]
            if b is not None and b.grad is not v["grads"][1]:
                b.grad = v["grads"][1]
        return self._step[1], self._step[2]

    def kernels(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int = 0,
                masks: dict[str, torch.Tensor] | None = None) -> tuple[list[tuple], torch.Tensor]:
        """The built step as (op, args, kwargs) kernels, in order, and the [S, R] loss buffer they
        fill: run under no_grad, they are `loss_and_grads` (lottery.engine.step.TrainStep.kernels)."""
        calls, per = self._built(params, x, y, masks)
        return list(calls), per

    def loss_and_grads(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int = 0,
                       masks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Each replicate's mean loss [S, R], and `.grad` set on every parameter. Passing the same x
        and y tensors every step (refilled in place) lets the built step be replayed."""
        calls, per = self._built(params, x, y, masks)
        with torch.no_grad():
            for op, args, kwargs in calls:
                op(*args, **kwargs)
        return per.clone()  # the buffer is refilled next step; the caller's copy stays

    def logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """x [N, ...] shared by every replicate → logits [S, R, N, C] (a view of classes-first memory)."""
        x = x.reshape(1, x.shape[0], -1).expand(self.S, -1, -1)
        with torch.no_grad():
            calls, logits = self._build(self._views(params), x)
            for op, args, kwargs in calls:
                op(*args, **kwargs)
        return logits.view(self.S, self.R, -1, x.shape[1]).transpose(-1, -2)
