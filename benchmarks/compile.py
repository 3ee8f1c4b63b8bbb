"""Does torch.compile help on this CPU? Measured side by side in one run, K = 3 LeNet-300-100
replicates (ticket + both controls), batch 60, Adam, masks at 80 %.

Contenders, all on the same stacked tensors and batches:
  engine        the shipped step: hand-written forward/backward, fused Adam
  eager         the same maths written plainly (autograd, Adam as tensor ops)
  compiled      that plain step through torch.compile (Inductor generates C++ here)
  engine+comp.  the engine's forward/backward with the masking and Adam update compiled into
                one fused loop (the one place compile could save memory traffic)

The engine ships without a compile flag because of what this prints; the last line gives the
ratios (> 1: the contender is slower than the engine).
"""

import time

import torch
from common import mnist, replicates, result, tiny_eval
from common import trainer as make_trainer

from lottery.config import TrainConfig

K, STEPS, ROUNDS, LR = 3, 200, 4, 1.2e-3

data = mnist()
model, reps = replicates(data, "lenet_300_100", K, K, density=0.8)
cfg = TrainConfig(optimizer="adam", lr=LR, batch_size=60, length="400", eval_every=str(10 ** 9))
trainer = make_trainer(model, reps, tiny_eval(data), cfg, device="cpu")
params, stack, opt = trainer.params, trainer.stack, trainer.optimizer
masked = [n for n in trainer.masks]
batches = []
for step in range(STEPS):
    idx = trainer.data_order.indices(step).reshape(-1)
    batches.append((data.train_x[idx].view(1, 60, -1), data.train_y[idx].view(1, 60)))


def engine(i):
    x, y = batches[i]
    stack.loss_and_grads(params, x, y)
    torch._foreach_mul_([params[n].grad for n in masked], [trainer.masks[n] for n in masked])
    opt.step(LR)


# --- the plain functional step -------------------------------------------------------------
names = list(params)
weights = {n: params[n].detach().clone() for n in names}
moments = {n: (torch.zeros_like(w), torch.zeros_like(w)) for n, w in weights.items()}
masks = {n: trainer.masks.get(n) for n in names}
bias_correction = (torch.tensor(0.1), torch.tensor(0.001))  # tensors: no recompilation per step


def forward(w, x):
    h = torch.relu(torch.baddbmm(w["1.bias"].reshape(K, 1, -1), x.expand(K, -1, -1), w["1.weight"].reshape(K, 300, -1).transpose(1, 2)))
    h = torch.relu(torch.baddbmm(w["3.bias"].reshape(K, 1, -1), h, w["3.weight"].reshape(K, 100, 300).transpose(1, 2)))
    return torch.baddbmm(w["5.bias"].reshape(K, 1, -1), h, w["5.weight"].reshape(K, 10, 100).transpose(1, 2))


def adam_update(ws, gs, ms, vs, ks, bc1, bc2):
    for w, g, m, v, k in zip(ws, gs, ms, vs, ks):
        if k is not None:
            g = g * k
        m.mul_(0.9).add_(g, alpha=0.1)
        v.mul_(0.999).addcmul_(g, g, value=0.001)
        w.sub_(LR * (m / bc1) / ((v / bc2).sqrt() + 1e-8))


def plain_step(x, y):
    leaves = {n: w.requires_grad_(True) for n, w in weights.items()}
    logits = forward(leaves, x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.expand(K, -1).reshape(-1), reduction="sum") / 60
    grads = torch.autograd.grad(loss, list(leaves.values()))
    with torch.no_grad():
        adam_update([weights[n] for n in names], grads, [moments[n][0] for n in names],
                    [moments[n][1] for n in names], [masks[n] for n in names], *bias_correction)


compiled_step = torch.compile(plain_step)
compiled_update = torch.compile(adam_update, fullgraph=True)
state_m = [torch.zeros_like(params[n]) for n in names]
state_v = [torch.zeros_like(params[n]) for n in names]
detached = [params[n].detach() for n in names]


def engine_compiled_update(i):
    x, y = batches[i]
    stack.loss_and_grads(params, x, y)
    with torch.no_grad():
        compiled_update(detached, [params[n].grad for n in names], state_m, state_v, [masks[n] for n in names],
                        *bias_correction)


def measure(contenders: dict) -> dict:
    best = {k: float("inf") for k in contenders}
    for f in contenders.values():
        f(0), f(1)  # warm-up (and compilation)
    for _ in range(ROUNDS):
        for k, f in contenders.items():
            t = time.perf_counter()
            for i in range(STEPS):
                f(i)
            best[k] = min(best[k], (time.perf_counter() - t) / STEPS)
    return best


# Eager contenders first: once compiled code has run, its OpenMP threads keep spinning for a
# while after each call and slow whatever runs next on these 2 cores (the engine step took
# 2x longer interleaved with compiled calls). That cost is real for a user of compile, so it
# is shown too, as "engine after".
best = measure({"engine": engine, "eager": lambda i: plain_step(*batches[i])})
started = time.perf_counter()
compiled_step(*batches[0]), engine_compiled_update(0)
print(f"compilation: {time.perf_counter() - started:.1f} s")
best.update(measure({"compiled": lambda i: compiled_step(*batches[i]), "engine+comp.": engine_compiled_update}))
best["engine after"] = measure({"engine": engine})["engine"]
for k, seconds in best.items():
    print(f"{k:<13} {1e3 * seconds:.2f} ms a step = {seconds / best['engine']:.2f} x the engine")
result(eager=best["eager"] / best["engine"], compiled=best["compiled"] / best["engine"],
       engine_compiled_update=best["engine+comp."] / best["engine"])
