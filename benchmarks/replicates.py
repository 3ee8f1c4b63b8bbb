"""The MNIST-1D MLP: 16 replicates as one program vs the same 16 trained one after another by
the engine, measured in one run. Each replicate has its own data order (16 streams)."""


import statistics

from common import alternate, result, spread, time_engine

from lottery.config import DataConfig
from lottery.data import load_dataset

K, STEPS, ROUNDS = 16, 300, 6

data = load_dataset(DataConfig("mnist1d", 500))
time_engine(data, "mlp_mnist1d", K, 10, batch_size=100, lr=1e-3)  # warm-up
alone, together, ratios = alternate(
    ROUNDS, lambda: sum(time_engine(data, "mlp_mnist1d", 1, STEPS, batch_size=100, lr=1e-3) for _ in range(K)),
    lambda: time_engine(data, "mlp_mnist1d", K, STEPS, batch_size=100, lr=1e-3, lanes=1))  # one program, no lanes
print(f"{K} MNIST-1D MLPs, {STEPS} steps each: one program {together:.2f} s, one after another {alone:.2f} s "
      f"(best of {ROUNDS}); {spread(ratios)}")
result(speedup=alone / together, speedup_median=statistics.median(ratios))
