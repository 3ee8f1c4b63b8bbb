"""The IMP driver: levels of train → prune → rewind, with branches at every level.

Level 0 trains the dense network of each seed (saving its weights at `rewind_step`). Level L
prunes the IMP ticket of level L-1 by magnitude, rewinds the survivors to the step-k weights
and retrains. The other branches at level L (controls, ablations, cheaper methods; see
`lottery.imp.branches`) take their mask and starting weights from what the IMP run computed.

The driver decides what each unit starts from and records what it ends with; an executor
(lottery.execute) trains the units whose inputs are ready, through the engine. A seed's level L
is ready once its level L−1 ticket is done; the branches of a seed share its data order
(paired design).
"""

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lottery import engine, execute, models
from lottery.config import ExperimentConfig, to_steps
from lottery.data import DATASETS, Dataset, load_dataset
from lottery.data import augment as augmentations
from lottery.engine import Options as EngineOptions
from lottery.engine import Replicate, ReplicateResult
from lottery.errors import ConfigError
from lottery.execute import Job, Reporter
from lottery.imp.branches import BRANCHES, all_units
from lottery.imp.environment import environment
from lottery.imp.starts import Start
from lottery.pruning import (
    apply,
    density,
    fraction_remaining,
    magnitude,
    prunable_names,
)
from lottery.pruning import dense as dense_mask
from lottery.seeds import derive
from lottery.store import Checkpoint, RunStore, Unit, default_root

POLL_SECONDS = 0.5  # how often a run waiting for another process's units looks again


@dataclass(frozen=True)
class RunOptions:
    """How to execute (never what to compute: none of this enters the config hash)."""

    store: Path | None = None
    data_dir: str | None = None
    engine: EngineOptions = EngineOptions()
    executor: str = "local"  # local | ray
    vectorise: bool = True  # a level's units (the local executor), a seed's (Ray), as one program
    address: str | None = None  # ray: a cluster's head (None: a local Ray instance)
    cpus_per_task: int = 1  # ray: the CPUs (torch threads) each task asks for


def check_names(cfg: ExperimentConfig, custom_data: bool = False, custom_model: bool = False) -> None:
    """The config's names against the registries, before any work (the config checks values only)."""
    if not custom_data and cfg.data.dataset not in DATASETS:
        raise ConfigError(f"data.dataset={cfg.data.dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    if not custom_model and cfg.model.name not in models.MODELS:
        raise ConfigError(f"model.name={cfg.model.name!r} is unknown; choose one of {', '.join(models.MODELS)}")
    unknown = [b for b in cfg.branches if b not in BRANCHES]
    if unknown:
        raise ConfigError(f"branches {unknown} are unknown; choose from {', '.join(BRANCHES)} (see `lottery branches`)")


class Experiment:
    """One config's IMP run over a store; `run()` does whatever is not done yet."""

    def __init__(self, cfg: ExperimentConfig, options: RunOptions = RunOptions(), data: Dataset | None = None,
                 reporter: Reporter | None = None, model_factory=None, prunable: list[str] | None = None,
                 executor: execute.Executor | None = None):
        check_names(cfg, custom_data=data is not None, custom_model=model_factory is not None)
        engine.resolve_device(options.engine.device)  # before any work: a bad device fails at once
        if cfg.prune.scope == "nm" and cfg.levels >= cfg.prune.nm_group:
            raise ConfigError(f"N:M pruning with prune.nm_group={cfg.prune.nm_group} has {cfg.prune.nm_group - 1} levels "
                              f"({cfg.prune.nm_group - 1}:{cfg.prune.nm_group} down to 1:{cfg.prune.nm_group}); "
                              f"levels={cfg.levels} asks for more")
        self.cfg, self.options = cfg, options
        self.train_config, self.augment = cfg.train, cfg.data.augment
        self.reporter = reporter or Reporter()
        ray = {"address": options.address, "cpus": options.cpus_per_task} if options.executor == "ray" else {}
        self.executor = executor or execute.make(options.executor, vectorise=options.vectorise, **ray)
        self.data = data if data is not None else load_dataset(cfg.data, options.data_dir)
        self.build_model = model_factory or (lambda seed: models.build(
            cfg.model.name, self.data.input_shape, self.data.num_classes, seed))
        self.template = self.build_model(0)
        self.param_names = [n for n, _ in self.template.named_parameters()]
        self.prunable = list(prunable) if prunable is not None else prunable_names(self.template)
        if not self.prunable:
            raise ConfigError("the model has nothing to prune (no Linear or Conv weights)")
        self.plan = engine.plan(self.template, (self.data.train_x[:2], self.data.train_y[:2]), options.engine)
        augmentations.make(cfg.data.augment, self.data.input_shape)  # images only: refused before any work
        self.train_data = self.data.to(self.plan.device)  # moved once; scores and branches use the CPU copy
        n = len(self.data.train_x)
        self.total_steps = cfg.train.total_steps(n)
        if cfg.train.batch_size > n:
            raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the {n} training examples "
                              f"(after {len(self.data.val_x)} are held out for validation)")
        self.rewind_step = to_steps(cfg.rewind_step, cfg.train.steps_per_epoch(n))
        if self.rewind_step > self.total_steps:
            raise ConfigError(f"rewind_step={cfg.rewind_step} ({self.rewind_step} steps) is past the end of "
                              f"training ({self.total_steps} steps)")
        self.store = RunStore.create(options.store or default_root(), cfg)
        self._imp_masks: dict[tuple[int, int], dict] = {}
        self._handed: set[Unit] = set()  # units this process took on (claimed, then written)
        self._written: list[str] = []  # the units this invocation wrote, by key (its log says which)
        self._waiting_for: list[Unit] = []
        self._holder = {"invocation": f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"}

    # --- what each unit starts from (lottery.imp.branches.Context) ---------------------------
    def initial_weights(self, seed: int) -> dict[str, torch.Tensor]:
        """A fresh network's state: its parameters and buffers (BatchNorm statistics start fresh too)."""
        return {n: t.detach().clone() for n, t in self.build_model(seed).state_dict().items()}

    def imp_mask(self, level: int, seed: int) -> dict[str, torch.Tensor]:
        """The ticket's mask at `level`: the previous level's trained ticket, magnitude-pruned."""
        if (level, seed) not in self._imp_masks:
            if level == 0:
                mask = dense_mask(dict(self.template.named_parameters()), self.prunable)  # shapes only
            else:
                prev = Unit(level - 1, "imp", seed)
                p = self.cfg.prune
                stored = self.store.mask(prev)
                previous = {n: stored[n] for n in self.prunable}  # in layer order: the last is the output layer
                mask = magnitude(self.store.weights(prev, "final"), previous, rate=p.rate,
                                 output_rate=p.output_rate, scope=p.scope, conv_rate=p.conv_rate,
                                 nm_group=p.nm_group)
            self._imp_masks[(level, seed)] = mask
        return self._imp_masks[(level, seed)]

    def dense_weights(self, seed: int, stem: str) -> dict[str, torch.Tensor]:
        """The dense network of `seed`: its 'init', 'rewind' (step k) or trained ('final') weights."""
        return self.store.weights(Unit(0, "imp", seed), stem)

    def imp_weights(self, level: int, seed: int, stem: str) -> dict[str, torch.Tensor]:
        return self.store.weights(Unit(level, "imp", seed), stem)

    def score_batch(self, seed: int, size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed random training batch per seed, for scores that need data (SNIP, GraSP)."""
        g = torch.Generator().manual_seed(derive(seed, "score_batch"))
        idx = torch.randperm(len(self.data.train_x), generator=g)[:size]
        return self.data.train_x[idx], self.data.train_y[idx]

    def data_seed(self, seed: int) -> int:
        return derive(seed, "data")

    def input_shape(self) -> tuple[int, ...]:
        return self.data.input_shape

    def train(self, replicates: list[Replicate], description: str, checkpoint: str, observer=None) -> list[ReplicateResult]:
        """Train from step 0 through the run's engine (a branch's own search: early-bird)."""
        self.reporter.group(description, self.total_steps, len(replicates))
        group = engine.Group(self.template, replicates, self.train_data, self.cfg.train, augment=self.cfg.data.augment)
        store_checkpoint = self.store.checkpoint(checkpoint)
        results = engine.train(group, self.plan, checkpoint=store_checkpoint, progress=self.reporter.step,
                               observer=observer)
        store_checkpoint.remove()
        return results

    def prepare(self, unit: Unit) -> Job:
        """The unit's starting weights, mask and seeds, and the columns it will record."""
        seeds = {"model_seed": derive(unit.seed, "init"), "data_seed": self.data_seed(unit.seed), "control_seed": None}
        started = time.perf_counter()
        if unit.level == 0:
            start = Start(self.imp_mask(0, unit.seed), self.initial_weights(seeds["model_seed"]))
        else:
            start = BRANCHES[unit.branch].prepare(self, unit.level, unit.seed)
        seeds["control_seed"] = start.control_seed
        if start.data_seed is not None:  # a data order of its own (the instability analysis's second copy)
            seeds["data_seed"] = start.data_seed
        seconds = start.find_seconds if start.find_seconds is not None else time.perf_counter() - started
        record = {**seeds, "score_flops": start.find_flops, "score_seconds": seconds, "lr_mode": start.lr_mode,
                  **(start.extra or {})}
        noise = derive(unit.seed, "noise", unit.level, unit.branch)  # dropout etc.: the unit's own, in any group
        replicate = Replicate(apply(start.weights, start.mask), start.mask, seeds["data_seed"], noise)
        return Job(unit, replicate, start_step=0 if unit.level == 0 else self.rewind_step,  # pruned levels continue from k
                   snapshot_steps=(self.rewind_step,) if unit.level == 0 else (), lr_mode=start.lr_mode, record=record)

    # --- what an executor asks (lottery.execute.Work) ----------------------------------------
    def ready(self) -> list[Job]:
        """Every unit not done and not yet handed out whose inputs are done, claimed for this
        process: level 0 at once, a seed's level L once its level L−1 ticket is trained. Units
        another process holds are left to it (`wait`)."""
        jobs = []
        for unit in self._pending():
            if not self._inputs_done(unit) or not self.store.claims.take(unit, self._holder):
                continue
            if self.store.is_done(unit):  # finished by another process since we looked
                self.store.claims.release(unit)
                continue
            if unit in self.store.damaged:
                where = self.store.set_aside(unit)
                self.reporter.message(f"unit {unit.key} was damaged; set aside in {where} and recomputed")
            self._handed.add(unit)
            jobs.append(self.prepare(unit))
        return jobs

    def wait(self) -> bool:
        """Wait a moment if other processes hold units this run still needs (their results may
        make more units ready); False when no unit is left to anyone: the run is complete."""
        pending = self._pending()
        if not pending:
            return False
        held = [u for u in pending if self.store.claims.holder(u) is not None]
        if held and held != self._waiting_for:
            first = self.store.claims.holder(held[0]) or {}
            self.reporter.message(f"waiting for {len(held)} unit(s) that another process is training "
                                  f"(e.g. {held[0].key}: host {first.get('host', '?')}, pid {first.get('pid', '?')})")
        self._waiting_for = held
        time.sleep(POLL_SECONDS)
        return True

    def _pending(self) -> list[Unit]:
        return [u for u in all_units(self.cfg) if u not in self._handed and not self.store.is_done(u)]

    def _inputs_done(self, unit: Unit) -> bool:
        if unit.level > 0 and not self.store.is_done(Unit(unit.level - 1, "imp", unit.seed)):
            return False
        return not (BRANCHES[unit.branch].after_ticket and not self.store.is_done(Unit(unit.level, "imp", unit.seed)))

    def finish(self, job: Job, result: ReplicateResult) -> None:
        rep = job.replicate
        weights = {"mask": rep.mask, "init": rep.init, "final": result.final}
        if job.unit.level == 0:
            weights["rewind"] = result.snapshots[self.rewind_step]
        summary = {**self._summary(job, result), **BRANCHES[job.unit.branch].measured(self, job.unit, result)}
        self.store.write_unit(job.unit, weights, result.history, summary)
        self.store.claims.release(job.unit)
        self._written.append(job.unit.key)
        self.reporter.unit_finished(job.unit, summary, result.history)

    def running(self, jobs: list[Job], where: dict) -> None:
        """Where the executor is training these jobs (a node): kept with their claims for `lottery status`."""
        for job in jobs:
            self.store.claims.note(job.unit, where)

    def checkpoint(self, name: str, units: list[Unit] | None = None) -> Checkpoint:
        return self.store.checkpoint(name, units)

    def describe(self, jobs: list[Job]) -> str:
        level = jobs[0].unit.level
        branches = sorted({j.unit.branch for j in jobs}, key=self.cfg.branches.index)
        seeds = {j.unit.seed for j in jobs}
        what = "+".join(branches) if len(branches) <= 3 else f"{len(branches)} branches"
        return f"level {level}/{self.cfg.levels} · {what} × {len(seeds)} seed{'s' if len(seeds) > 1 else ''}"

    # --- running ---------------------------------------------------------------------------
    def run(self) -> Path:
        units = all_units(self.cfg)
        self.store.tidy(units)
        self.reporter.start(len(units), sum(self.store.is_done(u) for u in units))
        started = time.time()
        record = {"levels": self.cfg.levels, "seeds": list(self.cfg.seeds), "branches": list(self.cfg.branches),
                  "units": len(units), "vectorise": self.options.vectorise and self.plan.groups,
                  "executor": self.executor.name, **self.plan.record(), **environment(self.plan.device)}
        self.store.log_invocation({"event": "started", "time": started, **record})
        outcome = "interrupted"
        try:
            self.executor.run(self)
            outcome = "finished"
        finally:
            self.store.log_invocation({"event": outcome, "time": time.time(), "seconds": time.time() - started,
                                       "units_written": self._written, **record})
            self.store.claims.release_all()
            self.reporter.finish()
        return self.store.run_dir

    def diverged_units(self) -> list[str]:
        """The finished units whose loss stopped being finite (by key)."""
        return [f"{s['branch']} level {s['level']} seed {s['seed']} (step {s['diverged_step']})"
                for s in self.store.summaries() if s.get("diverged_step") is not None and s["seed"] in self.cfg.seeds]

    def _summary(self, job: Job, res: ReplicateResult) -> dict:
        unit, rep = job.unit, job.replicate
        total = sum(rep.init[n].numel() for n in self.param_names)
        alive = total - sum(int((~m).sum()) for m in rep.mask.values())
        samples = res.steps * self.cfg.train.batch_size
        return {
            "experiment": self.cfg.hash(), "branch": unit.branch, "level": unit.level, "seed": unit.seed,
            "fraction_remaining": fraction_remaining(rep.mask),
            "test_acc_end": res.test_acc_end, "test_acc_early_stop": res.test_acc_early_stop,
            "val_acc_end": res.val_acc_end, "early_stop_step": res.early_stop_step,
            "steps": res.steps, "samples": samples, "train_seconds": res.train_seconds,
            "group_size": res.extra["group_size"], "lanes": res.extra["lanes"], "scripted": res.extra["scripted"],
            "resumed_from_step": res.extra["resumed_from_step"], "diverged_step": res.diverged_step,
            "rewind_step": self.rewind_step, "params_total": total, "params_alive": alive,
            # forward + backward ≈ 6 FLOPs per weight per example; effective counts only unpruned weights
            "train_flops_dense": 6 * total * samples, "train_flops_effective": 6 * alive * samples,
            "density": density(rep.mask), **job.record,
        }


def run(cfg: ExperimentConfig, options: RunOptions = RunOptions(), **kwargs) -> Path:
    """Run (or resume) an experiment; returns its run directory."""
    return Experiment(cfg, options, **kwargs).run()
