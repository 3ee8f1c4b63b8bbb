import json
from dataclasses import replace

import pytest
import torch
from conftest import Counting, tiny_config

from lottery.analysis.table import table
from lottery.imp.driver import Experiment, RunOptions
from lottery.store import RunStore, Unit


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small IMP run with both controls and late rewinding (k = 7 steps)."""
    store = tmp_path_factory.mktemp("store")
    cfg = replace(tiny_config(), rewind_step="7")
    run_dir = Experiment(cfg, RunOptions(store=store)).run()
    return cfg, RunStore(run_dir)


def test_rewinding_restores_step_k_weights_bit_for_bit(finished):
    cfg, store = finished
    for seed in cfg.seeds:
        rewind = store.weights(Unit(0, "imp", seed), "rewind")
        dense_init = store.weights(Unit(0, "imp", seed), "init")
        assert any(not torch.equal(rewind[n], dense_init[n]) for n in rewind), "k=7 is not the initialisation"
        for level in range(1, cfg.levels + 1):
            unit = Unit(level, "imp", seed)
            init, mask = store.weights(unit, "init"), store.mask(unit)
            for n, w in init.items():
                keep = mask.get(n, torch.ones_like(w, dtype=torch.bool))
                assert torch.equal(w[keep], rewind[n][keep])
                assert torch.all(w[~keep] == 0.0)


def test_rewound_levels_continue_from_step_k(finished):
    cfg, store = finished
    dense = json.loads((store.unit_dir(Unit(0, "imp", 0)) / "summary.json").read_text())
    for branch in ("imp", "reinit", "random_prune"):
        unit = Unit(1, branch, 0)
        summary = json.loads((store.unit_dir(unit) / "summary.json").read_text())
        assert summary["steps"] == dense["steps"] - 7, "T − k steps: the same budget for every branch"
        history = store.history(unit)
        assert history[0]["step"] == 7 and history[-1]["step"] == dense["steps"]
        assert summary["early_stop_step"] >= 7


def test_imp_prunes_the_previous_trained_ticket(finished):
    cfg, store = finished
    from lottery import pruning
    prev = Unit(0, "imp", 0)
    expected = pruning.magnitude(store.weights(prev, "final"), store.mask(prev), rate=0.2, output_rate=0.1)
    got = store.mask(Unit(1, "imp", 0))
    assert all(torch.equal(expected[n], got[n]) for n in got)


def test_reinit_has_same_mask_but_fresh_values_from_same_distribution(finished):
    cfg, store = finished
    for level in range(1, cfg.levels + 1):
        ticket, reinit = Unit(level, "imp", 0), Unit(level, "reinit", 0)
        mt, mr = store.mask(ticket), store.mask(reinit)
        assert all(torch.equal(mt[n], mr[n]) for n in mt)
        wt, wr = store.weights(ticket, "init"), store.weights(reinit, "init")
        dense = store.weights(Unit(0, "imp", 0), "init")
        for n in mt:
            assert not torch.equal(wt[n][mt[n]], wr[n][mr[n]])
            # same distribution: Glorot normal has a layer-dependent std; compare with the dense init
            ratio = wr[n][mr[n]].std() / dense[n].std()
            assert 0.8 < ratio < 1.2, f"{n}: reinit std ratio {ratio:.2f}"
    seeds = {json.loads((store.unit_dir(Unit(lv, "reinit", 0)) / "summary.json").read_text())["control_seed"]
             for lv in range(1, cfg.levels + 1)}
    assert len(seeds) == cfg.levels, "each level's control draws its own recorded seed"


def test_random_prune_keeps_per_layer_counts_and_original_values(finished):
    cfg, store = finished
    for level in range(1, cfg.levels + 1):
        mt, mr = store.mask(Unit(level, "imp", 1)), store.mask(Unit(level, "random_prune", 1))
        assert {n: int(m.sum()) for n, m in mt.items()} == {n: int(m.sum()) for n, m in mr.items()}
        assert any(not torch.equal(mt[n], mr[n]) for n in mt)
        rewind = store.weights(Unit(0, "imp", 1), "rewind")
        init = store.weights(Unit(level, "random_prune", 1), "init")
        assert all(torch.equal(init[n][mr[n]], rewind[n][mr[n]]) for n in mr)


def test_table_has_one_row_per_unit_and_the_documented_columns(finished):
    cfg, store = finished
    df = table(store)
    assert len(df) == len(cfg.seeds) * (1 + 3 * cfg.levels)
    for col in ("branch", "level", "seed", "fraction_remaining", "test_acc_end", "test_acc_early_stop",
                "early_stop_step", "train_seconds", "experiment", "density[1.weight]"):
        assert col in df.columns
    assert set(df.branch) == {"imp", "reinit", "random_prune"}
    assert (df.experiment == cfg.hash()).all()
    lv1 = df[df.level == 1]
    assert lv1.fraction_remaining.nunique() == 1, "controls sit at the ticket's sparsity"


def test_a_level_waits_for_the_ticket_of_the_level_before(tmp_path):
    """The driver offers an executor only units whose inputs are done: all of level 0 first, then
    a seed's level L once its level L−1 ticket is written."""
    executor = Counting()
    Experiment(tiny_config(), RunOptions(store=tmp_path), executor=executor).run()
    offered = [sorted({lv for lv, _, _ in g}) for g in executor.offers]
    assert offered == [[0], [1], [2]], offered


def test_rerun_reuses_finished_units_and_more_levels_extend(finished):
    cfg, store = finished
    executor = Counting()
    Experiment(cfg, RunOptions(store=store.run_dir.parent), executor=executor).run()
    assert executor.groups == [], "a finished run is reused, never recomputed"
    Experiment(replace(cfg, levels=cfg.levels + 1), RunOptions(store=store.run_dir.parent), executor=executor).run()
    assert executor.groups == [[(3, b, s) for s in cfg.seeds for b in cfg.branches]], \
        "one more level trains only that level, all its units as one group"
