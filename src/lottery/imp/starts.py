"""How each branch starts: for one (level, seed), which mask and which starting weights to train.

Each function takes the IMP run (a `Context`: the driver) and reads what it computed (the
ticket's mask at each level, the dense network's initial, rewind and trained weights); none
re-implements the driver. The catalogue (lottery.imp.branches) names the function of each branch.
"""


from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from lottery.imp.early_bird import search
from lottery.imp.instability import barrier, error_path
from lottery.pruning import counts as layer_counts
from lottery.pruning import (
    keep_top_global,
    keep_top_layerwise,
    kept,
    random_like,
    scores,
)
from lottery.pruning.masks import Mask
from lottery.pruning.nm import nm_step
from lottery.seeds import derive

if TYPE_CHECKING:  # names for the Context's annotations only
    from lottery.config import ExperimentConfig
    from lottery.data import Dataset
    from lottery.engine import Plan
    from lottery.store import RunStore


class Context(Protocol):
    """What a branch may ask of the IMP run (implemented by `lottery.imp.driver.Experiment`)."""

    cfg: "ExperimentConfig"
    template: torch.nn.Module
    data: "Dataset"  # on the CPU
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
    data_seed: int | None = None  # a data order of its own (None: its seed's, shared with the ticket)


def _dense_mask(ctx: Context, seed: int) -> Mask:
    return ctx.imp_mask(0, seed)


def imp(ctx, level, seed):
    return Start(ctx.imp_mask(level, seed), ctx.dense_weights(seed, "rewind"))


def reinit(ctx, level, seed):
    control = derive(seed, "reinit", level)
    return Start(ctx.imp_mask(level, seed), ctx.initial_weights(control), control)


def random_draw(purpose):
    def prepare(ctx, level, seed):
        control = derive(seed, purpose, level)
        mask = random_like(ctx.imp_mask(level, seed), torch.Generator().manual_seed(control))
        return Start(mask, ctx.dense_weights(seed, "rewind"), control)
    return prepare


def invert(ctx, level, seed):
    # the previous level's *inverted* ticket, pruned by the largest magnitudes of the ticket's weights
    prev_mask = ctx.imp_mask(level - 1, seed) if level > 1 else _dense_mask(ctx, seed)
    counts = layer_counts(ctx.imp_mask(level, seed))
    trained = ctx.imp_weights(level - 1, seed, "final")
    mask = keep_top_layerwise({n: -trained[n].abs() for n in prev_mask}, prev_mask, counts)
    return Start(mask, ctx.dense_weights(seed, "rewind"))


def oneshot(ctx, level, seed):
    trained = ctx.dense_weights(seed, "final")
    p = ctx.cfg.prune
    if p.scope == "nm":  # straight to the level's N:M structure: (M − level) of every M
        return Start(nm_step({n: w.abs() for n, w in trained.items()}, _dense_mask(ctx, seed), p.nm_group,
                             p.nm_group - level),
                     ctx.dense_weights(seed, "rewind"))
    counts = layer_counts(ctx.imp_mask(level, seed))
    mask = keep_top_layerwise({n: trained[n].abs() for n in counts}, _dense_mask(ctx, seed), counts)
    return Start(mask, ctx.dense_weights(seed, "rewind"))


def magnitude_init(ctx, level, seed):
    counts = layer_counts(ctx.imp_mask(level, seed))
    init = ctx.dense_weights(seed, "init")
    mask = keep_top_layerwise({n: init[n].abs() for n in counts}, _dense_mask(ctx, seed), counts)
    return Start(mask, init)


def keep_trained(lr_mode):
    # the ticket's mask on the previous level's *trained* weights: no rewinding of the values
    def prepare(ctx, level, seed):
        return Start(ctx.imp_mask(level, seed), ctx.imp_weights(level - 1, seed, "final"), lr_mode=lr_mode)
    return prepare


def early_bird(ctx, level, seed):
    step, mask, seconds = search(ctx, seed)[level]
    return Start(mask, ctx.dense_weights(seed, "rewind"),
                 find_flops=float(6 * _param_count(ctx) * ctx.cfg.train.batch_size * step),
                 find_seconds=seconds, extra={"early_bird_step": step})


def _param_count(ctx) -> int:
    return sum(p.numel() for p in ctx.template.parameters())


def scored_on_a_batch(score, passes):
    # `score` (SNIP, GraSP) on the seed's score batch at initialisation, one global threshold;
    # `passes`: forward/backward-sized passes over the batch that the score costs
    def prepare(ctx, level, seed):
        init, dense = ctx.dense_weights(seed, "init"), _dense_mask(ctx, seed)
        x, y = ctx.score_batch(seed)
        mask = keep_top_global(score(ctx.template, init, dense, x, y), dense, kept(ctx.imp_mask(level, seed)))
        return Start(mask, init, find_flops=float(passes * 2 * _param_count(ctx) * len(x)))
    return prepare


def synflow(ctx, level, seed, rounds=100):
    init, dense = ctx.dense_weights(seed, "init"), _dense_mask(ctx, seed)
    mask = scores.synflow(ctx.template, init, dense, ctx.input_shape(), kept(ctx.imp_mask(level, seed)), rounds)
    return Start(mask, init, find_flops=float(rounds * 6 * _param_count(ctx)))


random_prune = random_draw("random_prune")
shuffle = random_draw("shuffle")
lr_rewind = keep_trained("schedule")
finetune = keep_trained("final")
snip = scored_on_a_batch(scores.snip, 3)
grasp = scored_on_a_batch(scores.grasp, 9)


def instability(ctx, level, seed):
    """The ticket's mask and rewind weights again, trained on another data order (and other
    augmentation draws): the second copy of the instability analysis (lottery.imp.instability)."""
    other = derive(seed, "instability", level)
    return Start(ctx.imp_mask(level, seed), ctx.dense_weights(seed, "rewind"), other, data_seed=other)


def instability_barrier(ctx, unit, result) -> dict:
    """The error barrier between the level's ticket and this copy, and the errors along the path."""
    ticket = ctx.imp_weights(unit.level, unit.seed, "final")
    errors = error_path(ctx.template, ticket, result.final, ctx.data)
    return {"instability_barrier": barrier(errors), "instability_errors": errors}
