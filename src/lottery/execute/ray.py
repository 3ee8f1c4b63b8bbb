"""The Ray executor: an experiment's units as Ray tasks, on this machine or a cluster.

    lottery run lenet-mnist --executor ray                      # a local Ray instance
    lottery run lenet-mnist --executor ray --address HEAD:6379  # join a cluster (docs/cluster.md)

The work is a graph: a seed's level L needs its level L−1 ticket, the controls of a level need
that level's ticket. Whatever the driver makes ready goes out at once, one task per seed of a
level (that seed's branches share their batches: one program, as the local engine runs them),
each task asking for `cpus` CPUs (and a GPU when the run's device is CUDA) and training on that
many threads in a worker process of its own. As tasks finish, their units are written and the
units they unlock go out.

Artefacts travel back through Ray's object store and the driver is the only writer of the store:
a cluster needs no shared filesystem, and the store's guarantees (atomic, checksummed files, one
claim per unit) are the local ones. Workers keep no in-training checkpoints: a task whose worker
or node dies is retried by Ray from its start, and since a unit's numbers are a function of its
inputs alone (lottery.engine.options: independence), the retry ends with the same bits.

Progress: each task posts its steps to a small actor the driver reads, so the driver's display
covers every worker; each unit's claim records the node training it (`lottery status`).
"""

import socket
import time
from urllib.parse import urlparse

from lottery import engine
from lottery.errors import ConfigError, ExecutorError, LotteryError
from lottery.execute.work import Job, Work, group_of

RETRIES = 3  # a task's retries when its worker or node dies (a deterministic error is not retried)
POLL = 0.5  # seconds between the driver's looks at finished tasks and progress
CONNECT_SECONDS = 5.0


def _task_threads(cpus: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def train_task(template, data, train_config, augment, plan, jobs, progress, key, cpus):
    """One task: train `jobs` (start step, snapshots, rate mode shared) as one group; their results,
    in order, with the node that trained them."""
    import ray

    _task_threads(cpus)
    total = train_config.total_steps(len(data.train_x))
    node = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
    progress.post.remote(key, 0, total, None, node)
    last = [0.0]

    def report(step, _total, metrics=None):
        now = time.monotonic()
        if metrics is not None or now - last[0] > 1.0:
            last[0] = now
            progress.post.remote(key, step, total, metrics, node)

    results = engine.train(group_of(jobs, template, data, train_config, augment), plan, progress=report)
    return results, {"node": node, "host": socket.gethostname()}


class _Board:
    """The tasks' progress, posted by workers, read by the driver: key → (step, total, metrics, node)."""

    def __init__(self):
        self.posts = {}

    def post(self, key, step, total, metrics, node):
        self.posts[key] = (step, total, metrics, node)

    def read(self):
        return dict(self.posts)


def check_address(address: str) -> None:
    """Fail at once, in one line, when no Ray head answers at `address` (host:port or ray://host:port)."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port or 6379
    if not host:
        raise ConfigError(f"--address {address!r} is not an address; use HOST:PORT (the head's `ray start --head` port)")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            pass
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {host}:{port} ({e.strerror or e}); start one with "
                          "`ray start --head` there, or leave out --address for a local Ray instance") from None


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, cpus: int = 1, vectorise: bool = True):
        if cpus < 1:
            raise ConfigError(f"--cpus-per-task {cpus} must be at least 1")
        self.address, self.cpus, self.vectorise = address, cpus, vectorise
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("the Ray executor needs Ray: pip install 'lottery[ray]'") from None
        if address:
            check_address(address)

    def _start(self):
        import ray

        if ray.is_initialized():
            return ray, False
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            ray.init(**kwargs)
        return ray, True

    def tasks(self, jobs: list[Job]) -> list[list[Job]]:
        """The ready jobs as tasks: one per (level, rate mode, seed), or one per unit without vectorising."""
        by: dict[tuple, list[Job]] = {}
        for job in jobs:
            key = (job.unit.level, job.lr_mode, job.unit.seed) if self.vectorise else (job.unit,)
            by.setdefault(key, []).append(job)
        return list(by.values())

    def run(self, work: Work) -> None:
        ray, started = self._start()
        try:
            self._run(ray, work)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, work: Work) -> None:
        remote = ray.remote(max_retries=RETRIES, retry_exceptions=False)(train_task)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        # on the driver's node, restarted if lost: only the display depends on it, never the results
        board = ray.remote(num_cpus=0, max_restarts=-1)(_Board).options(scheduling_strategy=here).remote()
        gpus = 1 if work.plan.device.type == "cuda" else 0
        options = {"num_cpus": self.cpus, "num_gpus": gpus}
        shared = [ray.put(work.template), ray.put(work.train_data), work.train_config, work.augment, work.plan]
        in_flight: dict = {}  # object ref → (key, jobs)
        placed: set[str] = set()  # tasks whose node is noted in their units' claims
        total = work.train_config.total_steps(len(work.train_data.train_x))
        count = 0
        while True:
            for jobs in self.tasks(work.ready()):
                key = f"task-{count}"
                count += 1
                ref = remote.options(**options).remote(*shared, jobs, board, key, self.cpus)
                in_flight[ref] = (key, jobs)
                work.reporter.group(f"{len(in_flight)} task(s) on the cluster", total, sum(len(j) for _, j in in_flight.values()))
            if not in_flight:
                if not work.wait():
                    return
                continue
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL)
            self._progress(ray, board, in_flight, total, work, placed)
            for ref in done:
                key, jobs = in_flight.pop(ref)
                results, where = self._result(ray, ref)
                for job, result in zip(jobs, results):
                    result.extra.update(where)
                    work.finish(job, result)
                work.reporter.units_done(len(jobs))

    @staticmethod
    def _result(ray, ref):
        """A finished task's results; a user mistake raised in a worker as itself, a task lost for good
        (its retries spent) as one line."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            if isinstance(getattr(e, "cause", None), LotteryError):
                raise e.cause from None
            raise
        except ray.exceptions.RayError as e:
            raise ExecutorError(f"a Ray task was lost after {RETRIES} retries ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:160]}); every finished unit is kept: run the same "
                                "command again to resume") from None

    @staticmethod
    def _progress(ray, board, in_flight, total, work, placed: set) -> None:
        """The driver's display: the mean progress of the tasks in flight, and the latest metrics;
        and the node of each task that has started, noted with its units' claims."""
        try:
            posts = ray.get(board.read.remote(), timeout=POLL)
        except ray.exceptions.RayError:  # the board is being restarted: show nothing new this time
            return
        for key, jobs in in_flight.values():
            if key in posts and key not in placed:
                placed.add(key)
                work.running(jobs, {"node": posts[key][3]})
        mine = [posts[k] for k, _ in in_flight.values() if k in posts]
        if not mine:
            return
        step = sum(p[0] for p in mine) // len(mine)
        metrics = next((p[2] for p in reversed(mine) if p[2]), None)
        work.reporter.step(step, total, metrics)
