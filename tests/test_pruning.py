import pytest
import torch

from lottery import pruning
from lottery.errors import ConfigError


def weights_and_mask(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = {"a.weight": torch.randn(30, 20, generator=g), "b.weight": torch.randn(10, 30, generator=g),
         "out.weight": torch.randn(5, 10, generator=g)}
    m = {n: torch.rand(t.shape, generator=g) > 0.3 for n, t in w.items()}
    return w, m


def test_layerwise_removes_exact_count_of_remaining_and_smallest_first():
    w, m = weights_and_mask()
    new = pruning.magnitude(w, m, rate=0.2, output_rate=0.1, scope="layerwise")
    for n, rate in (("a.weight", 0.2), ("b.weight", 0.2), ("out.weight", 0.1)):
        alive = int(m[n].sum())
        assert int(new[n].sum()) == alive - pruning.prune_count(alive, rate)
        assert not (new[n] & ~m[n]).any(), "pruning never revives a weight"
        removed = m[n] & ~new[n]
        assert w[n][removed].abs().max() <= w[n][new[n]].abs().min()


def test_global_one_threshold_output_layer_at_its_own_rate():
    w, m = weights_and_mask(1)
    new = pruning.magnitude(w, m, rate=0.3, output_rate=0.1, scope="global")
    pooled = ["a.weight", "b.weight"]
    alive = sum(int(m[n].sum()) for n in pooled)
    assert sum(int(new[n].sum()) for n in pooled) == alive - pruning.prune_count(alive, 0.3)
    out_alive = int(m["out.weight"].sum())
    assert int(new["out.weight"].sum()) == out_alive - pruning.prune_count(out_alive, 0.1)
    removed = torch.cat([w[n][m[n] & ~new[n]].abs() for n in pooled])
    kept = torch.cat([w[n][new[n]].abs() for n in pooled])
    assert removed.max() <= kept.min()
    # one threshold means the layers lose different fractions
    frac = [1 - int(new[n].sum()) / int(m[n].sum()) for n in pooled]
    assert frac[0] != frac[1]


def test_pure_and_deterministic_with_ties():
    w = {"l.weight": torch.ones(4, 5), "o.weight": torch.ones(2, 4)}
    m = {n: torch.ones_like(t, dtype=torch.bool) for n, t in w.items()}
    before = {n: t.clone() for n, t in m.items()}
    new = pruning.magnitude(w, m, rate=0.25, output_rate=0.5, scope="layerwise")
    assert all(torch.equal(m[n], before[n]) for n in m), "inputs are not mutated"
    # all scores tie: the lowest flat indices go first
    assert new["l.weight"].flatten().tolist() == [False] * 5 + [True] * 15
    assert new["o.weight"].flatten().tolist() == [False] * 4 + [True] * 4
    again = pruning.magnitude(w, m, rate=0.25, output_rate=0.5, scope="layerwise")
    assert all(torch.equal(new[n], again[n]) for n in new)



def test_selection_removes_exactly_what_a_stable_sort_would():
    """The O(n) selection path: same mask as sorting the kept scores (ties by flat index)."""
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        scores = torch.randint(0, 6, (7, 9), generator=g).float()  # few values: many ties
        mask = torch.rand(7, 9, generator=g) < 0.7
        alive = mask.flatten().nonzero().squeeze(1)
        for k in (1, len(alive) // 3, len(alive) - 1, len(alive)):
            want = mask.clone()
            want.view(-1)[alive[torch.sort(scores.flatten()[alive], stable=True).indices[:k]]] = False
            got = pruning.prune_layerwise({"w": scores}, {"w": mask}, {"w": k / len(alive)})["w"]
            assert int(got.sum()) == len(alive) - k
            assert torch.equal(got, want), (trial, k)


def test_random_like_keeps_per_layer_counts_and_depends_on_seed():
    _, m = weights_and_mask(2)
    r1 = pruning.random_like(m, torch.Generator().manual_seed(5))
    r2 = pruning.random_like(m, torch.Generator().manual_seed(6))
    for n in m:
        assert int(r1[n].sum()) == int(m[n].sum()) == int(r2[n].sum())
    assert any(not torch.equal(r1[n], m[n]) for n in m)
    assert any(not torch.equal(r1[n], r2[n]) for n in m)


def test_prune_count_rounds_half_up_and_caps():
    assert pruning.prune_count(10, 0.25) == 3
    assert pruning.prune_count(235200, 0.2) == 47040
    assert pruning.prune_count(3, 0.99) == 3


def test_n_of_m_keeps_the_largest_n_in_every_group_exactly():
    from lottery.pruning.nm import keep_n_of_m, satisfies

    torch.manual_seed(0)
    w = torch.randn(6, 16)
    for n, m in ((2, 4), (4, 8), (1, 4)):
        mask = keep_n_of_m(w.abs(), torch.ones_like(w, dtype=torch.bool), n, m)
        assert satisfies(mask, n, m) and int(mask.sum()) == w.numel() * n // m, "exactly N of every M"
        groups, kept = w.abs().reshape(-1, m), mask.reshape(-1, m)
        assert bool((groups[kept].reshape(-1, n).min(1).values >= groups.masked_fill(kept, -1).max(1).values).all())
    partial = torch.ones(4, 8, dtype=torch.bool)
    partial[:, ::2] = False  # 4 of every 8 dead already
    assert torch.equal(keep_n_of_m(torch.rand(4, 8), partial, 4, 8), partial), "groups at N or fewer keep theirs"
    odd = keep_n_of_m(torch.rand(3, 10), torch.ones(3, 10, dtype=torch.bool), 2, 4)
    assert satisfies(odd, 2, 4) and odd.sum(1).tolist() == [6, 6, 6], "a short last group (2 of 10) keeps its 2"
    assert odd[:, 8:].all()


def test_n_of_m_magnitude_keeps_the_largest_or_with_invert_the_smallest():
    torch.manual_seed(1)
    w = {"fc.weight": torch.randn(5, 8)}
    full = {"fc.weight": torch.ones(5, 8, dtype=torch.bool)}
    largest = pruning.magnitude(w, full, rate=0.2, output_rate=0.1, scope="nm", nm_group=4)["fc.weight"]
    smallest = pruning.magnitude(w, full, rate=0.2, output_rate=0.1, scope="nm", nm_group=4, invert=True)["fc.weight"]
    groups = w["fc.weight"].abs().reshape(-1, 4)
    assert torch.equal(~largest.reshape(-1, 4), groups == groups.min(1, keepdim=True).values), "3:4 drops each smallest"
    assert torch.equal(~smallest.reshape(-1, 4), groups == groups.max(1, keepdim=True).values), "inverted: each largest"


def test_imp_with_n_of_m_structure_stays_n_of_m_through_training(tmp_path):
    """Each IMP level keeps one fewer of every M (3:4, 2:4, 1:4); the trained weights, and the
    one-shot masks beside them, keep the structure exactly."""
    from dataclasses import replace

    from conftest import tiny_config

    from lottery.config import PruneConfig
    from lottery.imp.driver import Experiment, RunOptions
    from lottery.pruning.nm import satisfies
    from lottery.store import RunStore, Unit

    cfg = replace(tiny_config(), prune=PruneConfig(scope="nm", nm_group=4), levels=3, seeds=(0,),
                  branches=("imp", "oneshot"))
    store = RunStore(Experiment(cfg, RunOptions(store=tmp_path)).run())
    for level in (1, 2, 3):
        for branch in ("imp", "oneshot"):
            unit = Unit(level, branch, 0)
            mask, final = store.mask(unit), store.weights(unit, "final")
            for name, m in mask.items():
                assert satisfies(m, 4 - level, 4), (branch, level, name)
                assert satisfies(final[name] != 0, 4 - level, 4), "training kept the structure"
        assert store.summary(Unit(level, "imp", 0))["fraction_remaining"] == pytest.approx((4 - level) / 4, abs=0.02)
    with pytest.raises(ConfigError, match="has 3 levels"):
        Experiment(replace(cfg, levels=4), RunOptions(store=tmp_path))
