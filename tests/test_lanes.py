"""Lanes (lottery.lanes): a group's seeds trained side by side in threads give what one program gives."""

import json
import threading

import pytest
import torch

from lottery.config import DataConfig, TrainConfig
from lottery.data import load_dataset
from lottery.lanes import lane_count, lane_slices, run_lanes
from lottery.train import train
from test_train import MemoryCheckpoint, replicate


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig("synthetic", 200))


def test_lane_count_gives_every_thread_a_lane_and_splits_evenly():
    assert lane_count(3, 2) == 3  # 3 seeds on 2 cores: 3 lanes the OS shares, not 2 + 1
    assert lane_count(16, 2) == 2 and lane_count(9, 2) == 3 and lane_count(4, 4) == 4
    assert lane_count(5, 2) == 5 and lane_count(8, 3) == 4
    assert lane_count(1, 2) == 1 and lane_count(6, 1) == 1  # one unit, or one thread: no lanes
    assert lane_count(3, 16) == 1  # fewer units than threads: one program on all of them
    assert lane_count(6, 1, requested=4) == 4 and lane_count(3, 2, requested=8) == 3 and lane_count(3, 2, 1) == 1


@pytest.mark.parametrize("streams,lanes", [(3, 3), (7, 2), (16, 5), (2, 2)])
def test_lane_slices_cover_the_streams_once(streams, lanes):
    slices = lane_slices(streams, lanes)
    assert [i for s in slices for i in range(streams)[s]] == list(range(streams))
    sizes = [s.stop - s.start for s in slices]
    assert len(slices) == lanes and max(sizes) - min(sizes) <= 1


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


def group(data, seeds=3, branches=2):
    pairs = [replicate(data, 10 * s + b, 100 + s) for s in range(seeds) for b in range(branches)]
    return pairs[0][0], [r for _, r in pairs]


def test_lanes_train_exactly_as_one_program(data):
    model, reps = group(data)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="0.5ep")
    threads = torch.get_num_threads()
    one = train(model, reps, data, cfg, lanes=1)
    three = train(model, reps, data, cfg, lanes=3)
    assert torch.get_num_threads() == threads, "the caller's thread count is restored"
    assert {r.extra["lanes"] for r in one} == {1} and {r.extra["lanes"] for r in three} == {3}
    for rep, a, b in zip(reps, one, three):
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
    model, reps = group(data, seeds=2, branches=2)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="3ep", eval_every="1ep")
    whole = train(model, reps, data, cfg, lanes=2)

    class Crash(Exception):
        pass

    def crash(step, total):
        if step == 11:
            raise Crash

    checkpoint = MemoryCheckpoint()
    with pytest.raises(Crash):
        train(model, reps, data, cfg, lanes=2, checkpoint=checkpoint, checkpoint_every=4, progress=crash)
    resumed = train(model, reps, data, cfg, lanes=2, checkpoint=checkpoint, checkpoint_every=4)
    assert resumed[0].extra["resumed_from_step"] == 8
    for a, b in zip(whole, resumed):
        for n in a.final:
            assert torch.equal(a.final[n], b.final[n]), n
        assert json.dumps(a.history) == json.dumps(b.history)


def test_one_seeds_branches_split_into_lanes_train_as_one_program(data):
    """Lanes over one seed's replicates run narrower products than the one program (a replicate
    each instead of all side by side), so the same numbers to float rounding, not bit for bit."""
    model, reps = group(data, seeds=1, branches=3)
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=40, length="2ep", eval_every="1ep")
    one, lanes = train(model, reps, data, cfg, lanes=1), train(model, reps, data, cfg, lanes=3)
    assert lanes[0].extra["lanes"] == 3
    for rep, a, b in zip(reps, one, lanes):
        for n in rep.init:
            torch.testing.assert_close(b.final[n], a.final[n], rtol=1e-5, atol=1e-6)
            if n in rep.mask:
                assert torch.all(b.final[n][~rep.mask[n]] == 0.0), f"{n}: a pruned weight moved in a lane"
        assert b.early_stop_step == a.early_stop_step
        for x, y in zip(a.history[1:], b.history[1:]):
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-5)
