from dataclasses import replace

import pytest
import torch
from conftest import Counting, tiny_config
from torch import nn

from lottery import pruning
from lottery.analysis.table import table
from lottery.imp.branches import BRANCHES
from lottery.imp.driver import Experiment, RunOptions
from lottery.pruning import scores
from lottery.store import RunStore, Unit


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def full_mask(model):
    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}


def test_snip_scores_are_abs_grad_times_weight():
    model = tiny_net()
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    s = scores.snip(model, params_of(model), full_mask(model), x, y)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    for n, p in model.named_parameters():
        if n.endswith("weight"):
            torch.testing.assert_close(s[n], (p.grad * p).abs())


def test_grasp_uses_the_hessian_gradient_product():
    model = tiny_net().double()  # float64: the finite-difference reference needs the precision
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    params, mask = params_of(model), full_mask(model)
    s = scores.grasp(model, params, mask, x, y, temperature=1.0)
    names = list(mask)

    def grad_at(ps):
        w = {n: t.clone().requires_grad_(n in mask) for n, t in ps.items()}
        loss = nn.functional.cross_entropy(torch.func.functional_call(model, w, (x,)), y)
        return dict(zip(names, torch.autograd.grad(loss, [w[n] for n in names])))
    g = grad_at(params)
    eps = 1e-3
    plus = grad_at({n: p + eps * g[n] if n in g else p for n, p in params.items()})
    minus = grad_at({n: p - eps * g[n] if n in g else p for n, p in params.items()})
    for n in names:
        hg = (plus[n] - minus[n]) / (2 * eps)  # finite-difference Hg
        torch.testing.assert_close(s[n], params[n] * hg, rtol=1e-5, atol=1e-8)


def test_synflow_needs_no_data_and_avoids_layer_collapse():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(50, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))
    with torch.no_grad():
        model[2].weight.mul_(0.02)  # one layer of small weights: global magnitude empties it
    params, mask = params_of(model), full_mask(model)
    keep = 60  # 0.1% of the 52,000 weights
    magnitude = pruning.keep_top_global({n: params[n].abs() for n in mask}, mask, keep)
    assert int(magnitude["2.weight"].sum()) == 0, "global magnitude collapses the small layer"
    sf = scores.synflow(model, params, mask, (50,), keep, rounds=100)  # no data argument at all
    assert sum(int(m.sum()) for m in sf.values()) == keep
    assert all(int(m.sum()) > 0 for m in sf.values()), "every layer keeps some weights"
    assert all(torch.equal(a, b) for a, b in zip(sf.values(), scores.synflow(model, params, mask, (50,), keep).values()))


@pytest.fixture(scope="module")
def branched(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    cfg = replace(tiny_config(), branches=("imp",), levels=2)
    Experiment(cfg, RunOptions(store=store)).run()
    return cfg, store


def test_branches_reuse_the_cached_dense_training(branched):
    cfg, store = branched
    executor = Counting()
    everything = replace(cfg, branches=tuple(BRANCHES))
    run_dir = Experiment(everything, RunOptions(store=store), executor=executor).run()
    trained = [len(g) for g in executor.groups]
    others = len(BRANCHES) - 1
    # levels 1 and 2 train only the new branches (fine-tuning in its own program: its own learning rate)
    assert sum(trained) == others * 2 * 2 and sorted(trained) == [2, 2, (others - 1) * 2, (others - 1) * 2]
    assert len(list((run_dir / "units" / "level_00").glob("*/seed_*"))) == 2, "one dense training per seed"
    df = table(RunStore(run_dir))
    assert set(df.branch) == set(BRANCHES)
    lv = df[df.level == 2]
    assert lv.fraction_remaining.round(9).nunique() == 1, "every branch sits at the ticket's sparsity"


def test_branch_masks_keep_the_defining_counts(branched):
    cfg, store = branched
    s = RunStore(next(store.glob("*")))
    for seed in cfg.seeds:
        for level in (1, 2):
            ticket = s.mask(Unit(level, "imp", seed))
            counts = {n: int(m.sum()) for n, m in ticket.items()}
            for branch in ("shuffle", "oneshot", "magnitude_init", "invert", "random_prune"):
                m = s.mask(Unit(level, branch, seed))
                assert {n: int(t.sum()) for n, t in m.items()} == counts, f"{branch} keeps per-layer counts"
            for branch in ("snip", "grasp", "synflow"):
                m = s.mask(Unit(level, branch, seed))
                assert sum(int(t.sum()) for t in m.values()) == sum(counts.values()), f"{branch} total"
            trained = s.weights(Unit(0, "imp", seed), "final")
            one = s.mask(Unit(level, "oneshot", seed))
            expected = pruning.keep_top_layerwise({n: trained[n].abs() for n in one},
                                                  {n: torch.ones_like(t) for n, t in one.items()}, counts)
            assert all(torch.equal(one[n], expected[n]) for n in one), "one-shot: straight from the dense weights"


def test_invert_keeps_the_smallest_trained_weights(branched):
    cfg, store = branched
    s = RunStore(next(store.glob("*")))
    inv = s.mask(Unit(1, "invert", 0))
    trained = s.weights(Unit(0, "imp", 0), "final")
    for n, m in inv.items():
        assert trained[n][m].abs().max() <= trained[n][~m].abs().min()


def test_find_cost_follows_each_branch_rule(branched):
    cfg, store = branched
    df = table(RunStore(next(store.glob("*"))))
    row = df.set_index(["branch", "level", "seed"])
    dense = row.loc[("imp", 0, 0)]
    assert row.loc[("imp", 2, 0)].find_flops == pytest.approx(dense.train_flops_effective + row.loc[("imp", 1, 0)].train_flops_effective)
    assert row.loc[("oneshot", 2, 0)].find_flops == pytest.approx(dense.train_flops_effective)
    assert row.loc[("random_prune", 2, 0)].find_flops == 0
    assert 0 < row.loc[("snip", 2, 0)].find_flops < dense.train_flops_effective, "one batch, not a training"


def test_lr_rewind_starts_from_trained_weights_and_replays_the_schedule(tmp_path):
    cfg = replace(tiny_config(schedule="step", milestones=("1ep",), gamma=0.1), branches=("imp", "lr_rewind", "finetune"),
                  levels=1, seeds=(0,))
    s = RunStore(Experiment(cfg, RunOptions(store=tmp_path)).run())
    trained = s.weights(Unit(0, "imp", 0), "final")
    mask = s.mask(Unit(1, "imp", 0))
    for branch in ("lr_rewind", "finetune"):
        init = s.weights(Unit(1, branch, 0), "init")
        assert all(torch.equal(init[n][mask[n]], trained[n][mask[n]]) for n in mask), f"{branch}: trained values"
    imp_lrs = [h["lr"] for h in s.history(Unit(1, "imp", 0))]
    assert [h["lr"] for h in s.history(Unit(1, "lr_rewind", 0))] == imp_lrs, "the schedule replayed"
    assert imp_lrs[0] == pytest.approx(3e-3) and imp_lrs[-1] == pytest.approx(3e-4)
    assert {h["lr"] for h in s.history(Unit(1, "finetune", 0))} == {imp_lrs[-1]}, "fine-tuning at the final rate"


def test_every_branch_runs_a_batchnorm_model(tmp_path):
    """Buffers flow through every branch: scores in eval mode (SynFlow's single all-ones example
    would fail BatchNorm in train mode), reinit with fresh statistics, rewinding them."""
    import lottery

    torch.manual_seed(0)
    x, test_x = torch.randn(300, 10), torch.randn(100, 10)
    y, test_y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long(), (test_x[:, 0] > 0).long() + 2 * (test_x[:, 1] > 0).long()
    def model():
        return nn.Sequential(nn.Linear(10, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    ticket = lottery.find_ticket(model, seeds=(0,), train=(x, y), test=(test_x, test_y), levels=1, branches=tuple(BRANCHES),
                                 store=tmp_path, length="20ep", batch_size=50, eval_every="5ep", lr=1e-2)
    results = ticket.results
    assert set(results.query("level == 1").branch) == set(BRANCHES)
    assert (results.test_acc_end > 0.6).all(), "every branch learns (chance is 0.25)"


def test_synflow_flows_through_weights_left_out_of_the_mask():
    model = tiny_net()
    params = params_of(model)
    only_first = {"1.weight": torch.ones(8, 6, dtype=torch.bool)}  # the last layer is not pruned
    mask = scores.synflow(model, params, only_first, (6,), keep=12, rounds=1)
    # the linearised net on an all-ones input: R = sum(|W3| |W1| 1), so score[i, j] = |W1[i, j]| * sum_k |W3[k, i]|
    expected = params["1.weight"].abs() * params["3.weight"].abs().sum(0)[:, None]
    assert torch.equal(mask["1.weight"], pruning.keep_top_global({"1.weight": expected}, only_first, 12)["1.weight"])
