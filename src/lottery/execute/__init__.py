"""Executors: where and how the units of an experiment train. The seam between the IMP driver,
which knows what each unit needs, and the machines that train them.

The driver is the only one that prepares units and writes results. It offers an executor its
`Work` (below): the units whose inputs are ready, as `Job`s, and takes finished ones back. An
executor trains them its own way (the local one: a level's units as one vectorised program on
this machine) and hands each result to `work.finish` as it comes; finishing a unit can make
others ready (a seed's level L needs its level L−1 ticket). It stops when nothing is ready and
nothing is in flight.

An executor may group, order and place units as it likes, and a unit's numbers do not depend on
it: they are a function of the unit's inputs, the training configuration and the device
(lottery.engine.options: independence).

    local.py  on this machine: a level's ready units as one vectorised program
    ray.py    Ray tasks, on this machine or a cluster; the driver stays the store's only writer
"""

from lottery.errors import ConfigError
from lottery.execute.local import LocalExecutor
from lottery.execute.ray import RayExecutor
from lottery.execute.work import Executor, Job, Reporter, Work

__all__ = ["EXECUTORS", "Executor", "Job", "LocalExecutor", "RayExecutor", "Reporter", "Work", "make"]

EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def make(name: str, **options) -> Executor:
    """The executor called `name`, made with its options (e.g. `make("local", vectorise=False)`)."""
    if name not in EXECUTORS:
        raise ConfigError(f"executor {name!r} is unknown; choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**options)
