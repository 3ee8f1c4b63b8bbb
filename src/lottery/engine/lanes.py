"""Lanes: a group's trainings split into single-threaded programs that run side by side.

Why: with torch's own threads, every op of a step is split across the cores and they meet
after each one, a few dozen times a step. Lanes run whole single-threaded programs instead, one
lane per thread, each over its share of the units (the seeds, or one seed's branches), and
meet only where the trainer needs the whole group (evaluations, snapshots, checkpoints). Units
that do not divide evenly are cut by McNaughton's wrap-around rule (`schedule`), so every lane
does the same work (measurements: docs/engine.md).

Lanes are threads of one process: what lets them run side by side is that their steps run
without Python's lock, compiled (engine/scripted.py); from Python, lanes of small models spend
their time queueing for it. So only stacks whose step is a fixed list of kernels run in lanes.

A program owns a contiguous slice of every stacked tensor (parameters, gradients, masks,
optimiser state, the loss sum), so no two lanes write the same memory and no lock is needed.
Its ops run on one thread. Where the engine keeps units independent of their layout
(lottery.engine.options), every unit computes on one thread wherever it runs, so a lane's numbers
equal the unit's alone, bit for bit (tests); otherwise they equal a one-program run to float
rounding.
"""

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import torch


def lane_count(units: int, threads: int, requested: int | None = None, one_thread: bool = False) -> int:
    """How many lanes for `units` seeds (or replicates of one seed) on `threads` threads.

    `requested` (None: automatic) is capped by the units. Automatically: one lane per thread, up
    to the units, when every unit computes on one thread (`one_thread`: lottery.engine.options,
    independence); otherwise lanes only when there are at least as many units as threads (fewer
    would leave cores idle: then one program on all threads). `schedule` balances units that do
    not divide evenly."""
    if requested is not None:
        return max(1, min(requested, units))
    if one_thread:
        return max(1, min(threads, units))
    return threads if 2 <= threads <= units else 1


@contextmanager
def one_thread(enabled: bool = True):
    """torch on one thread in this block (each lane sets its own: `run_lanes`)."""
    saved = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if enabled:
            torch.set_num_threads(saved)


@dataclass(frozen=True)
class Piece:
    """Units [first, last) of a group, from fraction `begin` to `end` of a span's steps."""

    first: int
    last: int
    begin: Fraction = Fraction(0)
    end: Fraction = Fraction(1)


def schedule(units: int, lanes: int) -> list[list[Piece]]:
    """Each lane's pieces, in the order it runs them, with every lane given units / lanes of the
    work: McNaughton's wrap-around rule. Laid end to end, the units fill the lanes in turn; a unit
    cut at a lane boundary has its first part run *first* on the later lane and the rest run *last*
    on the earlier one, so a unit's steps keep their order (units ≥ lanes makes the parts' times
    disjoint; `run` still waits for the first part, as lanes do not run at exactly equal speeds).

    3 seeds on 2 lanes: lane 0 runs seed 1's first half, then seed 0; lane 1 runs seed 2, then
    seed 1's second half. More lanes than cores, the OS sharing them, ran slower (docs/engine.md)."""
    if not 1 <= lanes <= units:
        raise ValueError(f"{lanes} lanes for {units} units: need 1 ≤ lanes ≤ units")
    share = Fraction(units, lanes)
    plan = []
    for lane in range(lanes):
        lo, hi = lane * share, (lane + 1) * share
        head, whole, rest = [], [], []
        for u in range(math.floor(lo), min(units, math.ceil(hi))):
            begin, end = max(lo - u, Fraction(0)), min(hi - u, Fraction(1))
            if begin == end:
                continue
            if begin > 0:
                rest.append(Piece(u, u + 1, begin, end))  # continues a unit begun on the previous lane
            elif end < 1:
                head.append(Piece(u, u + 1, begin, end))  # begins a unit the next lane finishes
            else:
                whole.append(u)
        if whole:
            whole = [Piece(whole[0], whole[-1] + 1)]  # contiguous: one program
        plan.append(head + whole + rest)
    return plan


def run_span(plan: list[list[Piece]], programs: dict, start: int, end: int, lrs: list[float],
             steps_per_call: int, progress=None, total: int = 0) -> None:
    """Steps `start` … `end` − 1 of every unit of a group: each lane runs its pieces (`schedule`)
    in a thread of its own, `steps_per_call` steps a call to its program (`programs[(first, last)]`,
    a lottery.engine.step.TrainStep); one lane runs in this thread. The first lane reports its
    progress as `progress(step, total)` between calls. A unit's second part waits until another
    lane has run its first part, so its steps keep their order."""
    span = end - start
    first_parts_done = {(p.first, p.last): threading.Event() for pieces in plan for p in pieces if p.end < 1}

    def lane(pieces, report):
        # one boundary per cut unit, computed the same way for both of its parts
        bounds = [(start + round(p.begin * span), start + round(p.end * span)) for p in pieces]
        work = max(1, sum(b - a for a, b in bounds))

        def run(stop=None):
            done = 0
            for p, (a, b) in zip(pieces, bounds):
                if p.begin > 0:  # the rest of a unit another lane began: wait until it has
                    while not first_parts_done[(p.first, p.last)].wait(0.01):
                        if stop is not None and stop.is_set():
                            return
                program = programs[(p.first, p.last)]
                for t in range(a, b, steps_per_call):
                    if stop is not None and stop.is_set():
                        return
                    stop_at = min(b, t + steps_per_call)
                    program.steps(t, stop_at, lrs)
                    done += stop_at - t
                    if report and progress:
                        progress(start + done * span // work, total)
                if p.end < 1:
                    first_parts_done[(p.first, p.last)].set()
        return run

    if len(plan) == 1:
        lane(plan[0], True)()
    else:
        run_lanes([lane(pieces, i == 0) for i, pieces in enumerate(plan)])


def run_lanes(work: list) -> None:
    """Run `work[i](stop)` for every lane at once: the first in this thread, the others in
    threads of their own, each with torch on one thread. `stop` (a threading.Event) is set when
    any lane fails or this thread is interrupted; lanes check it between steps. Returns when all
    are done, raising the first failure."""
    stop, failures = threading.Event(), []

    def lane(fn):
        torch.set_num_threads(1)
        try:
            fn(stop)
        except BaseException as e:  # handed to the caller's thread, which re-raises it
            failures.append(e)
            stop.set()

    helpers = [threading.Thread(target=lane, args=(fn,), name=f"lottery-lane-{i}", daemon=True)
               for i, fn in enumerate(work[1:], 1)]
    with one_thread():
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
    if failures:
        raise failures[0]
