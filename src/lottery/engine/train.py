"""The training loop for a group of replicates trained as one program (lottery.engine.Group).

The group's state is stacked [S, R, ...] (engine/state.py) and the forward/backward pass is one
program over the stack (engine/stacked/). Why this is exact per replicate: the loss is the sum of
each replicate's mean loss, so each replicate's gradient is its own; Adam and SGD (momentum,
Nesterov, coupled weight decay) are elementwise, so a stacked optimiser is the per-replicate
optimisers side by side. What the loop does, step for step, is what the plain reference loop
(engine/reference.py) does for one replicate; tests hold the two together.

On a CPU with several threads the group can train as lanes (engine/lanes.py); pruned weights
stay exactly 0.0 (engine/masking.py).
"""

import time

import torch

from lottery.data import augment as augmentations
from lottery.engine import checkpoint as checkpoints
from lottery.engine import masking
from lottery.engine.evaluate import Best, evaluate
from lottery.engine.group import Group, ReplicateResult
from lottery.engine.lanes import Piece, lane_count, one_thread, run_span, schedule
from lottery.engine.optim import Optimizer
from lottery.engine.options import Plan
from lottery.engine.schedule import DataOrder, Schedule
from lottery.engine.stacked import STACKS, make_stack
from lottery.engine.state import Stacked
from lottery.engine.step import TrainStep

# steps a program takes per call between its looks at the stop signal and the progress bar: a
# compiled step takes them in one call, with no Python between them (engine/scripted.py)
STEPS_PER_CALL = 32


class Trainer:
    """Trains a group under a plan. `checkpoint` (save(tensors, meta) / load()) makes it resumable;
    `progress(step, total, metrics=None)` hears about its steps (with the group's mean losses and
    accuracy after each evaluation); `observer(step, params) → stop?` sees every
    evaluation and may end training there, its `state()` kept in checkpoints."""

    def __init__(self, group: Group, plan: Plan, *, checkpoint=None, progress=None, observer=None):
        self.plan, self.device, self.cfg = plan, plan.device, group.train
        self.template = group.template
        self.data = group.data if group.data.train_x.device == self.device else group.data.to(self.device)
        self.checkpoint, self.progress, self.observer = checkpoint, progress, observer
        self.state = Stacked(group.template, group.replicates, self.device)
        self.S, self.R, self.K = self.state.S, self.state.R, self.state.K
        self.params, self.masks = self.state.params, self.state.masks
        self.schedule = Schedule(self.cfg, len(self.data.train_x), group.start_step, group.snapshot_steps,
                                 group.lr_mode)
        self.total = self.schedule.total
        self.data_order = DataOrder(len(self.data.train_x), self.cfg.batch_size, self.state.data_seeds).to(self.device)
        self.optimizer = Optimizer(self.cfg, [self.params[n] for n in self.state.param_names])
        self.held = masking.hold(self.optimizer, self.state.param_names, self.masks)
        self.train_loss_sum = torch.zeros(self.S, self.R, dtype=torch.float64, device=self.device)
        self.stack = make_stack(self.template, self.S, self.R, plan.stack, noise_seeds=self.state.noise_seeds,
                                device=self.device)
        self.graphed = None  # the GraphedStep of the last run(), if it used one
        self.threads = torch.get_num_threads()  # what lanes share (run() looks again)
        # drawn per step in Python: such a step is neither compiled nor replayed as a graph
        self.augment = augmentations.make(group.augment, tuple(self.data.train_x.shape[1:]))

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> list[ReplicateResult]:
        """Train to the end (or to where the observer stops it) and return each replicate's result.
        Units that compute on one thread (`Plan.one_thread`) do so here too: evaluations included."""
        self.threads = torch.get_num_threads()
        with one_thread(self.plan.one_thread):
            return self._run()

    def _run(self) -> list[ReplicateResult]:
        start = self.schedule.start
        self.step, self.last_eval, self.history, self.snapshots = start, start, [], {}
        self.best = Best(self.state.copy(), self.S, self.R)
        self.diverged = torch.full((self.S, self.R), -1, dtype=torch.int64)  # first evaluation with a non-finite loss
        self.train_loss_sum.zero_()
        resumed = self._restore()
        self.resumed_from_step = self.step
        plan, programs = self._programs()
        started = time.perf_counter()
        if not resumed:
            self._maybe_snapshot()
        every = self.plan.checkpoint_every if self.checkpoint else None
        while True:
            if self.step in self.schedule.eval_steps and (not self.history or self.history[-1]["step"] != self.step):
                self._evaluation()
                if self.progress:
                    self.progress(self.step, self.total, self._latest())
                if self.observer is not None and self.observer(self.step, self.params):
                    break
            if self.step >= self.total:
                break
            end = self.schedule.next_stop(self.step, every)
            run_span(plan, programs, self.step, end, self.schedule.lrs, STEPS_PER_CALL, self.progress, self.total)
            if len(plan) > 1:
                self.optimizer.catch_up(next(iter(programs.values())).optimizer)
            self.step = end
            self._maybe_snapshot()
            if every and self.step % every == 0 and self.step < self.total:
                self.checkpoint.save(*checkpoints.pack(self))
        if self.checkpoint:
            self.checkpoint.save(*checkpoints.pack(self))  # the finished state: a crash while writing results costs no retraining
        # provenance: whether this sitting's steps ran compiled (None: it took none, resumed at the end)
        scripted = all(p.scripted is not None for p in programs.values()) if self.step > self.resumed_from_step else None
        return self._results(time.perf_counter() - started, scripted)

    def _restore(self) -> bool:
        loaded = self.checkpoint.load() if self.checkpoint else None
        if loaded is None:
            return False
        checkpoints.unpack(self, *loaded)
        self.held = masking.hold(self.optimizer, self.state.param_names, self.masks)
        return True

    def _maybe_snapshot(self) -> None:
        if self.step in self.schedule.snapshot_steps and self.step not in self.snapshots:
            self.snapshots[self.step] = self.state.copy("cpu")

    def _evaluation(self) -> None:
        steps_since = self.step - self.last_eval
        with torch.no_grad():
            val_loss, val_acc = evaluate(self.stack, self.params, self.data.val_x, self.data.val_y)
            self.best.update(self.step, val_loss, self.params)
        train_loss = (self.train_loss_sum.cpu() / steps_since) if steps_since else torch.full_like(val_loss, torch.nan)
        self.train_loss_sum.zero_()
        finite = torch.isfinite(val_loss) & (torch.isfinite(train_loss) if steps_since else True)
        self.diverged = torch.where(~finite & (self.diverged < 0), torch.tensor(self.step), self.diverged)
        self.history.append({"step": self.step, "lr": self.schedule.lr_at(self.step),
                             "train_loss": train_loss.flatten().tolist(),
                             "val_loss": val_loss.flatten().tolist(), "val_acc": val_acc.flatten().tolist()})
        self.last_eval = self.step

    def _latest(self) -> dict:
        """The last evaluation, averaged over the group (what progress displays show)."""
        row = self.history[-1]
        return {k: sum(row[k]) / len(row[k]) for k in ("train_loss", "val_loss", "val_acc")}

    def _results(self, seconds: float, scripted: bool) -> list[ReplicateResult]:
        d = self.data
        with torch.no_grad():
            _, test_end = evaluate(self.stack, self.params, d.test_x, d.test_y)
            _, test_best = evaluate(self.stack, self.best.weights, d.test_x, d.test_y)
        out = [None] * self.K
        for k in range(self.K):
            s, r = self.state.unstacked(k)
            out[self.state.order[k]] = ReplicateResult(
                final={n: p[s, r].detach().to("cpu", copy=True) for n, p in self.params.items()},
                snapshots={st: {n: t[s, r].clone() for n, t in snap.items()} for st, snap in self.snapshots.items()},
                history=[{"step": h["step"], "lr": h["lr"], "train_loss": h["train_loss"][k], "val_loss": h["val_loss"][k],
                          "val_acc": h["val_acc"][k]} for h in self.history],
                early_stop_step=int(self.best.step[s, r]),
                val_acc_end=self.history[-1]["val_acc"][k],
                test_acc_end=float(test_end[s, r]), test_acc_early_stop=float(test_best[s, r]),
                train_seconds=seconds / self.K, steps=self.step - self.schedule.start,
                extra={"group_size": self.K, "resumed_from_step": self.resumed_from_step, "lanes": self.lanes,
                       "scripted": scripted, "diverged_step": int(self.diverged[s, r]) if self.diverged[s, r] >= 0 else None})
        return out

    # --- programs: what the loop steps -------------------------------------------------------
    def _lane_count(self) -> tuple[int, int]:
        """(lanes, the stacked dimension they split): seeds when there are several, else the
        replicates of the one seed. On the CPU, for stacks that may run in lanes, with a fused
        optimiser (torch.optim's fallback cannot be split into parts)."""
        dim = 0 if self.S > 1 else 1
        if self.device.type != "cpu" or not STACKS[self.plan.stack].lanes or self.optimizer.fallback is not None:
            return 1, dim
        return lane_count((self.S, self.R)[dim], self.threads, self.plan.lanes, self.plan.one_thread), dim

    def _programs(self) -> tuple[list[list[Piece]], dict[tuple[int, int], TrainStep]]:
        """The lanes' plan (engine/lanes.py: each lane's pieces) and a program for each piece's
        units, keyed (first, last): one program over the whole group when there is one lane.
        Built after a restore, so the optimiser parts start from the restored state."""
        self.lanes, dim = self._lane_count()
        units = (self.S, self.R)[dim]
        if self.lanes == 1:
            program = self.program()
            if self.plan.cuda_graphs and self.optimizer.fallback is None and self.augment is None:
                program.graph(self.data_order.indices(self.schedule.start))  # an example batch: its shape
                self.graphed = program.graphed
            return [[Piece(0, units)]], {(0, units): program}
        plan = schedule(units, self.lanes)
        programs, seeds = {}, self.data_order.data_seeds
        for first, last in sorted({(p.first, p.last) for pieces in plan for p in pieces}):
            sl = slice(first, last)
            index = sl if dim == 0 else (slice(None), sl)  # [S, R, ...] → these units' [S', R', ...]
            optimizer = self.optimizer.part(index)
            params = dict(zip(self.state.param_names, optimizer.params))
            params.update({n: t.detach()[index] for n, t in self.params.items() if n not in params})  # buffers
            S, R = next(iter(params.values())).shape[:2]
            stack = make_stack(self.template, S, R, self.plan.stack)
            order = DataOrder(self.data_order.n, self.cfg.batch_size, seeds[sl] if dim == 0 else seeds).to(self.device)
            programs[(first, last)] = self._program(index, params, stack, optimizer, order)
        return plan, programs

    def _program(self, index, params, stack, optimizer, data_order) -> TrainStep:
        in_stack, after = masking.gradient_masks(self.masks, self.held, stack)
        in_stack, after = ({n: m[index] for n, m in masks.items()} for masks in (in_stack, after))
        return TrainStep(self.data, params, stack, optimizer, data_order, in_stack, after, self.train_loss_sum[index],
                         script=self.plan.script and optimizer.fallback is None and self.augment is None,
                         augment=self.augment)

    def program(self) -> TrainStep:
        """The whole group as one program on all threads (what `run` steps when there is one lane),
        over this trainer's state: for timing a step's kernels (TrainStep.kernels, benchmarks/)."""
        return self._program(slice(None), self.params, self.stack, self.optimizer, self.data_order)

    def lane_programs(self) -> tuple[list[list[Piece]], dict[tuple[int, int], TrainStep]]:
        """The lanes' plan and the program each piece runs, keyed (first, last), as `run` builds
        them on this many threads over this trainer's state: for timing what the lanes run
        (benchmarks/common.step_floor). One lane: the whole group's one program."""
        return self._programs()
