"""Experiment configuration: frozen, validated dataclasses, canonical JSON and its hash.

What changes a result is *hashed*: data, model, training, pruning and the rewind step. The hash
names the run directory, so the same experiment always lands in the same place and a
different one never overwrites it. What only *extends* an experiment (more levels, more seeds,
more branches) or says *how* to execute it (threads, device, checkpoint interval) is kept out
of the hash: levels, seeds and branches are sub-directories of one run, as in OpenLTH.

This module checks values only. Names (datasets, models, branches) are checked against their
registries at the edges, where those are known (`lottery.imp.driver.check_names`): the
configuration sits below every registry and imports none of them.
"""

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field

from lottery.errors import ConfigError

SCHEMA_VERSION = 1
DEFAULT_BRANCHES = ("imp", "reinit", "random_prune")
AUGMENTATIONS = ("none", "crop_flip")
# Settings added after the schema's first version enter the hash only when they differ from these
# values, so every earlier experiment keeps its hash (and its run directory).
HASHED_WHEN_SET = {"data": {"fingerprint": "", "augment": "none"}, "model": {"fingerprint": ""},
                   "prune": {"conv_rate": None, "nm_group": 4}}
_LENGTH = re.compile(r"^(\d+)$|^(\d+(?:\.\d+)?)ep$")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_length(name: str, value: str, allow_zero: bool = True) -> None:
    m = _LENGTH.match(str(value))
    _check(m is not None, f"{name}={value!r} is not a length: use a step count like '2750' or epochs like '3ep'")
    number = float(m.group(1) or m.group(2))
    _check(allow_zero or number > 0, f"{name}={value!r} must be greater than zero")


def to_steps(value: str, steps_per_epoch: float) -> int:
    """A length ('2750' steps or '3ep' epochs) in optimiser steps; epochs round to the nearest step."""
    m = _LENGTH.match(str(value))
    if m is None:
        raise ConfigError(f"{value!r} is not a length: use a step count like '2750' or epochs like '3ep'")
    if m.group(1) is not None:
        return int(m.group(1))
    return int(round(float(m.group(2)) * steps_per_epoch))


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"
    validation_size: int = 5000  # held out of the training set, as in the paper
    fingerprint: str = ""  # 'custom' data (find_ticket): a hash of the tensors
    augment: str = "none"  # none | crop_flip: a random 4-pixel-padded crop and a horizontal flip per image

    def __post_init__(self):
        _check(bool(self.dataset), "data.dataset must name a dataset (see `lottery presets`)")
        _check(self.augment in AUGMENTATIONS, f"data.augment={self.augment!r} is unknown; choose "
                                              f"{' or '.join(AUGMENTATIONS)}")
        _check(self.dataset != "custom" or bool(self.fingerprint),
               "data.dataset='custom' is the Python API's own data (find_ticket); name a dataset")
        _check(self.validation_size >= 1, f"data.validation_size={self.validation_size} must be at least 1")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lenet_300_100"
    fingerprint: str = ""  # 'custom' models (find_ticket): a hash of the architecture

    def __post_init__(self):
        _check(bool(self.name), "model.name must name a model (see `lottery presets`)")
        _check(self.name != "custom" or bool(self.fingerprint),
               "model.name='custom' is the Python API's own model (find_ticket); name a model")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1.2e-3
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # L2 added to the gradient (coupled), as torch.optim does
    batch_size: int = 60
    length: str = "50000"  # steps ('50000') or epochs ('3ep')
    schedule: str = "constant"  # constant | step | cosine
    milestones: tuple[str, ...] = ()  # step schedule: lengths at which lr *= gamma
    gamma: float = 0.1
    warmup: str = "0"  # linear warm-up length
    eval_every: str = "100"  # validation interval; also the early-stopping resolution

    def __post_init__(self):
        _check(self.optimizer in ("adam", "sgd"), f"train.optimizer={self.optimizer!r} is unknown; choose adam or sgd")
        _check(math.isfinite(self.lr) and self.lr > 0, f"train.lr={self.lr} must be a positive finite number")
        _check(0 <= self.momentum < 1, f"train.momentum={self.momentum} must be in [0, 1)")
        _check(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
               "train.nesterov needs optimizer=sgd and momentum > 0")
        _check(math.isfinite(self.weight_decay) and self.weight_decay >= 0,
               f"train.weight_decay={self.weight_decay} must be a finite number >= 0")
        _check(self.batch_size >= 1, f"train.batch_size={self.batch_size} must be at least 1")
        _check(self.schedule in ("constant", "step", "cosine"),
               f"train.schedule={self.schedule!r} is unknown; choose constant, step or cosine")
        _check(0 < self.gamma <= 1, f"train.gamma={self.gamma} must be in (0, 1]")
        _check_length("train.length", self.length, allow_zero=False)
        _check_length("train.warmup", self.warmup)
        _check_length("train.eval_every", self.eval_every, allow_zero=False)
        for m in self.milestones:
            _check_length("train.milestones", m)

    def steps_per_epoch(self, train_examples: int) -> float:
        return train_examples / self.batch_size

    def total_steps(self, train_examples: int) -> int:
        """The training length in optimiser steps, for a training set of this many examples."""
        return to_steps(self.length, self.steps_per_epoch(train_examples))


@dataclass(frozen=True)
class PruneConfig:
    strategy: str = "magnitude"
    scope: str = "layerwise"  # layerwise: each layer loses its fraction; global: one threshold
    rate: float = 0.2  # fraction of the remaining weights removed per level (hidden layers)
    output_rate: float = 0.1  # the same for the output layer (the paper prunes it at half rate)
    conv_rate: float | None = None  # layerwise: the rate of convolutional layers (None: `rate`)
    nm_group: int = 4  # scope nm: M, the group size (each level keeps one fewer of every M: 3:4, 2:4, 1:4)

    def __post_init__(self):
        _check(self.conv_rate is None or 0 <= self.conv_rate < 1, f"prune.conv_rate={self.conv_rate} must be in [0, 1)")
        _check(self.strategy == "magnitude", f"prune.strategy={self.strategy!r} is unknown; choose magnitude")
        _check(self.scope in ("layerwise", "global", "nm"),
               f"prune.scope={self.scope!r} is unknown; choose layerwise, global or nm")
        _check(self.nm_group in (2, 4, 8, 16), f"prune.nm_group={self.nm_group} must be 2, 4, 8 or 16")
        _check(0 <= self.rate < 1, f"prune.rate={self.rate} must be in [0, 1)")
        _check(0 <= self.output_rate < 1, f"prune.output_rate={self.output_rate} must be in [0, 1)")


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    rewind_step: str = "0"  # survivors are reset to their values at this step of dense training
    # Not hashed: they extend one experiment rather than change it.
    levels: int = 12
    seeds: tuple[int, ...] = (0,)
    branches: tuple[str, ...] = DEFAULT_BRANCHES

    HASHED = ("data", "model", "train", "prune", "rewind_step")

    def __post_init__(self):
        _check_length("rewind_step", self.rewind_step)
        _check(0 <= self.levels <= 60, f"levels={self.levels} must be between 0 and 60")
        _check(len(self.seeds) >= 1, "seeds must name at least one seed")
        _check(all(s >= 0 for s in self.seeds), f"seeds={self.seeds} must be non-negative integers")
        _check(len(set(self.seeds)) == len(self.seeds), f"seeds={self.seeds} has duplicates")
        _check(len(set(self.branches)) == len(self.branches), f"branches {self.branches} has duplicates")
        _check("imp" in self.branches, "branches must include 'imp': every control is defined by the IMP ticket")

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hashed_dict(self) -> dict:
        d = self.to_dict()
        for part, unset in HASHED_WHEN_SET.items():
            for key, value in unset.items():
                if d[part][key] == value:
                    del d[part][key]
        return {"schema": SCHEMA_VERSION, **{k: d[k] for k in self.HASHED}}

    def canonical_json(self) -> str:
        return json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        return _build(cls, d, "")


def _build(cls, d: dict, prefix: str):
    """Build a (nested) config dataclass from a plain dict, rejecting unknown keys."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in known and k != "schema"]
    _check(not unknown, f"unknown setting(s) {', '.join(prefix + k for k in unknown)}; "
                        f"known: {', '.join(prefix + k for k in known)}")
    kwargs = {}
    for name, value in d.items():
        if name == "schema":
            continue
        ftype = _field_type(cls, name)
        if dataclasses.is_dataclass(ftype):
            _check(isinstance(value, dict), f"{prefix}{name} must be a mapping")
            kwargs[name] = _build(ftype, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, ftype, prefix + name)
    return cls(**kwargs)


def _field_type(cls, name):
    return typing.get_type_hints(cls)[name]


def _coerce(value, ftype, name):
    """Turn a value (possibly a CLI string) into the field's type, or say why it cannot be."""
    origin = typing.get_origin(ftype)
    if origin in (typing.Union, types.UnionType):  # X | None: "none" (or nothing) is None, else an X
        if value is None or str(value).strip().lower() in ("", "none", "null"):
            return None
        (ftype,) = [a for a in typing.get_args(ftype) if a is not type(None)]
        return _coerce(value, ftype, name)
    try:
        if origin is tuple:
            (item,) = [a for a in typing.get_args(ftype) if a is not Ellipsis]
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip() != ""]
            return tuple(_coerce(v, item, name) for v in value)
        if ftype is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if ftype is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if ftype is float:
            return float(value)
        if ftype is str:
            return str(value).strip()
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{name}={value!r} is not a valid {getattr(ftype, '__name__', ftype)}")


def override(config: ExperimentConfig, assignments: list[str]) -> ExperimentConfig:
    """Apply 'key=value' strings (dotted keys, e.g. 'train.lr=0.01') to a config."""
    d = config.to_dict()
    for item in assignments:
        _check("=" in item, f"--set {item!r} must look like key=value, e.g. train.lr=0.01")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        target, cls = d, ExperimentConfig
        for part in parts[:-1]:
            _check(part in target and isinstance(target[part], dict),
                   f"--set {key!r}: {part!r} is not a settings group; groups: data, model, train, prune")
            cls = _field_type(cls, part)
            target = target[part]
        leaf = parts[-1]
        _check(leaf in target and not isinstance(target[leaf], dict),
               f"--set {key!r} names no setting; settings here: {', '.join(k for k in target if not isinstance(target[k], dict))}")
        target[leaf] = _coerce(value, _field_type(cls, leaf), key)
    return ExperimentConfig.from_dict(d)
