"""The engine vs the loop most users write, same data and steps, measured in one run.

Naive: DataLoader over a TensorDataset, an nn.Module, masks through torch.nn.utils.prune,
one model at a time, torch.optim.Adam with its defaults. Engine: the same single model
(K = 1) through `lottery.engine`. Both with masks at 80% density, batch 60. Rounds alternate
and the best of each is kept (this machine's speed drifts).
"""

import statistics

from common import alternate, mnist, naive_train, result, spread, time_engine

STEPS, ROUNDS = 400, 6

data = mnist()
naive_train(data, "lenet_300_100", 20, mask_density=0.8)  # warm-up
time_engine(data, "lenet_300_100", 1, 20, density=0.8)
naive, engine, ratios = alternate(ROUNDS, lambda: naive_train(data, "lenet_300_100", STEPS, mask_density=0.8),
                                  lambda: time_engine(data, "lenet_300_100", 1, STEPS, density=0.8))
print(f"{STEPS} steps of LeNet-300-100: naive {naive:.2f} s, engine {engine:.2f} s (best of {ROUNDS}); {spread(ratios)}")
result(speedup=naive / engine, speedup_median=statistics.median(ratios))
