"""The MNIST-1D MLP: 16 replicates as one group vs the same 16 trained one after another by
the engine, measured in one run. Each replicate has its own data order (16 streams). The 16 train
as `lottery run` trains a group: on a multi-core CPU, in lanes (lottery.lanes), each a program
over its share of the seeds.

Beside it, the most the group could gain with these kernels on this machine: the one-after-
another time divided by the 16-replicate step's kernel floor (common.step_floor: its products,
masks and optimiser update timed alone, all else free) times the steps, set-up free; and divided
by every kernel of the step timed alone (the batch, activations and loss too): what the group
would gain if each of its kernels ran in the step as fast as it runs alone."""


import statistics

from common import alternate, describe_floor, engine_trainer, result, spread, step_floor, time_engine

from lottery.config import DataConfig
from lottery.data import load_dataset

K, STEPS, ROUNDS = 16, 300, 6

data = load_dataset(DataConfig("mnist1d", 500))
time_engine(data, "mlp_mnist1d", K, 10, batch_size=100, lr=1e-3)  # warm-up
alone, together, ratios = alternate(
    ROUNDS, lambda: sum(time_engine(data, "mlp_mnist1d", 1, STEPS, batch_size=100, lr=1e-3) for _ in range(K)),
    lambda: time_engine(data, "mlp_mnist1d", K, STEPS, batch_size=100, lr=1e-3))  # as `lottery run`: lanes here
floor = step_floor(engine_trainer(data, "mlp_mnist1d", K, 10 ** 6, batch_size=100, lr=1e-3), 1e-3)
bound, bound_all = alone / (floor["floor"] * STEPS), alone / (floor["alone"] * STEPS)
print(f"{K} MNIST-1D MLPs, {STEPS} steps each: as one group {together:.2f} s, one after another {alone:.2f} s "
      f"(best of {ROUNDS}); {spread(ratios)}")
print(f"floor of the {K}-replicate step's kernels alone {floor['floor'] * 1e3:.2f} ms ({describe_floor(floor)}): "
      f"the group could be at most {bound:.2f}x faster with them (it takes {together / STEPS / floor['floor']:.2f}x its floor); "
      f"{bound_all:.2f}x if every kernel of its step ran as fast as alone ({floor['alone'] * 1e3:.2f} ms a step)")
result(speedup=alone / together, speedup_median=statistics.median(ratios), bound=bound, bound_all_kernels=bound_all)
