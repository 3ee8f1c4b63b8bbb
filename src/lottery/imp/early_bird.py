"""Early-bird tickets (You et al. 2020): draw the magnitude mask *during* dense training and stop
as soon as successive masks agree, instead of training to the end first.

One search per seed trains the dense network (the seed's initialisation and data order, as at
level 0) and at every evaluation point draws, for every level, the magnitude mask at that
level's size. A level's ticket is drawn at the first point where the last `WINDOW` successive
masks all differ by less than `EPSILON`; the search stops once every level has its ticket, or
at the end of the budget. What it saved is recorded: `early_bird_step` against the full
training length.

The distance is the paper's Hamming distance between masks, normalised by the number of
*kept* weights rather than by all weights: at the sparsities of unstructured IMP (say 7%
kept) two masks can differ by at most 14% of all positions, so the paper's normalisation
(made for channel masks at moderate sparsity) would call almost any pair "stable" and draw
every ticket at the earliest possible point, which is what we measured before this choice.
"""

import json
import time

import torch

from lottery.engine import Replicate
from lottery.pruning import dense as dense_mask
from lottery.pruning import (
    keep_top_global,
    keep_top_layerwise,
    layer_rates,
    prune_count,
)

WINDOW = 5
EPSILON = 0.1
RULE = f"kept-normalised hamming < {EPSILON} over {WINDOW} checks"  # a cached search is reused only under the same rule


def mask_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Hamming distance between two masks over their kept weights: 0 when they keep the same
    weights, 1 when they share none."""
    differ = sum(int((a[n] != b[n]).sum()) for n in a)
    kept = sum(int(a[n].sum()) + int(b[n].sum()) for n in a)
    return differ / kept if kept else 0.0


def level_targets(dense: dict[str, torch.Tensor], levels: int, rate: float, output_rate: float,
                  conv_rate: float | None = None) -> list[dict[str, int]]:
    """Per-layer kept counts of the IMP ticket at levels 1..`levels` under layerwise pruning (they
    follow from the rates alone)."""
    rates = layer_rates(dense, rate, output_rate, conv_rate)
    counts = {n: m.numel() for n, m in dense.items()}
    out = []
    for _ in range(levels):
        counts = {n: c - prune_count(c, rates[n]) for n, c in counts.items()}
        out.append(dict(counts))
    return out


class Search:
    """The stopping rule, called at every evaluation point with the (stacked) parameters. Its
    state (the last masks of each level, those drawn) goes into the training's checkpoints, so a
    search killed midway resumes to the masks an uninterrupted one draws."""

    def __init__(self, targets: list[dict[str, int]], scope: str, window: int = WINDOW, epsilon: float = EPSILON):
        self.targets, self.scope, self.window, self.epsilon = targets, scope, window, epsilon
        self.history: list[list[dict]] = [[] for _ in targets]
        self.drawn: dict[int, tuple[int, dict]] = {}  # level index → (step, mask)

    def draw(self, weights: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, torch.Tensor]:
        scores = {n: weights[n].abs() for n in counts}
        full = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
        if self.scope == "global":
            return keep_top_global(scores, full, sum(counts.values()))
        return keep_top_layerwise(scores, full, counts)

    def __call__(self, step: int, params: dict[str, torch.Tensor]) -> bool:
        weights = {n: params[n].detach()[0, 0].cpu() for n in self.targets[0]}
        for i, counts in enumerate(self.targets):
            if i in self.drawn:
                continue
            hist = self.history[i]
            hist.append(self.draw(weights, counts))
            del hist[:-(self.window + 1)]
            if len(hist) == self.window + 1 and all(
                    mask_distance(a, b) < self.epsilon for a, b in zip(hist[:-1], hist[1:])):
                self.drawn[i] = (step, hist[-1])
        return len(self.drawn) == len(self.targets)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors = {f"h.{i}.{j}.{n}": m for i, hist in enumerate(self.history) for j, mask in enumerate(hist)
                   for n, m in mask.items()}
        tensors.update({f"d.{i}.{n}": m.clone() for i, (_, mask) in self.drawn.items() for n, m in mask.items()})
        return tensors, {"history": [len(h) for h in self.history], "drawn": {i: s for i, (s, _) in self.drawn.items()}}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        names = list(self.targets[0])
        self.history = [[{n: tensors[f"h.{i}.{j}.{n}"].bool() for n in names} for j in range(length)]
                        for i, length in enumerate(meta["history"])]
        self.drawn = {int(i): (step, {n: tensors[f"d.{i}.{n}"].bool() for n in names})
                      for i, step in meta["drawn"].items()}


def search(ctx, seed: int) -> dict:
    """{level: (step, mask, seconds)} for every level of the run, cached in the store per seed.

    The search trains the seed's dense network through the run's engine (its device, compiled
    steps and in-training checkpoints: a killed search resumes where it was)."""
    cfg = ctx.cfg
    cached = ctx.store.aux(f"early_bird-seed_{seed}").load()
    if cached is not None:
        tensors, meta = cached
        meta = json.loads(meta)
        if meta["levels"] >= cfg.levels and meta.get("rule") == RULE:
            return _unpack(tensors, meta)
    init = ctx.dense_weights(seed, "init")
    dense = dense_mask(init, ctx.prunable)
    targets = level_targets(dense, cfg.levels, cfg.prune.rate, cfg.prune.output_rate, cfg.prune.conv_rate)
    rule = Search(targets, cfg.prune.scope)
    started = time.perf_counter()
    (result,) = ctx.train([Replicate(init, dense, ctx.data_seed(seed))], f"early-bird search · seed {seed}",
                          f"early_bird-seed_{seed}", observer=rule)
    seconds = time.perf_counter() - started
    meta = {"levels": cfg.levels, "rule": RULE, "steps_run": result.steps, "seconds": seconds,
            "drawn": {str(i + 1): rule.drawn[i][0] for i in rule.drawn}, "engine": ctx.plan.record(),
            "scripted": result.extra["scripted"], "resumed_from_step": result.extra["resumed_from_step"]}
    tensors = {f"{i + 1}.{n}": m for i, (_, mask) in rule.drawn.items() for n, m in mask.items()}
    # levels never stable within the budget: the mask at the end of the search
    for i, counts in enumerate(targets):
        if i not in rule.drawn:
            meta["drawn"][str(i + 1)] = result.steps
            tensors.update({f"{i + 1}.{n}": m for n, m in rule.draw(result.final, counts).items()})
    ctx.store.aux(f"early_bird-seed_{seed}").save(tensors, json.dumps(meta))
    return _unpack(tensors, meta)


def _unpack(tensors, meta) -> dict:
    out = {}
    for level, step in meta["drawn"].items():
        prefix = f"{level}."
        mask = {k[len(prefix):]: t.bool() for k, t in tensors.items() if k.startswith(prefix)}
        out[int(level)] = (step, mask, meta["seconds"] * step / max(1, meta["steps_run"]))
    return out
