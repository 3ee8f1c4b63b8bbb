"""The MNIST-1D MLP: 16 replicates as one group vs the same 16 trained one after another by
the engine, measured in one run. Each replicate has its own data order (16 streams). The 16 train
as `lottery run` trains a group: on a multi-core CPU, in lanes (engine/lanes.py), each a program
over its share of the seeds.

Beside it, the most the group could gain with these kernels on this machine: the one-after-
another time divided by the 16-replicate step's kernel floor (common.step_floor: its products,
masks and optimiser update timed alone, all else free) times the steps, set-up free; and divided
by every kernel of the step timed alone (the batch, activations and loss too): what the group
would gain if each of its kernels ran in the step as fast as it runs alone. On a GPU (CUDA when
present, as `lottery run`; `LOTTERY_BENCH_DEVICE` to choose) the group is one program replayed as a
CUDA graph, and the bounds, CPU kernel timings, are not measured."""


import statistics

from common import (
    ON_CPU,
    describe_floor,
    engine_trainer,
    result,
    spread,
    step_floor,
    time_engine,
)

from lottery.config import DataConfig
from lottery.data import load_dataset

K, STEPS, ROUNDS = 16, 300, 6

data = load_dataset(DataConfig("mnist1d", 500))
time_engine(data, "mlp_mnist1d", K, 10, batch_size=100, lr=1e-3)  # warm-up
for_floor = engine_trainer(data, "mlp_mnist1d", K, 10 ** 6, batch_size=100, lr=1e-3) if ON_CPU else None
alone, together, floors = [], [], []
for _ in range(ROUNDS):
    # the floor in the same round as the two contenders: the host drifts by 10-30 % within minutes,
    # and a bound taken at another moment can fall below the speed-up it bounds
    if ON_CPU:
        floors.append(step_floor(for_floor, 1e-3, repeats=21))
    alone.append(sum(time_engine(data, "mlp_mnist1d", 1, STEPS, batch_size=100, lr=1e-3) for _ in range(K)))
    together.append(time_engine(data, "mlp_mnist1d", K, STEPS, batch_size=100, lr=1e-3))  # as `lottery run`: lanes here
ratios = [a / t for a, t in zip(alone, together)]
print(f"{K} MNIST-1D MLPs, {STEPS} steps each: as one group {min(together):.2f} s, one after another {min(alone):.2f} s "
      f"(best of {ROUNDS}); {spread(ratios)}")
bounds = {}
if ON_CPU:
    # each round's one-after-another time over its own floor's steps, the median over the rounds
    bounds["bound"] = statistics.median(a / (f["floor"] * STEPS) for a, f in zip(alone, floors))
    bounds["bound_all_kernels"] = statistics.median(a / (f["alone"] * STEPS) for a, f in zip(alone, floors))
    engine_over_floor = statistics.median(t / (f["floor"] * STEPS) for t, f in zip(together, floors))
    floor = min(floors, key=lambda f: f["floor"])
    print(f"floor of the {K}-replicate step's kernels alone, lowest of the rounds {floor['floor'] * 1e3:.2f} ms "
          f"({describe_floor(floor)}).\nMedians over the rounds, each against its own round's floor: the group could "
          f"be at most {bounds['bound']:.2f}x faster with these kernels (it takes {engine_over_floor:.2f}x its floor); "
          f"{bounds['bound_all_kernels']:.2f}x if every kernel of its step ran as fast as alone")
result(speedup=min(alone) / min(together), speedup_median=statistics.median(ratios), **bounds)
