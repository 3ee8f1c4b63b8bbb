"""Content-addressed run directories: the config's hash names the directory.

    <store>/<hash>/config.json                    the hashed config (what makes the experiment)
    <store>/<hash>/units/level_03/imp/seed_0/     one training unit:
        mask.safetensors, init.safetensors, final.safetensors (rewind.safetensors at level 0)
        metrics.jsonl (one row per evaluation), summary.json,
        DONE (written last: the SHA-256 of every other file of the unit)
    <store>/<hash>/locks/                         one lock file per unit: who is training it
    <store>/<hash>/checkpoints/                   in-training checkpoints of unfinished groups
    <store>/<hash>/aux/                           by-products branches reuse (e.g. early-bird searches)
    <store>/<hash>/damaged/                       units set aside because a file failed its check
    <store>/<hash>/results.csv, accuracy.png      derived outputs, rebuilt from the units

Every file is written atomically and fsynced (lottery.atomic), and DONE is written last, so a
unit is either complete or absent no matter when the process dies. Nothing is trusted on read:
a unit counts as done only while every file matches the digest its DONE recorded, and a tensor
file is checked against the digest in its own header; a unit that fails is reported, moved to
damaged/ by the next process that trains it, and recomputed.

Several processes may work on one run at once (two invocations with different seeds, the same
command twice, an executor's workers): each unit is claimed with an exclusive lock on its own
lock file before it is trained and released once written, so no unit is trained twice at once
and a process that dies releases its claims with it.
"""

from lottery.store.checkpoint import Checkpoint
from lottery.store.run import FORMAT, RunStore, default_root
from lottery.store.unit import Unit

__all__ = ["Checkpoint", "FORMAT", "RunStore", "Unit", "default_root"]
