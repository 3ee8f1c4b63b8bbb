"""On a CUDA device: the engine's training step replayed as a CUDA graph vs launched op by op,
for LeNet-300-100 at batch 60 with K = 1, 3 and 9 replicates (masks on, 80% kept), measured
in alternation in one run. Prints per-step times and the ratio; without a GPU it says so and
exits 0.
"""

import sys
import time

import torch
from common import (
    DEVICE,
    ON_CPU,
    mnist,
    on_device,
    replicates,
    result,
    synchronize,
    tiny_eval,
    trainer,
)

from lottery.config import TrainConfig

STEPS, ROUNDS = 400, 5
CASES = ((1, 1), (3, 1), (9, 3))  # (K replicates, data streams)

if ON_CPU:
    print("no CUDA device: nothing to measure")
    sys.exit(0)

data = on_device(mnist())
small = tiny_eval(data)
cfg = TrainConfig(optimizer="adam", lr=1.2e-3, batch_size=60, length=str(STEPS), eval_every=str(10 ** 9))


def seconds_per_step(k: int, streams: int, graphs: bool) -> float:
    model, reps = replicates(data, "lenet_300_100", k, k // streams, density=0.8)
    made = trainer(model, reps, small, cfg, cuda_graphs=graphs)
    synchronize()
    t = time.perf_counter()
    made.run()  # ends with results copied to the CPU: synchronised
    return (time.perf_counter() - t) / STEPS


best = {(k, g): float("inf") for k, _ in CASES for g in (False, True)}
for k, streams in CASES:  # warm-up: cuBLAS handles, the allocator's pools
    seconds_per_step(k, streams, False), seconds_per_step(k, streams, True)
for _ in range(ROUNDS):
    for k, streams in CASES:
        for graphs in (False, True):
            best[(k, graphs)] = min(best[(k, graphs)], seconds_per_step(k, streams, graphs))
print(f"{torch.cuda.get_device_name(DEVICE)}, LeNet-300-100, batch 60, {STEPS} steps (best of {ROUNDS}):")
for k, _ in CASES:
    eager, graph = best[(k, False)] * 1e6, best[(k, True)] * 1e6
    print(f"K={k}: op by op {eager:.0f} µs a step, CUDA graph {graph:.0f} µs ({eager / graph:.2f}x)")
result(**{f"graph_speedup_k{k}": best[(k, False)] / best[(k, True)] for k, _ in CASES})
