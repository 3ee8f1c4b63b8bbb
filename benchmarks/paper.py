"""Projected wall time of the full paper experiment on this machine, engine vs naive.

The experiment: LeNet-300-100, 50,000 iterations per training, 12 levels, the ticket and both
controls, one seed, validation every 100 iterations on 5,000 examples. Projected from measured
slices: seconds per step with K = 1 (the dense level) and K = 3 (each pruned level: ticket +
controls as one program) for the engine, one model for the naive loop, and the cost of one
evaluation for each.
"""

import time

import torch
from common import (
    DEVICE,
    mnist,
    naive_train,
    on_device,
    result,
    synchronize,
    time_engine,
)

from lottery.models import build

ITERATIONS, LEVELS, EVAL_EVERY, STEPS = 50_000, 12, 100, 400

data = mnist()
time_engine(data, "lenet_300_100", 3, 20, streams=1, density=0.8)  # warm-up
k1 = min(time_engine(data, "lenet_300_100", 1, STEPS, density=0.8) for _ in range(2)) / STEPS
k3 = min(time_engine(data, "lenet_300_100", 3, STEPS, streams=1, density=0.8) for _ in range(2)) / STEPS
naive_step = min(naive_train(data, "lenet_300_100", STEPS, mask_density=0.8) for _ in range(2)) / STEPS

# One validation pass: the engine evaluates K models in one program, the naive loop one model.
model = build("lenet_300_100", data.input_shape, 10, 0).to(DEVICE)
val_x = on_device(data).val_x
synchronize()
t = time.perf_counter()
with torch.inference_mode():
    for i in range(0, 5000, 1000):
        model(val_x[i:i + 1000]).argmax(-1)
synchronize()
naive_eval = time.perf_counter() - t
evals = ITERATIONS // EVAL_EVERY
naive_total = (1 + 3 * LEVELS) * (ITERATIONS * naive_step + evals * naive_eval)
# The engine's evaluation of 3 stacked models costs about what 3 separate ones do (same FLOPs).
engine_total = ITERATIONS * k1 + LEVELS * ITERATIONS * k3 + (1 + 3 * LEVELS) * evals * naive_eval
print(f"per step: engine K=1 {1e3 * k1:.2f} ms, K=3 {1e3 * k3:.2f} ms ({1e3 * k3 / 3:.2f} ms per model); "
      f"naive {1e3 * naive_step:.2f} ms; one evaluation {1e3 * naive_eval:.1f} ms")
print(f"full paper experiment (1 seed, {LEVELS} levels, ticket + 2 controls): engine {engine_total / 60:.0f} min, "
      f"naive {naive_total / 60:.0f} min ({naive_total / engine_total:.1f}x)")
result(engine_minutes=engine_total / 60, naive_minutes=naive_total / 60)
