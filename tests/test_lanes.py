"""Lanes (engine/lanes.py): a group's seeds trained side by side in threads give what one program gives."""

import json
import threading
from fractions import Fraction

import pytest
import torch
from conftest import crash_and_resume_group, group, train

from lottery import engine
from lottery.config import TrainConfig
from lottery.engine.lanes import lane_count, run_lanes, schedule


def test_lane_count_gives_every_thread_a_lane_when_there_are_enough_units():
    assert lane_count(3, 2) == 2 and lane_count(16, 2) == 2 and lane_count(4, 4) == 4
    assert lane_count(1, 2) == 1 and lane_count(6, 1) == 1  # one unit, or one thread: no lanes
    assert lane_count(3, 16) == 1  # fewer units than threads: one program on all of them
    assert lane_count(6, 1, requested=4) == 4 and lane_count(3, 2, requested=8) == 3 and lane_count(3, 2, 1) == 1


@pytest.mark.parametrize("units,lanes", [(3, 2), (5, 2), (16, 2), (7, 3), (4, 3), (2, 2), (9, 4), (5, 5)])
def test_schedule_gives_each_lane_an_equal_share_and_keeps_each_units_steps_in_order(units, lanes):
    plan = schedule(units, lanes)
    assert len(plan) == lanes
    for pieces in plan:  # every lane does units / lanes of the work
        assert sum((p.last - p.first) * (p.end - p.begin) for p in pieces) == Fraction(units, lanes)
    covered = {u: [] for u in range(units)}
    for lane, pieces in enumerate(plan):
        clock = Fraction(0)  # where in its own timeline the lane runs each piece, at equal speeds
        for p in pieces:
            for u in range(p.first, p.last):
                covered[u].append((p.begin, p.end, lane, clock))
            clock += (p.last - p.first) * (p.end - p.begin)
    for u, parts in covered.items():
        parts.sort()
        assert parts[0][0] == 0 and parts[-1][1] == 1, f"unit {u} is not covered from start to end"
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:])), f"unit {u}: gaps or overlaps"
        assert len(parts) <= 2 and all(p[2] != q[2] for p, q in zip(parts, parts[1:]))
        if len(parts) == 2:  # its first part ends, at equal speeds, before the second part begins
            (b0, e0, _, t0), (_, _, _, t1) = parts
            assert t0 + (e0 - b0) <= t1
    with pytest.raises(ValueError):
        schedule(2, 3)


def test_a_failing_lane_stops_the_others_and_its_error_reaches_the_caller():
    steps_done = []

    def steady(stop):
        for i in range(10_000):
            if stop.is_set():
                break
            steps_done.append(i)
            stop.wait(0.001)

    def failing(stop):
        raise RuntimeError("lane 2 broke")

    with pytest.raises(RuntimeError, match="lane 2 broke"):
        run_lanes([steady, steady, failing])
    assert len(steps_done) < 2 * 10_000
    assert not any(t.name.startswith("lottery-lane") for t in threading.enumerate()), "helpers were joined"
    assert torch.get_num_threads() >= 1


def test_lanes_train_exactly_as_one_program(data):
    model, reps = group(data)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="0.5ep")
    threads = torch.get_num_threads()
    one = train(model, reps, data, cfg, lanes=1)
    two = train(model, reps, data, cfg, lanes=2)  # seed 1 cut in two: its second half waits for its first
    three = train(model, reps, data, cfg, lanes=3)
    assert torch.get_num_threads() == threads, "the caller's thread count is restored"
    assert {r.extra["lanes"] for r in one} == {1} and {r.extra["lanes"] for r in three} == {3}
    for rep, a, b in [*zip(reps, one, two), *zip(reps, one, three)]:
        for n in rep.init:
            # each lane's ops run on one thread: the same products as the one program, bit for bit
            torch.testing.assert_close(b.final[n], a.final[n], rtol=0, atol=0)
            if n in rep.mask:
                assert torch.all(b.final[n][~rep.mask[n]] == 0.0), f"{n}: a pruned weight moved in a lane"
        assert json.dumps(b.history) == json.dumps(a.history)  # losses and accuracies (NaN at step 0 too)
        assert b.test_acc_early_stop == a.test_acc_early_stop and b.early_stop_step == a.early_stop_step
    first_layer = next(iter(reps[0].mask))
    assert not torch.equal(three[0].final[first_layer], three[2].final[first_layer]), "seeds differ"


def test_lanes_resume_after_a_crash_as_if_never_interrupted(data):
    model, reps = group(data, seeds=3, branches=2)  # on two lanes: seed 1 is cut in two
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="1ep")
    whole = train(model, reps, data, cfg, lanes=2)
    resumed = crash_and_resume_group(model, reps, data, cfg, crash_at=11, every=4, lanes=2)  # resumes from step 8
    for a, b in zip(whole, resumed):
        for n in a.final:
            assert torch.equal(a.final[n], b.final[n]), n
        assert json.dumps(a.history) == json.dumps(b.history)


def test_one_seeds_branches_split_into_lanes_train_as_one_program(data):
    """Lanes over one seed's replicates run narrower products than the one program (a replicate
    each instead of all side by side), so the same numbers to float rounding, not bit for bit."""
    model, reps = group(data, seeds=1, branches=3)
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=40, length="2ep", eval_every="1ep")
    one, lanes = train(model, reps, data, cfg, lanes=1), train(model, reps, data, cfg, lanes=2)
    assert lanes[0].extra["lanes"] == 2
    for rep, a, b in zip(reps, one, lanes):
        for n in rep.init:
            torch.testing.assert_close(b.final[n], a.final[n], rtol=1e-5, atol=1e-6)
            if n in rep.mask:
                assert torch.all(b.final[n][~rep.mask[n]] == 0.0), f"{n}: a pruned weight moved in a lane"
        assert b.early_stop_step == a.early_stop_step
        for x, y in zip(a.history[1:], b.history[1:]):
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-5)


def test_lane_programs_are_the_pieces_the_lanes_run(data):
    """What benchmarks time as the lanes' work (Trainer.lane_programs) is what `run` steps:
    one seed's three branches on two lanes as one-replicate programs, each lane given 1.5 of them."""
    model, reps = group(data, seeds=1, branches=3)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="1ep", eval_every="1ep")

    def trainer(lanes):
        return engine.Trainer(engine.Group(model, reps, data, cfg),
                              engine.plan(model, (data.train_x[:2], data.train_y[:2]), engine.Options(lanes=lanes)))
    plan, programs = trainer(2).lane_programs()
    assert len(plan) == 2 and sorted(programs) == [(0, 1), (1, 2), (2, 3)]
    assert [sum(p.end - p.begin for p in pieces) for pieces in plan] == [Fraction(3, 2)] * 2
    for program in programs.values():
        assert all(t.shape[:2] == (1, 1) for t in program.params.values()), "a program holds one replicate"
    plan, programs = trainer(1).lane_programs()
    assert len(plan) == 1 and [tuple(t.shape[:2]) for t in next(iter(programs.values())).params.values()][0] == (1, 3)
