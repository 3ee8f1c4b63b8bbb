"""What makes a run of your own model and data the same run: the identity find_ticket hashes.

Everything that can change the numbers enters it: the code of every module class in the model
(its source and the source of the functions of its file it calls, or for torch's own classes
their name), the code of the factory and init function, the parameter and buffer names, shapes,
dtypes and initial values (of the network seed 0 starts from), the pruned names, and the data.
Change any and the run is new; change none and it is reused and resumed.

Where a source cannot be read (a class typed into an interactive session), its functions'
bytecode stands in for it; that misses a change to code it calls outside its class, so reusing
such a run is said aloud (`Fingerprint.complete`).
"""

import hashlib
import inspect
import types
from dataclasses import dataclass

import torch
from torch import nn

LIBRARIES = ("torch.", "lottery.")  # versioned by their packages: named, not read


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    complete: bool  # every piece of code was read from its source
    unread: tuple[str, ...] = ()  # what was fingerprinted by its bytecode only


def tensors(*values) -> str:
    """A digest of tensors (and of anything else, by its text)."""
    h = hashlib.sha256()
    for v in values:
        if isinstance(v, torch.Tensor):
            h.update(str((v.dtype, tuple(v.shape))).encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
        else:
            h.update(str(v).encode())
    return h.hexdigest()[:16]


def _bytecode(code: types.CodeType) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        parts.append(_bytecode(const) if isinstance(const, types.CodeType) else repr(const).encode())
    return b"".join(parts)


def _functions_of(obj) -> list:
    """A class's own functions (its methods as written), or a function itself."""
    if isinstance(obj, type):
        return [f for f in vars(obj).values() if isinstance(f, types.FunctionType)]
    return [obj] if isinstance(obj, types.FunctionType) else []


def _functions_called(obj) -> list:
    """The plain functions of `obj`'s own module that its code names (one level deep)."""
    module = inspect.getmodule(obj)
    names = {n for f in _functions_of(obj) for n in f.__code__.co_names}
    found = [getattr(module, n, None) for n in sorted(names)] if module else []
    return [f for f in found if isinstance(f, types.FunctionType) and f.__module__ == getattr(module, "__name__", None)]


def code(obj, seen: set | None = None) -> tuple[str, bool]:
    """(digest, read from source) of a class or function: its source and that of the functions of
    its module it calls; torch's and lottery's own by name; bytecode where no source is at hand."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return "", True
    seen.add(id(obj))
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    if name.startswith(LIBRARIES):
        return name, True
    h, complete = hashlib.sha256(name.encode()), True
    try:
        if getattr(obj, "__name__", "") == "<lambda>":
            # a lambda's source is the whole statement around it (`find_ticket(lambda: Net(), levels=5)`):
            # its bytecode is the lambda alone
            h.update(_bytecode(obj.__code__))
        else:
            h.update(inspect.getsource(obj).encode())
    except (OSError, TypeError):  # typed into an interactive session: no file to read
        complete = False
        for f in _functions_of(obj):
            h.update(_bytecode(f.__code__))
    for f in _functions_called(obj):
        digest, read = code(f, seen)
        h.update(digest.encode())
        complete &= read
    return h.hexdigest()[:16], complete


def model(template: nn.Module, prunable: list[str], *functions) -> Fingerprint:
    """The identity of a model as `template` (seed 0's network) shows it, with the code of the
    factory and init function that made it (`functions`, None where not given)."""
    h, unread = hashlib.sha256(), []
    for obj in sorted({type(m) for m in template.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}") + \
            [f for f in functions if f is not None]:
        digest, read = code(obj)
        h.update(digest.encode())
        if not read:
            unread.append(getattr(obj, "__qualname__", repr(obj)))
    h.update(repr(prunable).encode())
    h.update(tensors(*[v for n, t in template.state_dict().items() for v in (n, t)]).encode())
    return Fingerprint(h.hexdigest()[:16], not unread, tuple(unread))
