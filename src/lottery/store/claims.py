"""Claims: which process trains a unit. One lock file a unit under the run's locks/ folder; a
process takes a unit with an exclusive, non-blocking flock, writes who it is into the file (for
`lottery status`), and releases it once the unit is written. A process that dies releases its
claims with it: the kernel drops its locks."""

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class Claims:
    """The claims of one run directory held by this process, keyed by anything with a `key`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._held: dict = {}  # unit → its open, locked lock file

    def _path(self, unit) -> Path:
        return self.folder / (unit.key.replace("/", "-") + ".lock")

    def take(self, unit, holder: dict | None = None) -> bool:
        """Take `unit` for this process (False: another holds it). Held until `release` or exit;
        `holder` (host, pid, node…) is written into the lock file for `lottery status`."""
        if unit in self._held:
            return True
        path = self._path(unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), **(holder or {})}))
        f.flush()
        self._held[unit] = f
        return True

    def note(self, unit, info: dict) -> None:
        """Add `info` (the node training it) to what the lock file of a unit this process holds says."""
        f = self._held.get(unit)
        if f is None:
            return
        f.seek(0)
        try:
            held = json.loads(f.read() or "{}")
        except json.JSONDecodeError:
            held = {}
        f.seek(0)
        f.truncate()
        f.write(json.dumps({**held, **info}))
        f.flush()

    def release(self, unit) -> None:
        f = self._held.pop(unit, None)
        if f is not None:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def release_all(self) -> None:
        for unit in list(self._held):
            self.release(unit)

    def holder(self, unit) -> dict | None:
        """Who trains `unit` now (None: nobody): what its claimant wrote in the lock file."""
        if unit in self._held:
            return {"host": socket.gethostname(), "pid": os.getpid()}
        path = self._path(unit)
        if not path.exists():
            return None
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    return json.loads(f.read() or "{}")
                except json.JSONDecodeError:
                    return {}
            fcntl.flock(f, fcntl.LOCK_UN)
        return None
