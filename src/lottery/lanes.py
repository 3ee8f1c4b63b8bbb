"""Lanes: a group's data streams split into slices that train side by side, one thread each.

Why: with torch's own threads, every op of a step is split across the cores and they meet
after each one, a few dozen times a step. Lanes run whole single-threaded programs instead,
each over its own slice of the seeds (or of one seed's branches), and meet only where the
trainer needs the whole group (evaluations, snapshots, checkpoints). On the 2-core VM this was
built on (LeNet-300-100, batch 60; benchmarks/README.md): three seeds × three branches took 0.90
of a two-thread program's time while the host was quiet and 0.57-0.65 in its slow phases, in
which two-thread steps take twice as long and single-threaded ones do not change. One seed's
three branches, split a replicate a lane, were 1.06-1.10x slower while quiet (each loses the
wide first-layer product) and 0.56-0.65 in slow phases.

A lane owns a contiguous slice of every stacked tensor (parameters, gradients, masks,
optimiser state, the loss sum), so no two lanes write the same memory and no lock is needed.
Each lane's ops run on one thread: its numbers are reproducible, equal a one-program run to
float rounding, and bit for bit where the lane's products are the one program's (tests).
"""

import threading

import torch


def lane_count(units: int, threads: int, requested: int | None = None) -> int:
    """How many lanes for `units` seeds (or replicates of one seed) on `threads` threads.

    `requested` (None: automatic) is capped by the units. Automatically: lanes only when every
    thread gets one (fewer would leave cores idle: one program on all threads then), and the
    fewest that split the units evenly (3 on 2 cores: 3 lanes, which the OS shares fairly; 2 + 1
    left one core idle a third of the time, measured 1.08x slower than one program)."""
    if requested is not None:
        return max(1, min(requested, units))
    if threads < 2 or units < threads:
        return 1
    return next(n for n in range(threads, units + 1) if units % n == 0)


def lane_slices(streams: int, lanes: int) -> list[slice]:
    """`lanes` contiguous slices of range(streams), sizes differing by at most one."""
    base, extra = divmod(streams, lanes)
    bounds = [0]
    for i in range(lanes):
        bounds.append(bounds[-1] + base + (i < extra))
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def run_lanes(work: list) -> None:
    """Run `work[i](stop)` for every lane at once: the first in this thread, the others in
    threads of their own, each with torch on one thread. `stop` (a threading.Event) is set when
    any lane fails or this thread is interrupted; lanes check it between steps. Returns when all
    are done, raising the first failure."""
    stop, failures = threading.Event(), []
    saved = torch.get_num_threads()

    def lane(fn):
        torch.set_num_threads(1)
        try:
            fn(stop)
        except BaseException as e:  # handed to the caller's thread, which re-raises it
            failures.append(e)
            stop.set()

    helpers = [threading.Thread(target=lane, args=(fn,), name=f"lottery-lane-{i}", daemon=True)
               for i, fn in enumerate(work[1:], 1)]
    torch.set_num_threads(1)
    try:
        for t in helpers:
            t.start()
        work[0](stop)
    except BaseException:
        stop.set()
        raise
    finally:
        for t in helpers:
            t.join()
        torch.set_num_threads(saved)
    if failures:
        raise failures[0]
