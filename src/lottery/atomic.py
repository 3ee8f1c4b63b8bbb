"""Files written whole or not at all, and read only when they are what was written.

Each file is written under a temporary name beside its target, flushed to disk (fsync), renamed
over the target, and the rename itself made durable by syncing the folder. A process killed at
any point leaves either the old file or the new one, plus at most a stray temporary file, named
after its host and process so that `remove_stale` can tell a dead writer's from a live one's.

Tensor files are safetensors (loading them never executes code) carrying the SHA-256 of their
tensor bytes in their own header: `read_tensors` recomputes it, so a truncated or altered file is
refused (`DamagedFile`), never used. Other files are checked against the digests their writer
recorded elsewhere (lottery.store: a unit's DONE manifest).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from lottery.errors import StoreError

if TYPE_CHECKING:  # torch loads when tensors are written or read, not when a store is listed
    import torch

DIGEST_KEY = "lottery.sha256"  # the header entry holding the digest of a tensor file's data
ORDER_KEY = "lottery.order"  # the tensors' names in the order given: safetensors sorts them its own way
_HOST = socket.gethostname().replace(".", "_")


class DamagedFile(StoreError):
    """A stored file that is not what was written: truncated, altered, unreadable or missing."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # a full disk or an interrupt leaves the old file and no debris
        if isinstance(e, OSError) and e.errno is not None:  # name the file asked for, not the temporary one
            raise type(e)(e.errno, e.strerror, str(path)) from None
        raise
    _sync_folder(path.parent)


def tensor_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file's bytes, its header carrying the digest of its tensor data."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    plain = save(tensors, metadata=metadata)
    data = plain[8 + int.from_bytes(plain[:8], "little"):]  # the same bytes whatever the header says
    return save(tensors, metadata={**(metadata or {}), DIGEST_KEY: digest(data), ORDER_KEY: json.dumps(list(tensors))})


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Write `tensors` (and string `metadata`) to `path`; returns the bytes written."""
    data = tensor_bytes(tensors, metadata)
    write_bytes(path, data)
    return data


def _split(path: Path, data: bytes) -> tuple[dict, bytes]:
    """(header, tensor data) of a safetensors file's bytes, checked against the header's digest."""
    if len(data) < 8:
        raise DamagedFile(path, f"truncated ({len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise DamagedFile(path, "truncated (its header runs past the end)")
    try:
        header = json.loads(data[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DamagedFile(path, "its header is not valid JSON (altered?)") from None
    if not isinstance(header, dict):
        raise DamagedFile(path, "its header is not a safetensors header")
    body = data[8 + size:]
    expected = (header.get("__metadata__") or {}).get(DIGEST_KEY)
    if expected is not None and digest(body) != expected:
        raise DamagedFile(path, "its tensor data fails its checksum (truncated or altered)")
    return header, body


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a file `write_tensors` wrote, in the order they were given (layer order
    matters: the last prunable layer is the output layer): DamagedFile when it is missing,
    truncated or altered (a file from before digests were recorded is parsed, unchecked)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    return tensors_from_bytes(path, data)


def tensors_from_bytes(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    """`read_tensors` on bytes already read from `path` (named in its errors)."""
    from safetensors.torch import load

    header, _ = _split(path, data)
    try:
        tensors = load(data)
    except Exception as e:  # safetensors' own errors: the header describes tensors the data lacks
        raise DamagedFile(path, f"not a readable tensor file ({str(e).splitlines()[0][:120]})") from None
    order = (header.get("__metadata__") or {}).get(ORDER_KEY)
    names = json.loads(order) if order else sorted(tensors)  # files from before the order was kept: by name
    if sorted(names) != sorted(tensors):
        raise DamagedFile(path, "its header's list of tensors does not match its tensors")
    return {n: tensors[n] for n in names}


def read_metadata(path: Path) -> dict[str, str]:
    """A safetensors file's metadata, read from its header alone (no tensor is loaded)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
    except FileNotFoundError:
        raise DamagedFile(path, "missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
        raise DamagedFile(path, "its header is not valid JSON (truncated or altered?)") from None
    return header.get("__metadata__", {}) if isinstance(header, dict) else {}


def remove_stale(folder: Path) -> int:
    """Delete the temporary files in `folder` (recursively) that this host's dead processes left;
    how many. Another host's, or a live process's, are left alone."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<host>.<pid>.tmp
        if len(parts) != 4 or parts[1] != _HOST or not parts[2].isdigit():
            continue
        if not _alive(int(parts[2])):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
