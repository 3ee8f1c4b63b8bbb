"""A ticket as one file: its weights, its mask and where it came from, loadable without the store.

    write(path, state, masks, info)        → bytes on disk
    read(path) → (state, masks, info)      checked (a truncated or altered file is refused)
    load(path, model=None) → nn.Module

A safetensors file (loading it never executes code) that shrinks with sparsity: a pruned tensor
is stored as its kept values, in row-major order, and its mask as bits (1 bit a weight, packed
eight to a byte); every other tensor (biases, BatchNorm statistics, unpruned layers) as it is.
At 3.6% of LeNet-300-100's weights that is 3.6% of the values plus 1/32 for the mask: about 7%
of the dense file. The header's metadata (`lottery.ticket`, JSON) holds the architecture (a
built-in model's name and the shapes it was built for), the provenance (run hash, level, seed,
branch, the accuracies the run measured, the configuration) and the tensors' shapes; the file's
own SHA-256 (lottery.atomic) is checked on every read.
"""

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lottery import atomic, models
from lottery.errors import ConfigError, StoreError
from lottery.sparse.masks import attach

FORMAT = 1
KEY = "lottery.ticket"


def _pack(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.reshape(-1).numpy().astype(np.uint8), bitorder="little"))


def _unpack(bits: torch.Tensor, shape) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(bits.numpy(), count=n, bitorder="little").astype(bool)).reshape(shape)


def write(path: Path, state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], info: dict) -> int:
    """Write the ticket; its size in bytes. `state`: every tensor of the model (parameters and
    buffers, pruned entries already 0.0 or not: only the kept ones are stored); `masks`: name →
    bool, True where kept; `info`: JSON-able provenance (`model`, `input_shape`, `num_classes` for
    a built-in model)."""
    data = encode(state, masks, info)
    atomic.write_bytes(Path(path), data)
    return len(data)


def encode(state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], info: dict) -> bytes:
    """The bytes of a ticket file (see `write`)."""
    tensors, shapes = {}, {}
    for name, t in state.items():
        t = t.detach().cpu()
        shapes[name] = list(t.shape)
        if name in masks:
            keep = masks[name].cpu().bool()
            tensors[f"mask.{name}"] = _pack(keep)
            tensors[f"values.{name}"] = t[keep].contiguous()  # row-major order of the kept entries
        else:
            tensors[f"dense.{name}"] = t.contiguous()
    meta = {"format": FORMAT, **info, "shapes": shapes, "pruned": list(masks)}
    return atomic.tensor_bytes(tensors, {KEY: json.dumps(meta, sort_keys=True)})


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(state, masks, info) of a ticket file; StoreError (one line) when it is not one or is damaged."""
    path = Path(path)
    try:
        tensors = atomic.read_tensors(path)
        meta = json.loads(atomic.read_metadata(path)[KEY])
    except atomic.DamagedFile as e:
        raise StoreError(f"ticket file {e.path}: {e.reason}; refusing it") from None
    except (KeyError, json.JSONDecodeError):
        raise StoreError(f"{path} is not a ticket file (no {KEY} metadata)") from None
    if meta.get("format", 0) > FORMAT:
        raise StoreError(f"{path} is a ticket of a newer format ({meta['format']}); upgrade lottery to read it")
    state, masks = {}, {}
    for name, shape in meta["shapes"].items():
        if name in meta["pruned"]:
            keep = _unpack(tensors[f"mask.{name}"], shape)
            values = tensors[f"values.{name}"]
            if int(keep.sum()) != values.numel():
                raise StoreError(f"ticket file {path}: {name}'s mask and values disagree; refusing it")
            full = torch.zeros(shape, dtype=values.dtype)
            full[keep] = values
            state[name], masks[name] = full, keep
        else:
            state[name] = tensors[f"dense.{name}"]
    return state, masks, meta


def load(path: Path, model: nn.Module | None = None, keep_mask: bool = True) -> nn.Module:
    """The ticket as a module: a built-in model rebuilt from the file alone, or `model` (your own
    class, as you construct it) given the ticket's tensors. With `keep_mask` the mask stays
    attached as torch.nn.utils.prune attaches one, so further training keeps pruned weights at
    0.0 (`lottery.bake` removes it); else plain weights with zeros where pruned."""
    state, masks, meta = read(path)
    if model is None:
        name = meta.get("model")
        if name not in models.MODELS:
            raise ConfigError(f"{path} holds a ticket of your own model ({meta.get('model_class', name)}): "
                              "pass model=YourModel() to load it into")
        module = models.build(name, tuple(meta["input_shape"]), int(meta["num_classes"]), 0)
    else:
        module = copy.deepcopy(model)
    have = {n: t.shape for n, t in module.state_dict().items()}
    wrong = [n for n, t in state.items() if n not in have or tuple(have[n]) != tuple(t.shape)]
    missing = [n for n in have if n not in state]
    if wrong or missing:
        raise ConfigError(f"the ticket does not fit this model: {', '.join((wrong + missing)[:4])} differ "
                          f"(the ticket's model: {meta.get('model_class', meta.get('model'))})")
    module.load_state_dict(state)
    return (attach(module, masks) if keep_mask else module).eval()


def from_store(store, unit, at_init: bool = False) -> tuple[dict, dict, dict]:
    """(state, masks, info) of a stored unit, for `write`: its trained weights, or with `at_init`
    its starting (rewound) ones, i.e. the ticket to train again."""
    from lottery.data import DATASETS

    if not store.is_done(unit):
        raise ConfigError(f"no finished unit {unit.key} in {store.run_dir}")
    cfg, summary = store.config(), store.summary(unit)
    source = DATASETS.get(cfg.data.dataset)
    info = {"model": cfg.model.name, "input_shape": list(source.input_shape) if source else None,
            "num_classes": source.num_classes if source else None, "run": store.run_dir.name,
            "level": unit.level, "seed": unit.seed, "branch": unit.branch, "trained": not at_init,
            "fraction_remaining": summary.get("fraction_remaining"),
            "test_acc_early_stop": summary.get("test_acc_early_stop"), "test_acc_end": summary.get("test_acc_end"),
            "config": cfg.hashed_dict()}
    return store.weights(unit, "init" if at_init else "final"), store.mask(unit), info
