"""Convolutional networks: the engine against a plain PyTorch loop and the machine's limit.

Conv-2 and ResNet-20 on CIFAR-shaped data (random images: CIFAR-10 cannot be downloaded here;
the time of a step does not depend on the pixels), batch 60, masks at 80% (IMP level 1), Adam.
Three seeds × three branches, as a level trains them:

- engine: the nine units as one group through `lottery.engine` (the modules stack, in lanes on
  a multi-core CPU);
- plain: the same nine units one after another, each the loop most users write: an nn.Module with
  its mask attached by torch.nn.utils.prune, torch.optim.Adam, batches drawn by index;
- limit: the units' training FLOPs (forward and backward, 3 × the forward's multiply-adds × 2) at
  the machine's dense matmul rate, measured in the same run.

Times are per unit and step: each contender is timed at two lengths and the difference taken, so
one-time costs (building, compiling) cancel. Rounds alternate the contenders; medians. Last line:
`RESULT conv2_speedup=… resnet20_speedup=… conv2_limit_ratio=… resnet20_limit_ratio=…`.
"""

import statistics
import time

import torch
from common import DEVICE, matmul_gflops, result, synchronize, trainer
from torch import nn
from torch.nn.utils import prune

from lottery.config import TrainConfig
from lottery.data import Dataset
from lottery.engine import Replicate
from lottery.models import build
from lottery.pruning import apply, magnitude, prunable_names
from lottery.pruning import dense as dense_mask

ROUNDS, SHORT, LONG, BATCH, SEEDS, BRANCHES = 3, 2, 6, 60, 3, 3
SHAPE = (3, 32, 32)
g = torch.Generator().manual_seed(0)
DATA = Dataset("cifar-shaped", torch.randn(1200, *SHAPE, generator=g), torch.randint(0, 10, (1200,), generator=g),
               torch.randn(60, *SHAPE, generator=g), torch.randint(0, 10, (60,), generator=g),
               torch.randn(60, *SHAPE, generator=g), torch.randint(0, 10, (60,), generator=g), 10).to(DEVICE)


def units(name: str):
    """Nine units at level-1 density: 3 seeds (data streams) × 3 branches."""
    reps = []
    for k in range(SEEDS * BRANCHES):
        model = build(name, SHAPE, 10, k)
        state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        mask = magnitude(state, dense_mask(state, prunable_names(model)), rate=0.2, output_rate=0.1)
        reps.append(Replicate(apply(state, mask), mask, data_seed=k // BRANCHES))
    return model, reps


def engine_seconds(name: str, steps: int) -> float:
    model, reps = units(name)
    cfg = TrainConfig(optimizer="adam", lr=1e-3, batch_size=BATCH, length=str(steps), eval_every=str(10 ** 9))
    made = trainer(model, reps, DATA, cfg)
    synchronize()
    start = time.perf_counter()
    made.run()
    return time.perf_counter() - start


def plain_seconds(name: str, steps: int) -> float:
    """The nine units one after another, the plain way."""
    _, reps = units(name)
    total = 0.0
    for k, rep in enumerate(reps):
        model = build(name, SHAPE, 10, k).to(DEVICE)
        model.load_state_dict(rep.init)
        for n, m in rep.mask.items():
            owner, _, attr = n.rpartition(".")
            prune.custom_from_mask(model.get_submodule(owner), attr, m.to(DEVICE))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.randperm(len(DATA.train_x), generator=torch.Generator().manual_seed(k), device="cpu")
        synchronize()
        start = time.perf_counter()
        for t in range(steps):
            idx = order[(t * BATCH) % len(order):][:BATCH].to(DEVICE)
            opt.zero_grad()
            nn.functional.cross_entropy(model(DATA.train_x[idx]), DATA.train_y[idx]).backward()
            opt.step()
        synchronize()
        total += time.perf_counter() - start
    return total


def per_unit_step(seconds) -> float:
    """From (short, long) timings: seconds per unit and step."""
    short, long_ = seconds
    return (long_ - short) / (LONG - SHORT) / (SEEDS * BRANCHES)


def training_flops(name: str) -> float:
    """FLOPs of one training step of one unit: the forward's multiply-adds × 2, × 3 with the backward."""
    model, macs = build(name, SHAPE, 10, 0), [0]

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            macs[0] += output.numel() // output.shape[0] * module.weight[0].numel()
        elif isinstance(module, nn.Linear):
            macs[0] += module.weight.numel()
    for m in model.modules():
        m.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, *SHAPE))
    return 3 * 2 * macs[0] * BATCH


rows = {}
for name in ("conv2", "resnet20"):
    engine_seconds(name, SHORT)  # warm-up: allocator, kernels' first calls
    engine, plain, peaks = [], [], []
    for _ in range(ROUNDS):
        peaks.append(matmul_gflops())
        engine.append(per_unit_step([engine_seconds(name, n) for n in (SHORT, LONG)]))
        plain.append(per_unit_step([plain_seconds(name, n) for n in (SHORT, LONG)]))
    e, p = statistics.median(engine), statistics.median(plain)
    limit = training_flops(name) / (max(peaks) * 1e9)
    rows[name] = (e, p, limit)
    print(f"{name}: engine {1e3 * e:.1f} ms a unit-step, plain loop {1e3 * p:.1f} ms ({p / e:.2f}x the engine's), "
          f"limit {1e3 * limit:.1f} ms (engine {e / limit:.2f}x it; matmul peak {max(peaks):.0f} GFLOP/s); "
          f"rounds: engine {', '.join(f'{1e3 * x:.1f}' for x in engine)} ms, "
          f"plain {', '.join(f'{1e3 * x:.1f}' for x in plain)} ms", flush=True)
result(conv2_speedup=rows["conv2"][1] / rows["conv2"][0], resnet20_speedup=rows["resnet20"][1] / rows["resnet20"][0],
       conv2_limit_ratio=rows["conv2"][0] / rows["conv2"][2], resnet20_limit_ratio=rows["resnet20"][0] / rows["resnet20"][2])
