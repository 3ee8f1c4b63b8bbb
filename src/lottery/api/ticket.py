"""What find_ticket gives back: the table, the verdict, and the ticket it names, as your model."""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from lottery.analysis.verdict import Verdict
from lottery.api.user_model import UserModel
from lottery.errors import ConfigError
from lottery.sparse.masks import attach
from lottery.store import RunStore, Unit


@dataclass
class Ticket:
    """`results`: the tidy table (one row per branch, level and seed). `verdict`: the verdict at
    early stop on the seeds asked for (`verdicts`: at early stop and at the end), as `lottery run`
    prints it. `level`: the sparsest matching level it names (None when it names none); `seed`:
    the first seed asked for. `mask()` and `module()` give that ticket unless told another."""

    run_dir: Path
    results: pd.DataFrame
    verdicts: list[Verdict]
    seeds: tuple[int, ...]
    _model: UserModel = field(repr=False)

    @property
    def verdict(self) -> Verdict:
        return self.verdicts[0]

    @property
    def level(self) -> int | None:
        return self.verdict.level if self.verdict.status == "matching" else None

    @property
    def seed(self) -> int:
        return self.seeds[0]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        return self.mask()

    def _unit(self, level: int | None, seed: int | None) -> Unit:
        if level is None:
            level = self.level
            if level is None:
                levels = sorted(self.results[self.results.branch == "imp"].level.unique())
                raise ConfigError(f"the verdict names no matching ticket ({self.verdict.status}: "
                                  f"{self.verdict.lines()[0]}); pass level=N for the ticket at any level run "
                                  f"({', '.join(map(str, levels))})")
        unit = Unit(int(level), "imp", self.seed if seed is None else int(seed))
        if not RunStore(self.run_dir).is_done(unit):
            raise ConfigError(f"no finished ticket at level {unit.level}, seed {unit.seed} in {self.run_dir}")
        return unit

    def save(self, path, level: int | None = None, seed: int | None = None, at_init: bool = False) -> int:
        """Write the ticket (default: the verdict's) as a file `lottery.load_ticket(path, model=YourModel())`
        reads back; trained weights, or with `at_init` the starting ones and the mask. Its size in bytes."""
        return _save(self, path, level, seed, at_init)

    def mask(self, level: int | None = None, seed: int | None = None) -> dict[str, torch.Tensor]:
        """name → bool tensor (True: kept) of the ticket at `level` (default: the verdict's) and `seed`."""
        return RunStore(self.run_dir).mask(self._unit(level, seed))

    def module(self, level: int | None = None, seed: int | None = None, trained: bool = True,
               keep_mask: bool = True) -> nn.Module:
        """Your model holding the ticket at `level` (default: the verdict's sparsest matching one)
        and `seed`: its trained weights, or with `trained=False` its starting (rewound) ones.

        With `keep_mask` (the default) the mask stays attached the way torch.nn.utils.prune attaches
        one (`weight_orig` and a `weight_mask` buffer): train it further and pruned weights stay 0.0.
        `lottery.bake(module)` makes the zeros plain weights again; `keep_mask=False` gives them so."""
        unit = self._unit(level, seed)
        store = RunStore(self.run_dir)
        diverged = store.summary(unit).get("diverged_step")
        if trained and diverged is not None:
            raise ConfigError(f"the ticket at level {unit.level}, seed {unit.seed} diverged (its loss stopped being "
                              f"finite at step {diverged}): its trained weights are not a network; trained=False "
                              "gives its starting weights")
        module = self._model.build(0)
        module.load_state_dict({**module.state_dict(), **store.weights(unit, "final" if trained else "init")})
        return attach(module, store.mask(unit)) if keep_mask else module


def _save(ticket: "Ticket", path, level=None, seed=None, at_init: bool = False) -> int:
    from lottery.sparse import ticket_file

    unit = ticket._unit(level, seed)
    state, masks, info = ticket_file.from_store(RunStore(ticket.run_dir), unit, at_init)
    info["model_class"] = type(ticket._model.template).__name__
    return ticket_file.write(Path(path), state, masks, info)
