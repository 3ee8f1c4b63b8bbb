"""Shared pieces of the benchmarks: data, the machine's matmul peak, engine and naive trainers.

Every benchmark measures its contenders side by side in the same process and reports ratios.
"""

import contextlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lottery import engine, pruning  # noqa: E402
from lottery.cli import usable_cores  # noqa: E402
from lottery.config import DataConfig, TrainConfig  # noqa: E402
from lottery.data import load_dataset  # noqa: E402
from lottery.engine import Replicate, resolve_device  # noqa: E402
from lottery.models import build  # noqa: E402

THREADS = int(os.environ.get("LOTTERY_BENCH_THREADS", usable_cores()))  # as `lottery run` does
torch.set_num_threads(THREADS)
# as `lottery run --device auto`: CUDA when present, else the CPU; LOTTERY_BENCH_DEVICE=cpu|cuda|cuda:N to choose
DEVICE = resolve_device(os.environ.get("LOTTERY_BENCH_DEVICE", "auto"))
ON_CPU = DEVICE.type == "cpu"
print(f"device: {torch.cuda.get_device_name(DEVICE) if not ON_CPU else f'cpu, {THREADS} threads'}", flush=True)


def synchronize() -> None:
    """Wait for the device's queued work: a host clock read after it times the work, not its launch."""
    if not ON_CPU:
        torch.cuda.synchronize(DEVICE)


_on_device: dict[int, object] = {}


def on_device(data):
    """The dataset on DEVICE, moved once per dataset (the engine's own data path: tensors on the
    training device), so that no timing pays the copy."""
    if data.train_x.device == DEVICE:
        return data
    if id(data) not in _on_device:
        _on_device[id(data)] = (data, data.to(DEVICE))  # the source kept alive: its id stays its own
    return _on_device[id(data)][1]


def mnist():
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    data_dir = os.environ.get("LOTTERY_DATA_DIR") or (str(shared) if (shared / "mnist").is_dir() else None)
    return load_dataset(DataConfig("mnist", 5000), data_dir)


def matmul_gflops(sizes=None, repeats=5) -> float:
    """The device's dense fp32 matmul rate (in the precision the engine trains in: no TF32): the
    best over a few large square sizes."""
    sizes = sizes or ((1024, 2048, 3072) if ON_CPU else (4096, 8192))
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
        a @ b
        synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize()
        best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9)
    return best


def replicates(data, model_name, k, seeds_per_stream=1, density=1.0, seed=0):
    """k replicates: k // seeds_per_stream data streams, each shared by seeds_per_stream replicates."""
    reps = []
    for i in range(k):
        model = build(model_name, data.input_shape, data.num_classes, seed + i)
        params = {n: p.detach().clone() for n, p in model.named_parameters()}
        mask = pruning.dense(params, pruning.prunable_names(model))
        if density < 1.0:
            mask = pruning.magnitude(params, mask, rate=1 - density, output_rate=(1 - density) / 2)
        reps.append(Replicate(pruning.apply(params, mask), mask, data_seed=seed + i // seeds_per_stream))
    return model, reps


def engine_group(data, model_name, k, steps, streams=None, batch_size=60, lr=1.2e-3, density=1.0, **kw):
    """What a trainer of `steps` steps of k replicates as one group takes (evaluation only at the
    ends): a function of no arguments making it, its inputs already made."""
    per_stream = k // (streams or k)
    model, reps = replicates(data, model_name, k, per_stream, density)
    cfg = TrainConfig(optimizer="adam", lr=lr, batch_size=batch_size, length=str(steps), eval_every=str(10 ** 9))
    small = tiny_eval(on_device(data))
    return lambda: trainer(model, reps, small, cfg, **kw)


def trainer(model, reps, data, cfg, **options) -> engine.Trainer:
    """The engine's trainer for these replicates on DEVICE, as `lottery run` makes it (options:
    those of lottery.engine.Options)."""
    group = engine.Group(model, reps, data, cfg)
    options.setdefault("device", str(DEVICE))
    return engine.Trainer(group, engine.plan(model, group.example(), engine.Options(**options)))


def engine_trainer(*args, **kwargs) -> engine.Trainer:
    return engine_group(*args, **kwargs)()


def time_engine(*args, **kwargs) -> float:
    """Seconds the engine takes to train `engine_group`'s replicates (making the trainer included,
    making the replicates not)."""
    make = engine_group(*args, **kwargs)
    synchronize()
    t = time.perf_counter()
    make().run()  # ends with the results copied to the CPU: the device's work is done
    return time.perf_counter() - t


PRODUCTS = (torch.mm, torch.addmm, torch.bmm, torch.baddbmm)


def _kind(op, args) -> str:
    """What a step's kernel is, for the floor: a matrix product, the optimiser update, a gradient
    mask, or other work (the batch, activations, loss, bias gradients, the step counter)."""
    if op in PRODUCTS:
        return "products"
    if op in (torch._fused_adam_, torch._fused_sgd_):
        return "optimizer"
    masking = op is torch.Tensor.mul_ and isinstance(args[1], torch.Tensor) and args[1].shape == args[0].shape
    return "masks" if masking or op is torch._foreach_mul_ else "other"


def _rewritten(op, args, kwargs) -> list[torch.Tensor]:
    """The tensors a kernel reads and writes (in-place ops, the optimiser's state): put back
    before each timed call, so repeated calls see the values the step gives them, not values
    driven to infinities or denormals by calling it again and again."""
    if op is torch._fused_adam_:  # (params, grads, exp_avg, exp_avg_sq, …)
        return [*args[0], *args[2], *args[3]]
    if op is torch._fused_sgd_:  # (params, grads, momentum buffers)
        return [*args[0], *args[2]]
    if "grad_input" in kwargs:
        return [kwargs["grad_input"]]
    if getattr(op, "__name__", "").endswith("_") and isinstance(args[0], torch.Tensor):
        return [args[0]]
    return []


def _alone(op, args, kwargs, repeats: int) -> float:
    """One kernel's time with its operands hot in cache: the median of `repeats` single calls,
    each from the same values (see `_rewritten`); the values are left as the step left them. The
    median, not the best: a kernel's best single call here ran up to 1.4x faster than its calls
    in a row, and a floor sums calls in a row."""
    saved = [(t, t.clone()) for t in _rewritten(op, args, kwargs)]
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            for t, v in saved:
                t.copy_(v)
            start = time.perf_counter()
            op(*args, **kwargs)
            times.append(time.perf_counter() - start)
        for t, v in saved:
            t.copy_(v)
    return statistics.median(times)


def _kernel_times(program, lr, warmup: int, repeats: int) -> tuple[dict, float]:
    """(seconds by kind of kernel, FLOPs) of one step of `program` (lottery.engine.step.TrainStep), each
    kernel timed alone on the threads torch has now."""
    for t in range(warmup):
        program(t, lr)
    kernels = program.kernels(warmup, lr)
    with torch.no_grad():
        for op, args, kwargs in kernels:
            op(*args, **kwargs)
    parts = {"products": 0.0, "masks": 0.0, "optimizer": 0.0, "other": 0.0}
    for op, args, kwargs in kernels:
        parts[_kind(op, args)] += _alone(op, args, kwargs, repeats)
    flops = sum(2 * kw["out"].numel() * args[-2].shape[-1] for op, args, kw in kernels if op in PRODUCTS)
    return parts, flops


@contextlib.contextmanager
def _other_cores_busy(threads: int):
    """Meanwhile, `threads` threads multiplying matrices, one core each, as the other lanes keep
    theirs busy: a core computes slower when the others do too (a one-thread 1024² matmul here:
    122 GFLOP/s alone, 109 beside another, medians of 8 alternations), so a lane's kernels are
    timed as they run in lanes, not on a machine otherwise idle."""
    stop = threading.Event()

    def multiply():
        torch.set_num_threads(1)
        a, b, c = torch.randn(512, 512), torch.randn(512, 512), torch.empty(512, 512)
        while not stop.is_set():
            torch.mm(a, b, out=c)

    helpers = [threading.Thread(target=multiply, daemon=True) for _ in range(threads)]
    for t in helpers:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in helpers:
            t.join()


def step_floor(trainer, lr, warmup=10, repeats=60) -> dict:
    """A step's floor on this machine, in seconds: its matrix products, gradient masks and
    optimiser update (TrainStep.kernels) each timed alone, its operands hot in cache, and summed;
    all else the step does (the batch, activations, loss) counted as free. No schedule of these
    kernels takes less: the engine's time above it is its own overhead and the cost of running
    them together, their operands no longer in cache. Also `alone`: every kernel of the step so
    timed, the other work included: what the step would take if each kernel ran as fast in it as
    it does alone.

    Timed twice, and the lower kept: the whole group as one program on all threads, and the
    programs the lanes run (engine/lanes.py: on one thread each, e.g. one-replicate pieces for one
    seed's three branches on two lanes) with the other cores kept busy meanwhile, each lane's
    pieces weighted by their share of the steps, the slowest lane's sum. Also: the products'
    GFLOP/s at their shapes, over the group. A CPU measure: on a GPU the step is one graph replay."""
    if trainer.device.type != "cpu":
        raise ValueError(f"step_floor times CPU kernels; this trainer is on {trainer.device}")
    one_program = _kernel_times(trainer.program(), lr, warmup, repeats)
    timings = {1: one_program[0]}  # lanes → each kind's seconds a step
    plan, programs = trainer.lane_programs()
    if len(plan) > 1:
        torch.set_num_threads(1)
        try:
            with _other_cores_busy(len(plan) - 1):
                per_program = {key: _kernel_times(p, lr, warmup, repeats)[0] for key, p in programs.items()}
        finally:
            torch.set_num_threads(THREADS)
        lanes = [{k: sum(float(p.end - p.begin) * per_program[(p.first, p.last)][k] for p in pieces)
                  for k in ("products", "masks", "optimizer", "other")} for pieces in plan]
        timings[len(plan)] = max(lanes, key=lambda parts: parts["products"] + parts["masks"] + parts["optimizer"])
    floors = {lanes: parts["products"] + parts["masks"] + parts["optimizer"] for lanes, parts in timings.items()}
    lanes = min(floors, key=floors.get)
    parts = timings[lanes]
    return {"floor": floors[lanes], "alone": floors[lanes] + parts["other"], "lanes": lanes,
            **parts, "gflops": one_program[1] / parts["products"] / 1e9,
            "one_program": floors[1], "in_lanes": floors.get(len(plan)) if len(plan) > 1 else None}


def describe_floor(f: dict) -> str:
    how = "on all threads, one program" if f["lanes"] == 1 else f"the slowest of {f['lanes']} one-thread lanes"
    return (f"products {f['products'] * 1e3:.2f} ms ({f['gflops']:.0f} GFLOP/s at their shapes), masks "
            f"{f['masks'] * 1e3:.2f} ms, optimiser {f['optimizer'] * 1e3:.2f} ms a step ({how}); "
            f"the rest of its kernels {f['other'] * 1e3:.2f} ms")


def tiny_eval(data):
    """The same training data with 10-example evaluation sets: benchmarks time training, not eval."""
    return data.__class__(data.name, data.train_x, data.train_y, data.val_x[:10], data.val_y[:10],
                          data.test_x[:10], data.test_y[:10], data.num_classes)


def naive_train(data, model_name, steps, mask_density=1.0, seed=0, batch_size=60, lr=1.2e-3):
    """The loop most users write: DataLoader over a TensorDataset, an nn.Module, masks via
    torch.nn.utils.prune, one model at a time, torch.optim.Adam with its defaults; on a GPU, the
    model on it and each batch moved to it as it comes."""
    from torch.nn.utils import prune as tprune
    from torch.utils.data import DataLoader, TensorDataset

    model = build(model_name, data.input_shape, data.num_classes, seed).to(DEVICE)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for i, m in enumerate(linears):
        if mask_density < 1.0:
            tprune.l1_unstructured(m, "weight", amount=1 - mask_density if i < len(linears) - 1 else (1 - mask_density) / 2)
        else:
            tprune.identity(m, "weight")
    loader = DataLoader(TensorDataset(data.train_x, data.train_y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    synchronize()
    done, t = 0, time.perf_counter()
    while done < steps:
        for x, y in loader:
            x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            done += 1
            if done == steps:
                break
    synchronize()
    return time.perf_counter() - t


def lenet_flops_per_epoch(n_train=55_000) -> float:
    params = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    return 6 * params * n_train


def alternate(rounds: int, first, second) -> tuple[float, float, list[float]]:
    """Time two contenders in turn, `rounds` times: the best of each and each round's ratio
    first / second. A round's two timings sit next to each other in time, so their ratio cancels
    the machine's slow drift; the spread of those ratios says how far one run can be trusted."""
    a, b, ratios = [], [], []
    for _ in range(rounds):
        a.append(first())
        b.append(second())
        ratios.append(a[-1] / b[-1])
    return min(a), min(b), ratios


def spread(ratios: list[float]) -> str:
    r = sorted(ratios)
    return f"per-round ratios: median {statistics.median(r):.2f}, range {r[0]:.2f}-{r[-1]:.2f} ({len(r)} rounds)"


def result(**kv) -> None:
    print("RESULT " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in kv.items()))
