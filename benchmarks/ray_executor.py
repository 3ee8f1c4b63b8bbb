"""The same 3-seed IMP experiment on the local executor and on Ray, on this machine; and the
speed-up N Ray workers would give, projected from the measured task times and the dependency graph.

Both runs train LeNet-300-100 on MNIST (levels 0-3, the ticket with both controls, 3 seeds: 30
units) in fresh stores, alternated `ROUNDS` times; the best wall time of each is kept. Ray's time
includes starting its local instance (reported apart too). The two runs' tables are checked equal,
timing aside.

Projection: Ray sends one task per (level, seed) (that seed's branches together), a task may start
once the seed's previous level is done. A task's time is its units' training time as measured on
Ray (one CPU each) plus Ray's measured overhead per task; N workers run the graph by list
scheduling (a free worker takes the ready task with the longest path after it). The critical path
(the longest seed's chain of levels) bounds every N.
"""

import tempfile
import time
from pathlib import Path

from common import mnist, result

from lottery.analysis.table import table
from lottery.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from lottery.imp.driver import Experiment, RunOptions
from lottery.store import RunStore

ROUNDS = 2
TIMING = ["train_seconds", "score_seconds", "find_seconds"]
cfg = ExperimentConfig(data=DataConfig("mnist", 5000), model=ModelConfig("lenet_300_100"),
                       train=TrainConfig(lr=1.2e-3, batch_size=60, length="1ep", eval_every="0.5ep"),
                       levels=3, seeds=(0, 1, 2))
data = mnist()


def run(executor: str) -> tuple[float, RunStore]:
    store = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    run_dir = Experiment(cfg, RunOptions(store=store, executor=executor), data=data).run()
    return time.perf_counter() - t, RunStore(run_dir)


def ray_start_seconds() -> float:
    import ray

    t = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    seconds = time.perf_counter() - t
    ray.shutdown()
    return seconds


def tasks(df) -> dict[tuple[int, int], float]:
    """(level, seed) → the training seconds of that task's units."""
    return {(int(lv), int(s)): float(g.train_seconds.sum()) for (lv, s), g in df.groupby(["level", "seed"])}


def schedule(durations: dict[tuple[int, int], float], workers: int, overhead: float) -> float:
    """Wall time of the task graph (a seed's level L after its level L−1) on `workers` workers."""
    levels = max(lv for lv, _ in durations) + 1
    after = {(lv, s): sum(durations[(k, s)] + overhead for k in range(lv + 1, levels)) for lv, s in durations}
    done_at: dict[tuple[int, int], float] = {}
    free = [0.0] * workers
    pending = set(durations)
    while pending:
        w = min(range(workers), key=free.__getitem__)
        now = free[w]
        ready = [t for t in pending if t[0] == 0 or done_at.get((t[0] - 1, t[1]), float("inf")) <= now]
        if not ready:  # wait for the earliest prerequisite to finish
            free[w] = min(done_at[(t[0] - 1, t[1])] for t in pending if (t[0] - 1, t[1]) in done_at
                          and done_at[(t[0] - 1, t[1])] > now)
            continue
        task = max(ready, key=lambda t: (after[t] + durations[t], -t[0]))
        pending.remove(task)
        done_at[task] = free[w] = now + durations[task] + overhead
    return max(done_at.values())


local_times, ray_times = [], []
for _ in range(ROUNDS):
    seconds, local_store = run("local")
    local_times.append(seconds)
    seconds, ray_store = run("ray")
    ray_times.append(seconds)
a, b = table(local_store).drop(columns=TIMING), table(ray_store).drop(columns=TIMING)
assert a.equals(b), "Ray and the local executor must give the same table"
start = ray_start_seconds()
local_s, ray_s = min(local_times), min(ray_times)
durations = tasks(table(ray_store))
work = sum(durations.values())
overhead = max(0.0, (ray_s - start) - schedule(durations, 2, 0.0)) / len(durations)
path = max(sum(d for (lv, s), d in durations.items() if s == seed) for seed in cfg.seeds)
print(f"{len(a)} units, {len(durations)} tasks; local {local_s:.1f} s, Ray {ray_s:.1f} s (best of {ROUNDS}) = "
      f"{ray_s / local_s:.2f} x local, of which starting Ray {start:.1f} s; Ray overhead per task "
      f"{overhead:.2f} s; the same table, timing aside")
print(f"training work {work:.1f} s in all; critical path (the longest seed's chain) {path:.1f} s")
print("workers | projected wall (s) | speed-up over 1 worker")
one = schedule(durations, 1, overhead)
for n in (1, 2, 3, 4, 8, 16):
    wall = schedule(durations, n, overhead)
    print(f"{n:>7} | {wall:>18.1f} | {one / wall:>6.2f}")
result(ray_overhead=round(ray_s / local_s, 3), ray_start_s=round(start, 2), task_overhead_s=round(overhead, 3),
       speedup_4=round(one / schedule(durations, 4, overhead), 2),
       speedup_16=round(one / schedule(durations, 16, overhead), 2), critical_path_s=round(path, 1))
