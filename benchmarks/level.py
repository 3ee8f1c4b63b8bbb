"""Wall time of one IMP level with both controls (ticket, random reinit, random pruning; one
seed), engine vs naive, measured in one run.

Engine: the three trainings as one program sharing the seed's data order, plus pruning and
rewinding, through the real driver. Naive: three trainings one after another with the loop of
naive.py. Both train 600 steps each, masks at the level-1 density (80%).
"""

import statistics
import tempfile
import time
from dataclasses import replace

from common import (
    DEVICE,
    alternate,
    mnist,
    naive_train,
    on_device,
    result,
    spread,
    synchronize,
    tiny_eval,
)

from lottery.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from lottery.engine import Options
from lottery.imp.driver import Experiment, RunOptions

STEPS, ROUNDS = 600, 8

data = mnist()
small = tiny_eval(on_device(data))
cfg = ExperimentConfig(data=DataConfig("mnist", 5000), model=ModelConfig("lenet_300_100"),
                       train=TrainConfig(lr=1.2e-3, batch_size=60, length=str(STEPS), eval_every=str(STEPS)),
                       levels=0, seeds=(0,))


def engine_level() -> float:
    """Seconds for level 1 alone (level 0, the dense training it prunes, is done beforehand)."""
    with tempfile.TemporaryDirectory() as store:
        options = RunOptions(store=store, engine=Options(device=str(DEVICE)))
        Experiment(cfg, options, data=small).run()
        synchronize()
        t = time.perf_counter()
        Experiment(replace(cfg, levels=1), options, data=small).run()  # its results saved: on the CPU, synchronised
        return time.perf_counter() - t


def naive_level() -> float:
    return sum(naive_train(data, "lenet_300_100", STEPS, mask_density=0.8, seed=s) for s in range(3))


naive, engine, ratios = alternate(ROUNDS, naive_level, engine_level)
print(f"one IMP level (ticket + 2 controls, {STEPS} steps each): naive {naive:.2f} s, engine {engine:.2f} s "
      f"(best of {ROUNDS}); {spread(ratios)}")
result(speedup=naive / engine, speedup_median=statistics.median(ratios))
