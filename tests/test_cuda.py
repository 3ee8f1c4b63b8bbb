"""The engine on a CUDA device: the same training as on the CPU, each engine. Skipped without a GPU
(CI has none); run where one is: `python -m pytest -q tests/test_cuda.py`."""

import gc
import math

import pytest
import torch
from conftest import batchnorm_replicate, crash_and_resume, replicate, train

from lottery import engine
from lottery.config import TrainConfig
from lottery.engine.schedule import DataOrder

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CFG = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="2ep", eval_every="1ep")


def trainer(model, reps, data, cfg, **options):
    group = engine.Group(model, reps, data, cfg)
    return engine.Trainer(group, engine.plan(model, group.example(), engine.Options(device="cuda", **options)))


def assert_same_training(on_cpu, on_gpu, rtol, atol):
    for a, b in zip(on_cpu, on_gpu):
        for n in a.final:
            assert b.final[n].device.type == "cpu", "results come back to the CPU"
            torch.testing.assert_close(b.final[n], a.final[n], rtol=rtol, atol=atol)
        assert [h["step"] for h in a.history] == [h["step"] for h in b.history]
        for ha, hb in zip(a.history, b.history):
            assert hb["val_loss"] == pytest.approx(ha["val_loss"], rel=1e-3, abs=1e-4)


def test_data_order_is_the_same_on_every_device():
    cpu, gpu = DataOrder(1000, 60, [3, 4]), DataOrder(1000, 60, [3, 4]).to("cuda")
    for step in (0, 5, 16, 17, 40):
        assert gpu.indices(step).device.type == "cuda"
        assert torch.equal(cpu.indices(step), gpu.indices(step).cpu())


def test_mlp_group_on_cuda_equals_the_cpu_run(data):
    pairs = [replicate(data, s, data_seed) for s, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model, reps = pairs[0][0], [r for _, r in pairs]
    on_cuda = trainer(model, reps, data, CFG)
    assert on_cuda.params[next(iter(on_cuda.params))].device.type == "cuda"
    on_gpu = on_cuda.run()
    on_cpu = train(model, reps, data, CFG)
    assert_same_training(on_cpu, on_gpu, rtol=1e-3, atol=1e-4)
    for rep, res in zip(reps, on_gpu):
        for n, m in rep.mask.items():
            assert torch.all(res.final[n][~m] == 0.0), f"{n}: a pruned weight moved on the GPU"


def test_vmap_group_with_batchnorm_on_cuda_equals_the_cpu_run(data):
    pairs = [batchnorm_replicate(data, s, d, dropout=False) for s, d in ((0, 10), (1, 10), (2, 11))]
    model, reps = pairs[0][0], [r for _, r in pairs]
    on_gpu = train(model, reps, data, CFG, device="cuda", stack="vmap")
    on_cpu = train(model, reps, data, CFG, stack="vmap")
    assert_same_training(on_cpu, on_gpu, rtol=1e-3, atol=1e-4)
    assert all(r.final["2.num_batches_tracked"].item() == r.steps for r in on_gpu)


def test_dropout_units_on_cuda_train_the_same_alone_as_together_and_resume_exactly(data):
    pairs = [batchnorm_replicate(data, s, d, noise) for s, d, noise in ((0, 10, 5), (1, 10, 6))]
    model = pairs[0][0]
    together = train(model, [r for _, r in pairs], data, CFG, device="cuda")
    for (_, rep), joint in zip(pairs, together):
        (alone,) = train(model, [rep], data, CFG, device="cuda")
        for n in rep.init:
            torch.testing.assert_close(joint.final[n], alone.final[n], rtol=1e-5, atol=1e-6)
        for n, m in rep.mask.items():
            assert torch.all(joint.final[n][~m] == 0.0)
    rep = pairs[0][1]
    resumed = crash_and_resume(model, rep, data, CFG, crash_at=7, every=5, device="cuda")
    for n in rep.init:
        torch.testing.assert_close(resumed.final[n], together[0].final[n], rtol=1e-5, atol=1e-6)


def test_an_experiment_runs_on_cuda_and_records_it(tmp_path):
    from lottery.config import DataConfig, ExperimentConfig, ModelConfig
    from lottery.imp.branches import level_units
    from lottery.imp.driver import Experiment, RunOptions
    from lottery.store import RunStore

    cfg = ExperimentConfig(data=DataConfig("synthetic", 200), model=ModelConfig("mlp_small"), train=CFG,
                           levels=2, seeds=(0, 1))
    gpu = RunStore(Experiment(cfg, RunOptions(store=str(tmp_path / "gpu"), engine=engine.Options(device="cuda"))).run())
    cpu = RunStore(Experiment(cfg, RunOptions(store=str(tmp_path / "cpu"))).run())
    finished = gpu.invocations()[-1]
    assert finished["event"] == "finished" and finished["device"].startswith("cuda") and finished["cuda_graphs"]
    by_unit = lambda store: {(s["level"], s["branch"], s["seed"]): s for s in store.summaries()}  # noqa: E731
    on_gpu, on_cpu = by_unit(gpu), by_unit(cpu)
    assert on_gpu.keys() == on_cpu.keys() and len(on_gpu) == 1 * 2 + 2 * 3 * 2
    for key, s in on_gpu.items():
        assert s["fraction_remaining"] == on_cpu[key]["fraction_remaining"]
        # different hardware: the runs drift apart at the float level, yet must learn alike
        assert abs(s["test_acc_end"] - on_cpu[key]["test_acc_end"]) < 0.05, key
    for unit in (u for level in range(3) for u in level_units(cfg, level)):
        final, mask = gpu.weights(unit, "final"), gpu.mask(unit)
        assert all(torch.all(final[n][~m] == 0.0) for n, m in mask.items()), unit


# rates exact in float32 (the graph reads its rate from a float32 tensor, the eager loop a double):
# the warm-up changes the rate every step, so each replay must read the current one
@pytest.mark.parametrize("opt", [
    dict(optimizer="adam", lr=1 / 64, warmup="8"),
    dict(optimizer="sgd", lr=1 / 16, momentum=0.9, nesterov=True, weight_decay=1e-3, schedule="step",
         milestones=("3ep",), gamma=0.5),
])
def test_the_replayed_cuda_graph_trains_exactly_like_the_eager_loop(data, opt):
    cfg = TrainConfig(batch_size=40, length="6ep", eval_every="1ep", **opt)
    pairs = [replicate(data, s, data_seed) for s, data_seed in ((0, 10), (1, 10), (2, 11), (3, 11))]
    model, reps = pairs[0][0], [r for _, r in pairs]
    graphed = trainer(model, reps, data, cfg)
    replayed = graphed.run()
    assert graphed.graphed is not None and graphed.graphed.graph is not None, "the MLP engine on CUDA replays a graph"
    eager = train(model, reps, data, cfg, device="cuda", cuda_graphs=False)
    for a, b in zip(eager, replayed):
        for n in a.final:
            assert torch.equal(a.final[n], b.final[n]), n
        losses = [h["train_loss"] for h in a.history], [h["train_loss"] for h in b.history]
        assert math.isnan(losses[0][0]) and math.isnan(losses[1][0]), "no training before the first evaluation"
        assert losses[0][1:] == losses[1][1:]
        assert a.test_acc_early_stop == b.test_acc_early_stop


def test_a_graphed_run_resumes_exactly(data):
    model, rep = replicate(data, 0, 10)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, batch_size=40, length="5ep", eval_every="1ep")
    (whole,) = train(model, [rep], data, cfg, device="cuda")
    resumed = crash_and_resume(model, rep, data, cfg, crash_at=11, every=10, device="cuda")  # capture, crash, capture again
    for n in rep.init:
        assert torch.equal(resumed.final[n], whole.final[n]), n


def test_freeing_an_earlier_graph_cannot_void_a_later_capture():
    """Trainers live in reference cycles, so their graphs are freed by the garbage collector, at
    whatever allocation it runs: inside another capture that is a forbidden CUDA call and the capture
    fails (seen: `benchmarks/replicates.py` on an H200). Here the earlier graph becomes garbage in
    the middle of the later capture, and the collector runs there if it may, as it would."""
    from lottery.engine.cuda_graph import WARMUP_STEPS, GraphedStep

    total, idx = torch.zeros(4, device="cuda"), torch.zeros(2, dtype=torch.long, device="cuda")

    def add(indices, lr):
        total.add_(lr)

    earlier = GraphedStep(add, idx)
    for _ in range(WARMUP_STEPS + 2):
        earlier(idx, 1.0)
    assert earlier.graph is not None
    cycle = [earlier]
    cycle.append(cycle)  # only the collector frees it, as it frees a trainer
    held = [cycle]
    del earlier, cycle

    def drop_then_add(indices, lr):
        if torch.cuda.is_current_stream_capturing():
            held.clear()  # the earlier graph is garbage now
            if gc.isenabled():
                gc.collect()  # as the automatic collector would, at some allocation
        total.add_(lr)

    later = GraphedStep(drop_then_add, idx)
    for _ in range(WARMUP_STEPS + 2):
        later(idx, 2.0)
    assert later.graph is not None and gc.isenabled(), "captured, and the collector is back on"
    torch.cuda.synchronize()
    assert torch.equal(total.cpu(), torch.full((4,), (WARMUP_STEPS + 2) * 3.0)), "every step ran once"


def test_lane_programs_on_cuda_before_a_run_give_the_one_graphed_program(data):
    model, rep = replicate(data, 0, 10)
    plan, programs = trainer(model, [rep], data, CFG).lane_programs()
    assert len(plan) == 1 and len(programs) == 1, "on a GPU the group is one program"
    assert next(iter(programs.values())).graphed is not None


def test_the_early_bird_search_trains_on_the_runs_device_with_its_graphs(tmp_path):
    import json

    from safetensors import safe_open

    from lottery.config import DataConfig, ExperimentConfig, ModelConfig
    from lottery.imp.driver import Experiment, RunOptions

    cfg = ExperimentConfig(data=DataConfig("synthetic", 200), model=ModelConfig("mlp_small"), train=CFG,
                           levels=1, seeds=(0,), branches=("imp", "early_bird"))
    for graphs in (True, False):
        options = RunOptions(store=tmp_path / str(graphs), engine=engine.Options(device="cuda", cuda_graphs=graphs))
        run_dir = Experiment(cfg, options).run()
        with safe_open(str(run_dir / "aux" / "early_bird-seed_0.safetensors"), framework="pt") as f:
            record = json.loads(f.metadata()["meta"])["engine"]
        assert record["device"].startswith("cuda") and record["cuda_graphs"] is graphs
