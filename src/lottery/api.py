"""`find_ticket`: the whole experiment on your own model and data, from Python.

    import lottery
    ticket = lottery.find_ticket(model, train=(x, y), test=(x_test, y_test), levels=5, seeds=(0, 1, 2))
    ticket.results          # the tidy table, same columns as results.csv
    ticket.masks            # name → bool tensor: the sparsest IMP ticket of the first seed
    net = ticket.module()   # an nn.Module with that ticket's trained weights (pruned ones exactly 0)

The run is stored like any other (content-addressed: a fingerprint of the architecture and of
the data enters the hash), so calling it again reuses what is done and resumes what is not.
Fresh initialisations for each seed (and for the reinit control) come from calling
`reset_parameters()` on every submodule that has one, under that seed.
"""

import copy
import hashlib
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from lottery import engine
from lottery.analysis.table import table
from lottery.config import (
    DEFAULT_BRANCHES,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
)
from lottery.data import split_validation
from lottery.errors import ConfigError
from lottery.imp.driver import Experiment, RunOptions
from lottery.pruning import prunable_names
from lottery.seeds import seeded
from lottery.store import RunStore, Unit, default_root


@dataclass
class Ticket:
    run_dir: Path
    results: pd.DataFrame
    masks: dict[str, torch.Tensor]
    level: int
    seed: int
    _template: nn.Module

    def mask(self, level: int | None = None, seed: int | None = None) -> dict[str, torch.Tensor]:
        return RunStore(self.run_dir).mask(Unit(self.level if level is None else level, "imp",
                                                self.seed if seed is None else seed))

    def module(self, level: int | None = None, seed: int | None = None, trained: bool = True) -> nn.Module:
        """A copy of your model holding the ticket at `level` (default: the sparsest): its trained
        weights, or with `trained=False` its starting (rewound) weights; pruned weights are 0.0."""
        unit = Unit(self.level if level is None else level, "imp", self.seed if seed is None else seed)
        store = RunStore(self.run_dir)
        weights = store.weights(unit, "final" if trained else "init")
        model = copy.deepcopy(self._template)
        model.load_state_dict({**model.state_dict(), **weights})
        return model


def _tensors(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors, or a map-style dataset of (x, y) pairs, as two stacked tensors."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    else:
        try:
            pairs = [data[i] for i in range(len(data))]
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
            y = torch.as_tensor([int(p[1]) for p in pairs])
        except Exception as e:  # any shape of failure means the argument is not what we accept
            raise ConfigError(f"{name} must be (x, y) tensors or a map-style dataset of (x, y) pairs: {e}") from None
    if len(x) != len(y):
        raise ConfigError(f"{name}: {len(x)} inputs but {len(y)} labels")
    return x.float(), y.long()


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(str((p.dtype, tuple(p.shape))).encode())
            h.update(p.detach().contiguous().cpu().numpy().tobytes())
        else:
            h.update(str(p).encode())
    return h.hexdigest()[:16]


def _factory(model: nn.Module):
    template = copy.deepcopy(model).cpu()

    def build(seed: int) -> nn.Module:
        fresh = copy.deepcopy(template)
        with seeded(seed):
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        return fresh
    return build


def find_ticket(model: nn.Module, train, test, *, levels: int = 5, seeds=(0,), branches=DEFAULT_BRANCHES,
                store=None, prunable: list[str] | None = None, validation_size: int | None = None,
                rate: float = 0.2, output_rate: float = 0.1, scope: str = "layerwise", rewind_step: str = "0",
                progress: bool = False, device: str = "auto", **training) -> Ticket:
    """Iterative magnitude pruning with rewinding, plus `branches`, on any `nn.Module` and data.

    `prunable`: parameter names to prune (default: the weights of Linear and Conv layers).
    `device`: auto (CUDA when present, else CPU), cpu, cuda or cuda:N.
    `training`: any `TrainConfig` field (optimizer, lr, batch_size, length, eval_every, ...).
    """
    allowed = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(training) - allowed)
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    x, y = _tensors(train, "train")
    test_x, test_y = _tensors(test, "test")
    names = list(prunable) if prunable is not None else prunable_names(model)
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(f"prunable names {missing} are not parameters of the model; it has {', '.join(params)}")
    if not names:
        raise ConfigError("the model has nothing to prune: no Linear or Conv weights; pass prunable=[parameter names]")
    num_classes = int(max(y.max(), test_y.max())) + 1
    try:
        with torch.no_grad():
            out = copy.deepcopy(model).cpu()(x[:2])
    except Exception as e:  # the user's model rejected the data: say so in one line
        raise ConfigError(f"the data (inputs of shape {tuple(x.shape[1:])}) does not fit the model: {e}") from None
    if out.dim() != 2 or out.shape[1] < num_classes:
        raise ConfigError(f"the model's output has shape {tuple(out.shape)}; it must be [batch, classes] with at "
                          f"least {num_classes} classes for these labels")
    validation_size = validation_size or min(5000, max(1, len(x) // 10))
    data = split_validation("custom", x, y, test_x, test_y, validation_size, num_classes)
    cfg = ExperimentConfig(
        data=DataConfig("custom", validation_size, fingerprint=_fingerprint(x, y, test_x, test_y)),
        model=ModelConfig("custom", fingerprint=_fingerprint(repr(model), names,
                                                              *[(n, tuple(p.shape)) for n, p in params.items()])),
        train=replace(TrainConfig(), **training), prune=PruneConfig(rate=rate, output_rate=output_rate, scope=scope),
        rewind_step=str(rewind_step), levels=levels, seeds=tuple(seeds), branches=tuple(branches))
    reporter = None
    if progress:
        from lottery.progress import reporter_for
        reporter = reporter_for(quiet=False)
    options = RunOptions(store=Path(store) if store else default_root(), engine=engine.Options(device=device))
    exp = Experiment(cfg, options, data=data, reporter=reporter, model_factory=_factory(model), prunable=names)
    run_dir = exp.run()
    results = table(RunStore(run_dir))
    results.to_csv(run_dir / "results.csv", index=False)
    seed = cfg.seeds[0]
    return Ticket(run_dir, results, RunStore(run_dir).mask(Unit(levels, "imp", seed)), levels, seed,
                  copy.deepcopy(model).cpu())
