"""The IMP driver: levels of train → prune → rewind, with branches at every level.

Level 0 trains the dense network of each seed (saving its weights at `rewind_step`). Level L
prunes the IMP ticket of level L-1 by magnitude, rewinds the survivors to the step-k weights
and retrains. The other branches at level L (controls, ablations, cheaper methods; see
`lottery.branches`) take their mask and starting weights from what the IMP run computed.
All units of one level (seeds × branches) are trained together as one vectorised group;
the branches of a seed share its data order (paired design).
"""

import logging
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lottery import graphs as cuda_graphs
from lottery import masks as masks_lib
from lottery import models, pruning, scripted
from lottery.branches import BRANCHES, Start
from lottery.config import ConfigError, ExperimentConfig, to_steps
from lottery.data import Dataset, load_dataset
from lottery.seeds import derive
from lottery.stacked import auto_engine, mlp_layers
from lottery.store import RunStore, Unit, default_root
from lottery.train import Replicate, train

log = logging.getLogger("lottery")


@dataclass(frozen=True)
class RunOptions:
    """How to execute (never what to compute: none of this enters the config hash)."""

    store: Path = None
    data_dir: str | None = None
    checkpoint_every: int = 500  # steps between in-training checkpoints
    vectorise: bool = True  # train each level's units as one program
    engine: str = "auto"  # auto | mlp | vmap | loop: how a stack runs (see lottery.stacked)
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N
    cuda_graphs: bool = True  # on CUDA, replay the MLP engine's step as a graph (lottery.graphs)
    script: bool = True  # on the CPU, compile the MLP engine's step to TorchScript (lottery.scripted)
    lanes: int | None = None  # CPU: seeds trained side by side in threads; None: automatic (lottery.lanes)


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when this torch sees a GPU, else CPU; anything else is checked, not trusted."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this torch ({torch.__version__}) sees no CUDA GPU; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


class Reporter:
    """Progress hooks; the CLI supplies a rich one, the API a silent one."""

    def start(self, total_units: int, done_units: int) -> None: ...
    def group(self, description: str, total_steps: int) -> None: ...
    def step(self, step: int, total: int) -> None: ...
    def units_done(self, n: int) -> None: ...
    def finish(self) -> None: ...


def environment(device: torch.device = torch.device("cpu")) -> dict:
    """What ran the experiment: versions, device, threads (recorded with every invocation)."""
    import lottery

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"lottery": lottery.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "device": str(device), "device_name": name,
            "threads": torch.get_num_threads(), "argv": sys.argv}


def level_units(cfg: ExperimentConfig, level: int) -> list[Unit]:
    branches = ["imp"] if level == 0 else list(cfg.branches)
    return [Unit(level, b, s) for s in cfg.seeds for b in branches]


class Experiment:
    """One config's IMP run over a store; `run()` does whatever is not done yet."""

    def __init__(self, cfg: ExperimentConfig, options: RunOptions = RunOptions(), data: Dataset | None = None,
                 reporter: Reporter | None = None, model_factory=None, prunable: list[str] | None = None):
        self.cfg, self.options = cfg, options
        self.device = resolve_device(options.device)  # before any work: a bad device fails at once
        self.reporter = reporter or Reporter()
        self.data = data if data is not None else load_dataset(cfg.data, options.data_dir)
        self.build_model = model_factory or (lambda seed: models.build(
            cfg.model.name, self.data.input_shape, self.data.num_classes, seed))
        self.template = self.build_model(0)
        self.param_names = [n for n, _ in self.template.named_parameters()]
        self.prunable = list(prunable) if prunable is not None else masks_lib.prunable_names(self.template)
        if not self.prunable:
            raise ConfigError("the model has nothing to prune (no Linear or Conv weights)")
        self.train_data = self.data.to(self.device)  # moved once; scores and branches use the CPU copy
        self.engine, self.vectorise = options.engine, options.vectorise
        if options.engine == "mlp" and mlp_layers(self.template) is None:
            raise ConfigError("engine 'mlp' runs Sequential stacks of Linear and ReLU layers only; this model "
                              "is not one: use auto, vmap or loop")
        if options.engine in ("auto", "vmap"):  # probed once here; every group then gets the engine by name
            engine, problem = auto_engine(self.template, (self.data.train_x[:2], self.data.train_y[:2]))
            if problem:
                log.warning(f"{type(self.template).__name__} cannot be vectorised ({problem}); "
                            "training its units one at a time")
                self.engine, self.vectorise = "loop", False
            elif options.engine == "auto":
                self.engine = engine
        steps_per_epoch = len(self.data.train_x) / cfg.train.batch_size
        self.total_steps = to_steps(cfg.train.length, steps_per_epoch)
        self.rewind_step = to_steps(cfg.rewind_step, steps_per_epoch)
        if self.rewind_step > self.total_steps:
            raise ConfigError(f"rewind_step={cfg.rewind_step} ({self.rewind_step} steps) is past the end of "
                              f"training ({self.total_steps} steps)")
        self.store = RunStore.create(options.store or default_root(), cfg)
        self._imp_masks: dict[tuple[int, int], dict] = {}

    # --- what each unit starts from --------------------------------------------------------
    def initial_weights(self, seed: int) -> dict[str, torch.Tensor]:
        """A fresh network's state: its parameters and buffers (BatchNorm statistics start fresh too)."""
        return {n: t.detach().clone() for n, t in self.build_model(seed).state_dict().items()}

    def imp_mask(self, level: int, seed: int) -> dict[str, torch.Tensor]:
        """The ticket's mask at `level`: the previous level's trained ticket, magnitude-pruned."""
        if (level, seed) not in self._imp_masks:
            if level == 0:
                mask = masks_lib.dense(dict(self.template.named_parameters()), self.prunable)  # shapes only
            else:
                prev = Unit(level - 1, "imp", seed)
                p = self.cfg.prune
                mask = pruning.magnitude(self.store.weights(prev, "final"), self.store.mask(prev),
                                         rate=p.rate, output_rate=p.output_rate, scope=p.scope)
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

    def prepare(self, unit: Unit) -> tuple[Replicate, dict]:
        """The unit's starting weights, mask and data seed, plus the seeds and scoring cost it used."""
        seeds = {"model_seed": derive(unit.seed, "init"), "data_seed": self.data_seed(unit.seed), "control_seed": None}
        started = time.perf_counter()
        if unit.level == 0:
            start = Start(self.imp_mask(0, unit.seed), self.initial_weights(seeds["model_seed"]))
        else:
            start = BRANCHES[unit.branch].prepare(self, unit.level, unit.seed)
        seeds["control_seed"] = start.control_seed
        seconds = start.find_seconds if start.find_seconds is not None else time.perf_counter() - started
        info = {**seeds, "score_flops": start.find_flops, "score_seconds": seconds, "lr_mode": start.lr_mode,
                **(start.extra or {})}
        noise = derive(unit.seed, "noise", unit.level, unit.branch)  # dropout etc.: the unit's own, in any group
        return Replicate(masks_lib.apply(start.weights, start.mask), start.mask, seeds["data_seed"], noise), info

    # --- running ---------------------------------------------------------------------------
    def run(self) -> Path:
        all_units = [u for level in range(self.cfg.levels + 1) for u in level_units(self.cfg, level)]
        self.reporter.start(len(all_units), sum(self.store.is_done(u) for u in all_units))
        started = time.time()
        record = {"levels": self.cfg.levels, "seeds": list(self.cfg.seeds), "branches": list(self.cfg.branches),
                  "units": len(all_units), "vectorise": self.vectorise, "engine": self.engine,
                  "cuda_graphs": cuda_graphs.applies(self.options.cuda_graphs, self.device, self.engine),
                  "script": scripted.applies(self.options.script, self.device, self.engine),
                  "lanes": self.options.lanes or "auto",
                  **environment(self.device)}
        self.store.log_invocation({"event": "started", "time": started, **record})
        outcome = "interrupted"
        try:
            for level in range(self.cfg.levels + 1):
                todo = [u for u in level_units(self.cfg, level) if not self.store.is_done(u)]
                groups = [todo] if self.vectorise else [[u] for u in todo]
                for group in filter(None, groups):
                    self._train_group(group)
            outcome = "finished"
        finally:
            self.store.log_invocation({"event": outcome, "time": time.time(), "seconds": time.time() - started, **record})
            self.reporter.finish()
            self.store.unlock()
        return self.store.run_dir

    def _train_group(self, units: list[Unit]) -> None:
        level = units[0].level
        prepared_all = [self.prepare(u) for u in units]
        by_mode: dict[str, list[int]] = {}  # replicates of one program must share their learning rates
        for i, (_, info) in enumerate(prepared_all):
            by_mode.setdefault(info["lr_mode"], []).append(i)
        for lr_mode, idx in by_mode.items():
            self._train_subgroup(level, [units[i] for i in idx], [prepared_all[i] for i in idx], lr_mode)

    def _train_subgroup(self, level: int, group: list[Unit], prepared: list, lr_mode: str) -> None:
        name = f"level_{level:02d}-" + derive(0, *[u.key for u in group]).to_bytes(8, "big").hex()
        checkpoint = self.store.checkpoint(name)
        branches = sorted({u.branch for u in group}, key=self.cfg.branches.index)
        seeds = sorted({u.seed for u in group})
        what = "+".join(branches) if len(branches) <= 3 else f"{len(branches)} branches"
        self.reporter.group(f"level {level}/{self.cfg.levels} · {what} × {len(seeds)} seed{'s' if len(seeds) > 1 else ''}",
                            self.total_steps)
        results = train(self.template, [r for r, _ in prepared], self.train_data, self.cfg.train,
                        snapshot_steps=(self.rewind_step,) if level == 0 else (), checkpoint=checkpoint,
                        checkpoint_every=self.options.checkpoint_every, progress=self.reporter.step,
                        engine=self.engine, lr_mode=lr_mode, device=self.device, graphs=self.options.cuda_graphs,
                        script=self.options.script, lanes=self.options.lanes,
                        start_step=0 if level == 0 else self.rewind_step)  # pruned levels continue from step k
        for unit, (rep, seeds_used), res in zip(group, prepared, results):
            weights = {"mask": rep.mask, "init": rep.init, "final": res.final}
            if level == 0:
                weights["rewind"] = res.snapshots[self.rewind_step]
            self.store.write_unit(unit, weights, res.history, self._summary(unit, rep, res, seeds_used))
        checkpoint.remove()
        self.reporter.units_done(len(group))

    def _summary(self, unit: Unit, rep: Replicate, res, seeds_used: dict) -> dict:
        total = sum(rep.init[n].numel() for n in self.param_names)
        alive = total - sum(int((~m).sum()) for m in rep.mask.values())
        samples = res.steps * self.cfg.train.batch_size
        return {
            "experiment": self.cfg.hash(), "branch": unit.branch, "level": unit.level, "seed": unit.seed,
            "fraction_remaining": masks_lib.fraction_remaining(rep.mask),
            "test_acc_end": res.test_acc_end, "test_acc_early_stop": res.test_acc_early_stop,
            "val_acc_end": res.val_acc_end, "early_stop_step": res.early_stop_step,
            "steps": res.steps, "samples": samples, "train_seconds": res.train_seconds,
            "group_size": res.extra["group_size"], "lanes": res.extra["lanes"], "scripted": res.extra["scripted"],
            "resumed_from_step": res.extra["resumed_from_step"],
            "rewind_step": self.rewind_step, "params_total": total, "params_alive": alive,
            # forward + backward ≈ 6 FLOPs per weight per example; effective counts only unpruned weights
            "train_flops_dense": 6 * total * samples, "train_flops_effective": 6 * alive * samples,
            "density": masks_lib.density(rep.mask), **seeds_used,
        }


def run(cfg: ExperimentConfig, options: RunOptions = RunOptions(), **kwargs) -> Path:
    """Run (or resume) an experiment; returns its run directory."""
    return Experiment(cfg, options, **kwargs).run()
