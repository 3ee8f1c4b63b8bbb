"""Branches: small experiments that run off an IMP run's levels and reuse what it computed.

One catalogue: everything the tool knows about a branch is an attribute of its `Branch` (what
it is, where it comes from, how to make its starting point, what its mask cost, how it is
drawn and named). A new branch is one entry here.

A branch says, for one (level, seed), which mask and which starting weights to train, using
the IMP run's cached artefacts through the `Context` (the driver): the ticket's mask at each
level, the dense network's initial, rewind and trained weights. It never re-implements the
driver. All branches of a level train with the same budget, from step k = `rewind_step` to the
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
from typing import TYPE_CHECKING, Callable, Protocol

import torch

from lottery.imp.early_bird import search
from lottery.pruning import counts as layer_counts
from lottery.pruning import (
    keep_top_global,
    keep_top_layerwise,
    kept,
    random_like,
    scores,
)
from lottery.pruning.masks import Mask
from lottery.seeds import derive

if TYPE_CHECKING:  # names for the Context's annotations only
    from lottery.config import ExperimentConfig
    from lottery.engine import Plan
    from lottery.store import RunStore


class Context(Protocol):
    """What a branch may ask of the IMP run (implemented by `lottery.imp.driver.Experiment`)."""

    cfg: "ExperimentConfig"
    template: torch.nn.Module
    prunable: list[str]  # the names of the pruned parameters
    store: "RunStore"
    plan: "Plan"  # how the run's engine trains (lottery.engine.Plan)
    def imp_mask(self, level: int, seed: int) -> Mask: ...
    def initial_weights(self, model_seed: int) -> dict[str, torch.Tensor]: ...
    def dense_weights(self, seed: int, stem: str) -> dict[str, torch.Tensor]: ...  # init | rewind | final
    def imp_weights(self, level: int, seed: int, stem: str) -> dict[str, torch.Tensor]: ...
    def score_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]: ...
    def input_shape(self) -> tuple[int, ...]: ...
    def data_seed(self, seed: int) -> int: ...
    def train(self, replicates, description: str, checkpoint: str, observer=None) -> list: ...  # through the engine


@dataclass(frozen=True)
class Start:
    mask: Mask
    weights: dict[str, torch.Tensor]  # the driver applies the mask
    control_seed: int | None = None
    find_flops: float = 0.0  # compute spent on scores beyond any training (e.g. SNIP's batch)
    lr_mode: str = "schedule"  # schedule: the configured schedule from step 0; final: its last value throughout
    find_seconds: float | None = None  # when the scoring's wall time is not this call's (a cached search)
    extra: dict | None = None  # more columns for the results table


@dataclass(frozen=True)
class Branch:
    name: str
    kind: str  # ticket | control | ablation | method
    summary: str
    source: str
    find: str  # imp | dense | free: what producing its mask cost (module docstring)
    prepare: Callable[[Context, int, int], Start]
    label: str  # in figures' legends
    color: str | None = None  # in figures (None: the colour cycle's)
    short: str = ""  # in the verdict's sentences ("ticket vs random reinit"); default: the name
    counts_from_ticket: bool = False  # its mask keeps the ticket's per-layer counts (under global
    # pruning those come from the ticket's training, which its cost then includes)

    def __post_init__(self):
        if not self.short:
            object.__setattr__(self, "short", self.name)


def _dense_mask(ctx: Context, seed: int) -> Mask:
    return ctx.imp_mask(0, seed)


def _imp(ctx, level, seed):
    return Start(ctx.imp_mask(level, seed), ctx.dense_weights(seed, "rewind"))


def _reinit(ctx, level, seed):
    control = derive(seed, "reinit", level)
    return Start(ctx.imp_mask(level, seed), ctx.initial_weights(control), control)


def _random(purpose):
    def prepare(ctx, level, seed):
        control = derive(seed, purpose, level)
        mask = random_like(ctx.imp_mask(level, seed), torch.Generator().manual_seed(control))
        return Start(mask, ctx.dense_weights(seed, "rewind"), control)
    return prepare


def _invert(ctx, level, seed):
    # the previous level's *inverted* ticket, pruned by the largest magnitudes of the ticket's weights
    prev_mask = ctx.imp_mask(level - 1, seed) if level > 1 else _dense_mask(ctx, seed)
    counts = layer_counts(ctx.imp_mask(level, seed))
    trained = ctx.imp_weights(level - 1, seed, "final")
    mask = keep_top_layerwise({n: -trained[n].abs() for n in prev_mask}, prev_mask, counts)
    return Start(mask, ctx.dense_weights(seed, "rewind"))


def _oneshot(ctx, level, seed):
    counts = layer_counts(ctx.imp_mask(level, seed))
    trained = ctx.dense_weights(seed, "final")
    mask = keep_top_layerwise({n: trained[n].abs() for n in counts}, _dense_mask(ctx, seed), counts)
    return Start(mask, ctx.dense_weights(seed, "rewind"))


def _magnitude_init(ctx, level, seed):
    counts = layer_counts(ctx.imp_mask(level, seed))
    init = ctx.dense_weights(seed, "init")
    mask = keep_top_layerwise({n: init[n].abs() for n in counts}, _dense_mask(ctx, seed), counts)
    return Start(mask, init)


def _keep_trained(lr_mode):
    # the ticket's mask on the previous level's *trained* weights: no rewinding of the values
    def prepare(ctx, level, seed):
        return Start(ctx.imp_mask(level, seed), ctx.imp_weights(level - 1, seed, "final"), lr_mode=lr_mode)
    return prepare


def _early_bird(ctx, level, seed):
    step, mask, seconds = search(ctx, seed)[level]
    return Start(mask, ctx.dense_weights(seed, "rewind"),
                 find_flops=float(6 * _param_count(ctx) * ctx.cfg.train.batch_size * step),
                 find_seconds=seconds, extra={"early_bird_step": step})


def _param_count(ctx) -> int:
    return sum(p.numel() for p in ctx.template.parameters())


def _scored_on_a_batch(score, passes):
    # `score` (SNIP, GraSP) on the seed's score batch at initialisation, one global threshold;
    # `passes`: forward/backward-sized passes over the batch that the score costs
    def prepare(ctx, level, seed):
        init, dense = ctx.dense_weights(seed, "init"), _dense_mask(ctx, seed)
        x, y = ctx.score_batch(seed)
        mask = keep_top_global(score(ctx.template, init, dense, x, y), dense, kept(ctx.imp_mask(level, seed)))
        return Start(mask, init, find_flops=float(passes * 2 * _param_count(ctx) * len(x)))
    return prepare


def _synflow(ctx, level, seed, rounds=100):
    init, dense = ctx.dense_weights(seed, "init"), _dense_mask(ctx, seed)
    mask = scores.synflow(ctx.template, init, dense, ctx.input_shape(), kept(ctx.imp_mask(level, seed)), rounds)
    return Start(mask, init, find_flops=float(rounds * 6 * _param_count(ctx)))


# In this order everywhere: the ticket, its controls, the ablations, then the other methods.
BRANCHES: dict[str, Branch] = {b.name: b for b in (
    Branch("imp", "ticket", "the ticket: magnitude-prune the previous level's trained ticket, rewind to rewind_step",
           "Frankle & Carbin 2019; late rewinding: Frankle et al. 2020", "imp", _imp,
           "IMP ticket (rewound)", "tab:blue"),
    Branch("reinit", "control", "control: the ticket's mask, fresh weights from the same init distribution",
           "Frankle & Carbin 2019", "imp", _reinit, "random reinit (same mask)", "tab:orange", short="random reinit"),
    Branch("random_prune", "control",
           "control: a random mask with the ticket's per-layer counts, the ticket's rewind weights",
           "Frankle & Carbin 2019", "free", _random("random_prune"), "random pruning (same layer counts)",
           "tab:green", short="random pruning", counts_from_ticket=True),
    Branch("shuffle", "ablation",
           "ablation: the ticket's mask shuffled within each layer (a fresh draw per level), rewind weights",
           "Frankle et al. 2021, 'missing the mark'", "imp", _random("shuffle"), "shuffled mask", "tab:olive",
           counts_from_ticket=True),
    Branch("invert", "ablation", "ablation: inverted scores, keep the smallest trained weights instead of the largest",
           "Frankle et al. 2021, 'missing the mark'", "imp", _invert, "inverted scores", "tab:brown",
           counts_from_ticket=True),
    Branch("oneshot", "method", "one-shot magnitude pruning of the dense trained network to the level's per-layer counts",
           "Frankle & Carbin 2019 (one-shot vs iterative)", "dense", _oneshot, "one-shot magnitude", "tab:purple",
           counts_from_ticket=True),
    Branch("lr_rewind", "method",
           "learning-rate rewinding: the ticket's mask on the trained weights, the LR schedule replayed",
           "Renda et al. 2020, 'Comparing rewinding and fine-tuning'", "imp", _keep_trained("schedule"),
           "LR rewinding", "tab:cyan"),
    Branch("finetune", "method",
           "fine-tuning: the ticket's mask on the trained weights, the schedule's final LR throughout",
           "Renda et al. 2020; Han et al. 2015", "imp", _keep_trained("final"), "fine-tuning", "lightskyblue"),
    Branch("early_bird", "method", "magnitude mask drawn during dense training once successive masks agree, then rewound",
           "You et al. 2020, 'Drawing early-bird tickets'", "free", _early_bird, "early-bird", "tab:pink"),
    Branch("magnitude_init", "method", "prune at initialisation by |w| to the level's per-layer counts",
           "Frankle et al. 2021, 'missing the mark'", "free", _magnitude_init, "magnitude at init", "tab:gray",
           counts_from_ticket=True),
    Branch("snip", "method", "prune at initialisation by |g ⊙ w| on one batch, one global threshold",
           "Lee et al. 2019, SNIP", "free", _scored_on_a_batch(scores.snip, 3), "SNIP", "tab:red"),
    Branch("grasp", "method", "prune at initialisation by gradient-flow preservation (Hessian-gradient product), global",
           "Wang et al. 2020, GraSP", "free", _scored_on_a_batch(scores.grasp, 9), "GraSP", "gold"),
    Branch("synflow", "method", "data-free iterative pruning at initialisation, 100 rounds, exponential schedule, global",
           "Tanaka et al. 2020, SynFlow", "free", _synflow, "SynFlow", "black"),
)}


def of_kind(*kinds: str) -> tuple[str, ...]:
    """The names of the branches of these kinds, in catalogue order."""
    return tuple(b.name for b in BRANCHES.values() if b.kind in kinds)
