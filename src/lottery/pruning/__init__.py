"""Pruning as pure functions: (scores or weights, current mask, rule) → new mask.

    masks.py      what a mask is, which parameters are prunable, counting kept weights
    select.py     keeping the highest scores, per layer or across layers; random masks
    magnitude.py  the paper's rule: remove a fraction of the remaining weights by |w|
    scores.py     scores at initialisation that need the model: SNIP, GraSP, SynFlow
    nm.py         N:M structured sparsity (2:4, 4:8): at most N kept in every M inputs

Users can call these on their own tensors: `lottery.pruning.magnitude(weights, mask, rate=0.2,
output_rate=0.1)`.
"""

from lottery.pruning.magnitude import (
           layer_rates,
           magnitude,
           prune_count,
           prune_global,
           prune_layerwise,
)
from lottery.pruning.masks import (
           Mask,
           apply,
           counts,
           dense,
           density,
           fraction_remaining,
           kept,
           prunable_names,
)
from lottery.pruning.nm import keep_n_of_m, nm_step
from lottery.pruning.select import keep_top_global, keep_top_layerwise, random_like

__all__ = ["Mask", "apply", "counts", "dense", "density", "fraction_remaining", "keep_top_global",
           "keep_n_of_m", "keep_top_layerwise", "kept", "nm_step", "layer_rates", "magnitude", "prunable_names", "prune_count",
           "prune_global", "prune_layerwise", "random_like"]
