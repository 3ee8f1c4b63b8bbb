"""The training loop, for a *group* of replicates of one architecture trained as one program.

A group is laid out [S, R]: S data streams (one per experiment seed) × R replicates sharing
each stream (the branches of that seed: ticket and controls see the same batches, a paired
design). Parameters, masks and optimiser state are stacked along those two dimensions and the
forward/backward pass is one program over the stack (`lottery.stacked`). One replicate alone
is simply S = R = 1.

Why this is exact per replicate: the loss is the sum of each replicate's mean loss, so each
replicate's gradient is its own; Adam and SGD (momentum, Nesterov, coupled weight decay) are
elementwise, so a stacked optimiser is the per-replicate optimisers side by side.

On a CPU with several threads, the group can instead train as lanes (`lottery.lanes`): a
single-threaded lane per thread, each running programs over an equal share of the seeds (or of
the one seed's replicates), side by side, meeting only at evaluations, snapshots and checkpoints.

Why pruned weights stay exactly 0.0: the optimiser state starts fresh at every level, and weight
decay of a zero weight is zero. With Adam, their second moments are +inf (`Optimizer.hold`), so
Adam's step there is m / ∞ = 0 whatever their gradients; with SGD, their gradients are zeroed
before every step, so momentum stays 0 there. Nothing can move them (tests check it bit for bit).
"""

import json
import math
import threading
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from lottery import graphs as cuda_graphs
from lottery import scripted
from lottery.config import TrainConfig, to_steps
from lottery.data import Dataset
from lottery.lanes import Piece, lane_count, run_lanes, schedule
from lottery.optim import Optimizer
from lottery.seeds import derive
from lottery.stacked import log_softmax_classes, make_stack
from lottery.step import TrainStep

# steps a program takes per call between its looks at the stop signal and the progress bar: a
# compiled step takes them in one call, with no Python between them (lottery.scripted)
STEPS_PER_CALL = 32

# Examples per evaluation chunk. On CPU, 1,000 keeps the activations of 9 LeNets in cache:
# evaluation ran at 162 GFLOP/s against 133 with 10,000 (measured). GPUs want large chunks.
EVAL_CHUNK = {"cpu": 1_000}
EVAL_CHUNK_DEFAULT = 10_000


@dataclass
class Replicate:
    """One training unit's inputs: starting state (parameters, already masked, and buffers),
    its mask, its data seed, and the seed of its own randomness in training (dropout)."""

    init: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    data_seed: int
    noise_seed: int | None = None  # None: derived from data_seed and the replicate's place in its stream


@dataclass
class ReplicateResult:
    final: dict[str, torch.Tensor]
    snapshots: dict[int, dict[str, torch.Tensor]]  # step → weights (e.g. the rewind point)
    history: list[dict]  # one row per evaluation: step, train_loss, val_loss, val_acc
    early_stop_step: int
    val_acc_end: float
    test_acc_end: float
    test_acc_early_stop: float
    train_seconds: float  # the group's wall time divided by its size
    steps: int
    extra: dict = field(default_factory=dict)


class DataOrder:
    """Which training examples each data stream sees at each step.

    The examples form an endless stream of epochs, each a fresh permutation drawn from
    (data_seed, epoch) alone, so any step's batch is known without replaying the ones before
    (resuming needs no RNG state) and each seed's order is reproducible from its seed.
    """

    def __init__(self, n: int, batch_size: int, data_seeds: list[int]):
        self.n, self.batch_size, self.data_seeds = n, batch_size, list(data_seeds)
        self._cache: dict[int, torch.Tensor] = {}
        self.device = torch.device("cpu")

    def permutation(self, epoch: int) -> torch.Tensor:  # [S, n]
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = torch.stack([  # drawn on the CPU: the same order on every device
                torch.randperm(self.n, generator=torch.Generator().manual_seed(derive(s, "epoch", epoch)))
                for s in self.data_seeds]).to(self.device)
        return self._cache[epoch]

    def to(self, device) -> "DataOrder":
        self.device = torch.device(device)
        return self

    def indices(self, step: int) -> torch.Tensor:  # [S, batch_size]
        return self.span(step, step + 1)[0]

    def span(self, first_step: int, end_step: int) -> torch.Tensor:  # [end_step - first_step, S, batch_size]
        """The batches of steps first_step … end_step − 1, step after step."""
        start, stop = first_step * self.batch_size, end_step * self.batch_size
        first, last = start // self.n, max(start, stop - 1) // self.n  # no steps: an empty view
        if first == last:  # within one epoch: a view, no copy (a step's batch, mostly)
            flat = self.permutation(first)[:, start - first * self.n: stop - first * self.n]
        else:
            flat = torch.cat([self.permutation(e)[:, max(start - e * self.n, 0): min(stop - e * self.n, self.n)]
                              for e in range(first, last + 1)], dim=1)
        return flat.view(len(self.data_seeds), end_step - first_step, self.batch_size).transpose(0, 1)


def learning_rate(cfg: TrainConfig, step: int, total: int, steps_per_epoch: float) -> float:
    """The schedule as a pure function of the step (so resuming needs no scheduler state)."""
    warmup = to_steps(cfg.warmup, steps_per_epoch)
    if warmup and step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "step":
        passed = sum(step >= to_steps(m, steps_per_epoch) for m in cfg.milestones)
        return cfg.lr * cfg.gamma ** passed
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr


class GroupTrainer:
    """Trains an [S, R] group of replicates; see the module docstring."""

    def __init__(self, template: nn.Module, replicates: list[Replicate], data: Dataset, cfg: TrainConfig,
                 *, snapshot_steps: tuple[int, ...] = (), checkpoint=None, checkpoint_every: int = 1000,
                 progress=None, engine: str = "auto", lr_mode: str = "schedule", on_eval=None,
                 start_step: int = 0, device="cpu", graphs: bool = True, script: bool = True,
                 lanes: int | None = None):
        self.device = torch.device(device)
        self.template, self.lanes_requested = template, lanes  # lanes: None = automatic (lottery.lanes)
        self.graphs = graphs  # on CUDA, replay the MLP engine's step as a CUDA graph (lottery.graphs)
        self.script = script  # on the CPU, compile the MLP engine's step to TorchScript (lottery.scripted)
        self.graphed = None  # the GraphedStep of the last run(), if it used one
        self.data, self.cfg = (data if data.train_x.device == self.device else data.to(self.device)), cfg
        self.on_eval = on_eval  # (step, params) → True to stop training there (early-bird search)
        self.checkpoint, self.checkpoint_every, self.progress = checkpoint, checkpoint_every, progress
        self.S, self.R, self.order = _layout(replicates)
        self.K = self.S * self.R
        ordered = [replicates[i] for i in self.order]
        # the state: parameters (trained) and buffers (e.g. BatchNorm statistics), all stacked [S, R, ...]
        self.names = list(ordered[0].init)
        trainable = {n for n, _ in template.named_parameters()}
        self.param_names = [n for n in self.names if n in trainable]
        self.params = {n: torch.stack([r.init[n] for r in ordered]).reshape(self.S, self.R, *ordered[0].init[n].shape)
                       .to(self.device).requires_grad_(n in trainable) for n in self.names}
        self.masks = {n: torch.stack([r.mask[n] for r in ordered]).reshape(self.S, self.R, *ordered[0].mask[n].shape)
                      .to(self.device, self.params[n].dtype) for n in ordered[0].mask}
        spe = len(data.train_x) / cfg.batch_size
        self.steps_per_epoch = spe
        self.total = to_steps(cfg.length, spe)
        every = to_steps(cfg.eval_every, spe)
        # Training resumes the step count at `start_step` (a rewound network continues from step k:
        # the same learning rates and batches as the dense run from there on, T − k steps).
        self.start_step = min(start_step, self.total)
        self.eval_steps = sorted(set(range(self.start_step, self.total, max(1, every))) | {self.total})
        self.snapshot_steps = sorted(set(s for s in snapshot_steps if 0 <= s <= self.total))
        self.data_order = DataOrder(len(data.train_x), cfg.batch_size,
                                    [ordered[s * self.R].data_seed for s in range(self.S)]).to(self.device)
        self.optimizer = Optimizer(cfg, [self.params[n] for n in self.param_names])
        self.held = self._hold()  # pruned entries held by the optimiser: their gradients need no mask
        self.lrs = [learning_rate(cfg, t, self.total, spe) for t in range(self.total)]
        if lr_mode == "final":  # fine-tuning: the schedule's last rate throughout
            self.lrs = [self.lrs[-1]] * self.total

        self.train_loss_sum = torch.zeros(self.S, self.R, dtype=torch.float64, device=self.device)
        noise_seeds = [r.noise_seed if r.noise_seed is not None else derive(r.data_seed, "noise", k % self.R)
                       for k, r in enumerate(ordered)]
        self.stack = make_stack(template, self.S, self.R, engine, example=(self.data.train_x[:2], self.data.train_y[:2]),
                                noise_seeds=noise_seeds, device=self.device)

    # --- pieces ----------------------------------------------------------------------------
    def _evaluate(self, params, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss and accuracy of every replicate on (x, y): two [S, R] tensors."""
        loss = torch.zeros(self.S, self.R, dtype=torch.float64, device=self.device)
        correct = torch.zeros(self.S, self.R, dtype=torch.float64, device=self.device)
        with torch.inference_mode():
            chunk = EVAL_CHUNK.get(self.device.type, EVAL_CHUNK_DEFAULT)
            for i in range(0, len(x), chunk):
                xb, yb = x[i:i + chunk], y[i:i + chunk]
                logits = self.stack.logits(params, xb)  # [S, R, B, C]
                logp = log_softmax_classes(logits)
                loss -= logp.gather(-1, yb.expand(self.S, self.R, len(yb)).unsqueeze(-1)).double().sum((-2, -1))
                correct += (logits.argmax(-1) == yb).double().sum(-1)
        return (loss / len(x)).cpu(), (correct / len(x)).cpu()

    def _snapshot(self, device=None) -> dict[str, torch.Tensor]:
        """A copy of the stacked state, on the training device unless `device` says otherwise."""
        return {n: p.detach().to(device or self.device, copy=True) for n, p in self.params.items()}

    # --- checkpointing ---------------------------------------------------------------------
    def _save(self):
        tensors = {f"param.{n}": p.detach() for n, p in self.params.items()}
        tensors.update({f"best.{n}": t for n, t in self.best.items()})
        tensors["best_loss"], tensors["best_step"] = self.best_loss, self.best_step
        tensors["train_loss_sum"] = self.train_loss_sum
        for step, snap in self.snapshots.items():
            tensors.update({f"snap.{step}.{n}": t for n, t in snap.items()})
        tensors.update({f"opt.{k}": v for k, v in self.optimizer.state_tensors().items()})
        tensors = {k: v.detach().cpu() for k, v in tensors.items()}
        meta = {"step": self.step, "last_eval": self.last_eval, "history": self.history,
                "snapshot_steps": list(self.snapshots)}
        self.checkpoint.save(tensors, json.dumps(meta))

    def _restore(self) -> bool:
        loaded = self.checkpoint.load() if self.checkpoint else None
        if loaded is None:
            return False
        tensors, meta = loaded
        meta = json.loads(meta)
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[f"param.{n}"])
        self.best = {n: tensors[f"best.{n}"].to(self.device) for n in self.names}
        self.best_loss, self.best_step = tensors["best_loss"], tensors["best_step"]
        self.train_loss_sum.copy_(tensors["train_loss_sum"])  # the one tensor the programs slice
        self.snapshots = {int(s): {n: tensors[f"snap.{s}.{n}"] for n in self.names} for s in meta["snapshot_steps"]}
        self.optimizer.load_state_tensors({k[4:]: t.to(self.device) for k, t in tensors.items() if k.startswith("opt.")})
        self._hold()  # a checkpoint's state may not hold them (one from an older version)
        self.step, self.last_eval, self.history = meta["step"], meta["last_eval"], meta["history"]
        return True

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> list[ReplicateResult]:
        self.step, self.last_eval, self.history = self.start_step, self.start_step, []
        self.best_loss = torch.full((self.S, self.R), math.inf, dtype=torch.float64)
        self.best_step = torch.zeros(self.S, self.R, dtype=torch.int64)
        self.best = self._snapshot()
        self.snapshots = {}
        self.train_loss_sum.zero_()
        resumed = self._restore()
        self.resumed_from_step = self.step
        lanes = self._programs()
        started = time.perf_counter()
        if not resumed:
            self._maybe_snapshot()
        while True:
            if self.step in self.eval_steps and (not self.history or self.history[-1]["step"] != self.step):
                self._eval_point(self.step - self.last_eval)
                self.last_eval = self.step
                if self.on_eval is not None and self.on_eval(self.step, self.params):
                    break
            if self.step >= self.total:
                break
            self._train_span(lanes, self._next_stop())
            self._maybe_snapshot()
            if self.checkpoint and self.step % self.checkpoint_every == 0 and self.step < self.total:
                self._save()
        if self.checkpoint:
            self._save()  # the finished state: a crash while writing results costs no retraining
        self.scripted = all(p.scripted is not None for p in lanes["programs"].values())
        seconds = time.perf_counter() - started
        return self._results(seconds)

    def _next_stop(self) -> int:
        """The next step at which the whole group must be at rest: an evaluation, a snapshot, a
        checkpoint or the end. Between two, lanes run without meeting."""
        stop = min([s for s in (*self.eval_steps, *self.snapshot_steps) if s > self.step] + [self.total])
        if self.checkpoint:
            stop = min(stop, (self.step // self.checkpoint_every + 1) * self.checkpoint_every)
        return stop

    def _train_span(self, lanes: dict, end: int) -> None:
        """Steps self.step … end − 1 of every unit, then self.step = end. With several lanes, each
        runs its pieces (lottery.lanes.schedule) in a thread of its own."""
        start, span = self.step, end - self.step
        plan, programs = lanes["plan"], lanes["programs"]
        first_parts_done = {(p.first, p.last): threading.Event() for pieces in plan for p in pieces if p.end < 1}

        def work(pieces, report):
            # one boundary per cut unit, computed the same way for both of its parts
            bounds = [(start + round(p.begin * span), start + round(p.end * span)) for p in pieces]
            total = max(1, sum(b - a for a, b in bounds))

            def run(stop=None):
                done = 0
                for p, (a, b) in zip(pieces, bounds):
                    if p.begin > 0:  # the rest of a unit another lane began: wait until it has
                        while not first_parts_done[(p.first, p.last)].wait(0.01):
                            if stop is not None and stop.is_set():
                                return
                    program = programs[(p.first, p.last)]
                    for t in range(a, b, STEPS_PER_CALL):
                        if stop is not None and stop.is_set():
                            return
                        end = min(b, t + STEPS_PER_CALL)
                        program.steps(t, end, self.lrs)
                        done += end - t
                        if report and self.progress:
                            self.progress(start + done * span // total, self.total)
                    if p.end < 1:
                        first_parts_done[(p.first, p.last)].set()
            return run

        if len(plan) == 1:
            work(plan[0], True)()
        else:
            run_lanes([work(pieces, i == 0) for i, pieces in enumerate(plan)])
            self.optimizer.catch_up(next(iter(programs.values())).optimizer)
        self.step = end

    def _lanes(self) -> tuple[int, int]:
        """(lanes, the stacked dimension they split): seeds when there are several, else the
        replicates of the one seed. The MLP engine on the CPU with a fused optimiser only (the
        other engines draw random numbers from torch's global generator, which threads share)."""
        dim = 0 if self.S > 1 else 1
        if self.device.type != "cpu" or self.stack.name != "mlp" or self.optimizer.fallback is not None:
            return 1, dim
        return lane_count((self.S, self.R)[dim], torch.get_num_threads(), self.lanes_requested), dim

    def _programs(self) -> dict:
        """The lanes' plan (lottery.lanes.schedule) and a program for each of its pieces' units,
        keyed (first, last): one program over the whole group when there is one lane. Built after a
        restore, so the optimiser parts start from the restored state."""
        masked = self._masked()
        self.lanes, dim = self._lanes()
        units = (self.S, self.R)[dim]
        if self.lanes == 1:
            program = self._program(slice(None), self.params, self.stack, self.optimizer, self.data_order, masked)
            if cuda_graphs.applies(self.graphs, self.device, self.stack.name) and self.optimizer.fallback is None:
                program.graph(self.data_order.indices(self.start_step))  # an example batch: its shape
                self.graphed = program.graphed
            return {"plan": [[Piece(0, units)]], "programs": {(0, units): program}}
        plan = schedule(units, self.lanes)
        programs, seeds = {}, self.data_order.data_seeds
        for first, last in sorted({(p.first, p.last) for pieces in plan for p in pieces}):
            sl = slice(first, last)
            index = sl if dim == 0 else (slice(None), sl)  # [S, R, ...] → these units' [S', R', ...]
            optimizer = self.optimizer.part(index)
            params = dict(zip(self.param_names, optimizer.params))
            params.update({n: t.detach()[index] for n, t in self.params.items() if n not in params})  # buffers
            S, R = next(iter(params.values())).shape[:2]
            stack = make_stack(self.template, S, R, "mlp")
            order = DataOrder(self.data_order.n, self.cfg.batch_size, seeds[sl] if dim == 0 else seeds).to(self.device)
            programs[(first, last)] = self._program(index, params, stack, optimizer, order, masked)
        return {"plan": plan, "programs": programs}

    def _hold(self) -> bool:
        return self.optimizer.hold([self.masks.get(n) for n in self.param_names])

    def _masked(self) -> list[str]:
        """The parameters whose gradients need masking: none the optimiser holds (`Optimizer.hold`);
        all-ones masks (dense) are skipped, 0.1–0.3 ms a step."""
        held = set(self.param_names) if self.held else set()
        return [n for n in self.masks if n not in held and not bool(self.masks[n].all())]

    def program(self) -> TrainStep:
        """The whole group as one program on all threads (what `run` steps when there is one lane),
        over this trainer's state: for timing a step's kernels (TrainStep.kernels, benchmarks/)."""
        return self._program(slice(None), self.params, self.stack, self.optimizer, self.data_order, self._masked())

    def lane_programs(self) -> tuple[list[list[Piece]], dict[tuple[int, int], TrainStep]]:
        """The lanes' plan (lottery.lanes.schedule) and the program each piece runs, keyed (first,
        last), as `run` builds them on this many threads over this trainer's state: for timing what
        the lanes run (benchmarks/common.step_floor). One lane: the whole group's one program."""
        lanes = self._programs()
        return lanes["plan"], lanes["programs"]

    def _program(self, index, params, stack, optimizer, data_order, masked: list[str]) -> TrainStep:
        script = scripted.applies(self.script, self.device, stack.name) and optimizer.fallback is None
        return TrainStep(self.data, params, stack, optimizer, data_order,
                         {n: self.masks[n][index] for n in masked}, self.train_loss_sum[index], script=script)

    def _maybe_snapshot(self):
        if self.step in self.snapshot_steps and self.step not in self.snapshots:
            self.snapshots[self.step] = self._snapshot("cpu")

    def _eval_point(self, steps_since: int):
        with torch.no_grad():
            val_loss, val_acc = self._evaluate(self.params, self.data.val_x, self.data.val_y)
            improved = val_loss < self.best_loss
            self.best_loss = torch.where(improved, val_loss, self.best_loss)
            self.best_step = torch.where(improved, torch.tensor(self.step), self.best_step)
            for n in self.names:
                sel = improved.to(self.device).view(self.S, self.R, *[1] * (self.best[n].dim() - 2))
                self.best[n] = torch.where(sel, self.params[n].detach(), self.best[n])
        train_loss = (self.train_loss_sum.cpu() / steps_since) if steps_since else torch.full_like(val_loss, math.nan)
        self.train_loss_sum.zero_()
        self.history.append({"step": self.step, "lr": self.lrs[min(self.step, self.total - 1)],
                             "train_loss": train_loss.flatten().tolist(),
                             "val_loss": val_loss.flatten().tolist(), "val_acc": val_acc.flatten().tolist()})

    def _results(self, seconds: float) -> list[ReplicateResult]:
        d = self.data
        with torch.no_grad():
            _, test_end = self._evaluate(self.params, d.test_x, d.test_y)
            _, test_best = self._evaluate(self.best, d.test_x, d.test_y)
        out = [None] * self.K
        for k in range(self.K):
            s, r = divmod(k, self.R)
            out[self.order[k]] = ReplicateResult(
                final={n: p[s, r].detach().to("cpu", copy=True) for n, p in self.params.items()},
                snapshots={st: {n: t[s, r].clone() for n, t in snap.items()} for st, snap in self.snapshots.items()},
                history=[{"step": h["step"], "lr": h["lr"], "train_loss": h["train_loss"][k], "val_loss": h["val_loss"][k],
                          "val_acc": h["val_acc"][k]} for h in self.history],
                early_stop_step=int(self.best_step[s, r]),
                val_acc_end=self.history[-1]["val_acc"][k],
                test_acc_end=float(test_end[s, r]), test_acc_early_stop=float(test_best[s, r]),
                train_seconds=seconds / self.K, steps=self.step - self.start_step,
                extra={"group_size": self.K, "resumed_from_step": self.resumed_from_step, "lanes": self.lanes,
                       "scripted": self.scripted})
        return out


def _layout(replicates: list[Replicate]) -> tuple[int, int, list[int]]:
    """Arrange replicates as [S, R] by data seed; uneven groups fall back to one stream each."""
    by_seed: dict[int, list[int]] = {}
    for i, r in enumerate(replicates):
        by_seed.setdefault(r.data_seed, []).append(i)
    sizes = {len(v) for v in by_seed.values()}
    if len(sizes) == 1:
        return len(by_seed), sizes.pop(), [i for v in by_seed.values() for i in v]
    return len(replicates), 1, list(range(len(replicates)))


def train(template: nn.Module, replicates: list[Replicate], data: Dataset, cfg: TrainConfig, **kwargs) -> list[ReplicateResult]:
    """Train `replicates` of `template`'s architecture together; results in the input order."""
    return GroupTrainer(template, replicates, data, cfg, **kwargs).run()
