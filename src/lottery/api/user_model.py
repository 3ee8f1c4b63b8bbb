"""Your network, made afresh for any seed, with the initialisation you gave it.

Give find_ticket a *factory* (`lambda: MyNet()`) and each seed calls it under that seed: whatever
your constructor does (He init, a zeroed layer, bare `nn.Parameter`s drawn from torch's
generator) is what every seed starts from, drawn anew. Give it a module *instance* and each seed
re-draws a copy of it with `reset_parameters()` of every submodule that has one: the layers'
default initialisation, not what your code applied afterwards, and find_ticket says so. Either
way `init_fn(module)`, when given, runs after, under the same seed. A parameter that nothing
re-draws would start every seed from the same values: refused for an instance (pass a factory
or `init_fn`), flagged for a factory (it may be meant: a pretrained start).
"""

import copy
import warnings
from collections import Counter

import torch
from torch import nn

from lottery.errors import ConfigError, InitWarning
from lottery.seeds import seeded


class UserModel:
    def __init__(self, model, init_fn=None):
        if isinstance(model, nn.Module):
            self.instance, self.factory = copy.deepcopy(model).cpu(), None
        elif callable(model):
            self.instance, self.factory = None, model
        else:
            raise ConfigError(f"model must be an nn.Module or a function returning one (a factory), not "
                              f"{type(model).__name__}")
        if init_fn is not None and not callable(init_fn):
            raise ConfigError("init_fn must be a function taking the module (it initialises it in place)")
        self.init_fn = init_fn
        self.template = self.build(0)
        self._check_every_seed_draws_anew()

    def build(self, seed: int) -> nn.Module:
        """A fresh network for `seed` (the caller's random state untouched)."""
        with seeded(seed):
            if self.factory is not None:
                module = self.factory()
                if not isinstance(module, nn.Module):
                    raise ConfigError(f"the model factory returned {type(module).__name__}, not an nn.Module")
            else:
                module = copy.deepcopy(self.instance)
                for m in module.modules():
                    if callable(getattr(m, "reset_parameters", None)):
                        m.reset_parameters()
            if self.init_fn is not None:
                self.init_fn(module)
        return module.cpu()

    def _check_every_seed_draws_anew(self) -> None:
        other = self.build(1).state_dict()
        stuck = [n for n, p in self.template.named_parameters()
                 if torch.equal(p.detach(), other[n]) and p.detach().unique().numel() > 1]
        if self.instance is not None and self.init_fn is None:
            if stuck:
                raise ConfigError(f"parameters {', '.join(stuck)} have no reset_parameters() to re-draw them, so every "
                                  "seed would start from the same values; pass a factory that builds the model, "
                                  "find_ticket(lambda: MyNet(), ...), or init_fn= to draw them")
            kinds = Counter(type(m).__name__ for m in self.instance.modules()
                            if callable(getattr(m, "reset_parameters", None)))
            warnings.warn("find_ticket got a module instance: each seed re-draws its weights with reset_parameters() "
                          f"({', '.join(f'{k} ×{v}' for k, v in kinds.items())}), the layers' defaults; an "
                          "initialisation your code applied is not kept. Pass a factory, find_ticket(lambda: "
                          "MyNet(), ...), or init_fn= to keep it.", InitWarning, stacklevel=4)
        elif stuck:
            warnings.warn(f"parameters {', '.join(stuck)} start every seed from the same values: your factory or "
                          "init_fn does not draw them from torch's generator (loaded weights?), so seeds differ "
                          "only in data order there", InitWarning, stacklevel=4)
