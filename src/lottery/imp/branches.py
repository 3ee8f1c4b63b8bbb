"""Branches: small experiments that run off an IMP run's levels and reuse what it computed.

One catalogue: everything the tool knows about a branch is an attribute of its `Branch` (what
it is, where it comes from, how its starting point is made, what its mask cost, how it is drawn
and named). A new branch is one entry here and its start in `lottery.imp.starts`. This module
imports no torch: listing, tabulating and plotting branches stay light.

A branch says, for one (level, seed), which mask and which starting weights to train, using
the IMP run's cached artefacts through the `Context` (the driver; lottery.imp.starts): the
ticket's mask at each level, the dense network's initial, rewind and trained weights. It never
re-implements the driver. All branches of a level train with the same budget, from step k = `rewind_step` to the
end of `train.length` (T − k steps, continuing the schedule and the data order of the dense run
from step k, as OpenLTH does), side by side with the ticket and sharing its data order,
so every curve has one x axis (the ticket's sparsity at that level). Rewinding variants differ
only in where the values come from and which learning rates they see: `imp` rewinds the
values to `rewind_step`; `lr_rewind` keeps the trained values and replays the schedule;
`finetune` keeps them and trains at the schedule's final rate (with a constant schedule the
two coincide).

`find` says what it cost to produce the branch's mask, for the compute accounting:
  imp     the IMP trainings of levels 0..L-1 of that seed (the ticket's own cost)
  dense   the dense training only (level 0)
  free    nothing that needs training (a random draw, or scores at initialisation); whatever
          the branch computes itself (a SNIP batch, an early-bird search) is added as its own cost
"""

from dataclasses import dataclass

from lottery.store import Unit


@dataclass(frozen=True)
class Branch:
    name: str
    kind: str  # ticket | control | ablation | method | analysis (not compared with the ticket)
    summary: str
    source: str
    find: str  # imp | dense | free: what producing its mask cost (module docstring)
    cost: str  # the same, in words, for people
    start: str  # the function of lottery.imp.starts that makes its starting point
    label: str  # in figures' legends
    color: str | None = None  # in figures (None: the colour cycle's)
    short: str = ""  # in the verdict's sentences ("ticket vs random reinit"); default: the name
    counts_from_ticket: bool = False  # its mask keeps the ticket's per-layer counts (under global
    # pruning those come from the ticket's training, which its cost then includes)
    after_ticket: bool = False  # it needs its level's ticket trained (not only the level before)
    measure: str | None = None  # the function of lottery.imp.starts that adds columns once it is trained

    def __post_init__(self):
        if not self.short:
            object.__setattr__(self, "short", self.name)

    def prepare(self, ctx, level: int, seed: int):
        """Its `lottery.imp.starts.Start` (mask, weights, seeds, cost) at (level, seed) of the run `ctx`."""
        from lottery.imp import (
            starts,  # torch and the engine: loaded when a branch is trained, not listed
        )

        return getattr(starts, self.start)(ctx, level, seed)

    def measured(self, ctx, unit, result) -> dict:
        """The columns its `measure` adds for a trained unit (none when it has no measure)."""
        if self.measure is None:
            return {}
        from lottery.imp import starts

        return getattr(starts, self.measure)(ctx, unit, result)


# In this order everywhere: the ticket, its controls, the ablations, then the other methods.
BRANCHES: dict[str, Branch] = {b.name: b for b in (
    Branch("imp", "ticket", "the ticket: magnitude-prune the previous level's trained ticket, rewind to rewind_step",
           "Frankle & Carbin 2019; late rewinding: Frankle et al. 2020", "imp", "IMP levels 0..L-1", "imp",
           "IMP ticket (rewound)", "tab:blue"),
    Branch("reinit", "control", "control: the ticket's mask, fresh weights from the same init distribution",
           "Frankle & Carbin 2019", "imp", "as IMP", "reinit", "random reinit (same mask)", "tab:orange",
           short="random reinit"),
    Branch("random_prune", "control",
           "control: a random mask with the ticket's per-layer counts, the ticket's rewind weights",
           "Frankle & Carbin 2019", "free", "none", "random_prune", "random pruning (same layer counts)",
           "tab:green", short="random pruning", counts_from_ticket=True),
    Branch("shuffle", "ablation",
           "ablation: the ticket's mask shuffled within each layer (a fresh draw per level), rewind weights",
           "Frankle et al. 2021, 'missing the mark'", "imp", "as IMP", "shuffle", "shuffled mask", "tab:olive",
           counts_from_ticket=True),
    Branch("invert", "ablation", "ablation: inverted scores, keep the smallest trained weights instead of the largest",
           "Frankle et al. 2021, 'missing the mark'", "imp", "as IMP", "invert", "inverted scores", "tab:brown",
           counts_from_ticket=True),
    Branch("oneshot", "method", "one-shot magnitude pruning of the dense trained network to the level's per-layer counts",
           "Frankle & Carbin 2019 (one-shot vs iterative)", "dense", "dense training", "oneshot",
           "one-shot magnitude", "tab:purple", counts_from_ticket=True),
    Branch("lr_rewind", "method",
           "learning-rate rewinding: the ticket's mask on the trained weights, the LR schedule replayed",
           "Renda et al. 2020, 'Comparing rewinding and fine-tuning'", "imp", "as IMP", "lr_rewind", "LR rewinding",
           "tab:cyan"),
    Branch("finetune", "method",
           "fine-tuning: the ticket's mask on the trained weights, the schedule's final LR throughout",
           "Renda et al. 2020; Han et al. 2015", "imp", "as IMP", "finetune", "fine-tuning", "lightskyblue"),
    Branch("early_bird", "method", "magnitude mask drawn during dense training once successive masks agree, then rewound",
           "You et al. 2020, 'Drawing early-bird tickets'", "free", "dense steps until the masks agree", "early_bird",
           "early-bird", "tab:pink"),
    Branch("magnitude_init", "method", "prune at initialisation by |w| to the level's per-layer counts",
           "Frankle et al. 2021, 'missing the mark'", "free", "none", "magnitude_init", "magnitude at init",
           "tab:gray", counts_from_ticket=True),
    Branch("snip", "method", "prune at initialisation by |g ⊙ w| on one batch, one global threshold",
           "Lee et al. 2019, SNIP", "free", "one batch", "snip", "SNIP", "tab:red"),
    Branch("grasp", "method", "prune at initialisation by gradient-flow preservation (Hessian-gradient product), global",
           "Wang et al. 2020, GraSP", "free", "a few batches", "grasp", "GraSP", "gold"),
    Branch("synflow", "method", "data-free iterative pruning at initialisation, 100 rounds, exponential schedule, global",
           "Tanaka et al. 2020, SynFlow", "free", "100 passes", "synflow", "SynFlow", "black"),
    Branch("instability", "analysis", "stability to SGD noise: a second copy of the ticket from the rewind point with "
           "another data order; the error barrier on the straight line between the two trained copies",
           "Frankle et al. 2020, 'Linear mode connectivity and the lottery ticket hypothesis'", "imp", "as IMP",
           "instability", "second copy (other data order)", "tab:gray", after_ticket=True,
           measure="instability_barrier"),
)}


def of_kind(*kinds: str) -> tuple[str, ...]:
    """The names of the branches of these kinds, in catalogue order."""
    return tuple(b.name for b in BRANCHES.values() if b.kind in kinds)


def level_units(cfg, level: int) -> list[Unit]:
    """The units a level trains: level 0 the dense network of each seed, a pruned level every
    branch asked for, seed by seed."""
    branches = ["imp"] if level == 0 else list(cfg.branches)
    return [Unit(level, b, s) for s in cfg.seeds for b in branches]


def all_units(cfg) -> list[Unit]:
    """Every unit of the run, level by level."""
    return [u for level in range(cfg.levels + 1) for u in level_units(cfg, level)]
