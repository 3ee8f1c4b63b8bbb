"""Instability analysis: the error barrier between two copies of a ticket trained with different SGD noise."""

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from torch import nn

from lottery.analysis.table import table
from lottery.analysis.verdict import verdicts
from lottery.cli import main
from lottery.imp.driver import Experiment, RunOptions
from lottery.imp.instability import barrier, error_path, interpolate
from lottery.store import RunStore, Unit


def state(model):
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


def test_a_network_interpolated_with_itself_has_no_barrier(data):
    torch.manual_seed(0)
    for model in (nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4)),
                  nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))):
        errors = error_path(model, state(model), state(model), data)
        assert len(errors) == 11 and len(set(errors)) == 1 and barrier(errors) == 0


def test_two_copies_of_one_function_can_be_separated_by_a_barrier(data):
    """A trained network and the same network with its hidden units permuted compute the same
    function, so the path's ends have equal error; halfway, the weights average to something
    else, and the error rises: a barrier only the interpolation shows."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.train_x), data.train_y).backward()
        opt.step()
    a = state(model)
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    b = {"0.weight": a["0.weight"][perm], "0.bias": a["0.bias"][perm], "2.weight": a["2.weight"][:, perm],
         "2.bias": a["2.bias"]}
    errors = error_path(model, a, b, data)
    assert errors[0] == errors[-1] and barrier(errors) > 0.05
    mid = interpolate(a, b, 0.5)
    assert torch.equal(mid["0.weight"], (a["0.weight"] + b["0.weight"]) / 2)


@pytest.fixture(scope="module")
def unstable_run(tmp_path_factory):
    cfg = replace(tiny_config(), branches=("imp", "reinit", "instability"), levels=2, seeds=(0, 1))
    return RunStore(Experiment(cfg, RunOptions(store=tmp_path_factory.mktemp("store"))).run())


def test_the_copy_starts_where_the_ticket_does_and_sees_other_batches(unstable_run):
    df = table(unstable_run).set_index(["branch", "level", "seed"])
    for level in (1, 2):
        for seed in (0, 1):
            ticket, copy_ = Unit(level, "imp", seed), Unit(level, "instability", seed)
            a, b = unstable_run.weights(ticket, "init"), unstable_run.weights(copy_, "init")
            assert all(torch.equal(a[n], b[n]) for n in a), "the same weights at step k"
            assert all(torch.equal(unstable_run.mask(ticket)[n], unstable_run.mask(copy_)[n]) for n in a if n in
                       unstable_run.mask(ticket))
            assert df.loc[("instability", level, seed)].data_seed != df.loc[("imp", level, seed)].data_seed
            assert 0 <= df.loc[("instability", level, seed)].instability_barrier <= 1


def test_the_verdict_says_whether_the_ticket_is_stable(unstable_run):
    df = table(unstable_run)
    text = "\n".join(verdicts(df)[0].lines())
    assert "stability from step k = 0: error barrier" in text
    assert "ticket vs second copy" not in text and "ticket vs instability" not in text, "not a control"


def test_rewind_steps_compared_say_from_which_k_the_ticket_is_stable(tmp_path, capsys):
    assert main(["run", "synthetic-tiny", "--store", str(tmp_path), "--quiet", "--levels", "1", "--seeds", "0,1",
                 "--branches", "imp,instability", "--rewind-steps", "0,1ep"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = Path(next(line for line in out if line.startswith("rewinding comparison:")).split(": ", 1)[1])
    md = (report.parent / "report.md").read_text()
    assert "## Stability across rewind steps" in md and "level 1 (" in md
    assert "stable from k =" in md or "not stable at any k tried" in md
    assert (report.parent / "figures" / "rewinding" / "instability_by_k.png").exists()


def test_copies_of_a_batchnorm_model_are_compared_with_fresh_statistics(data):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    a = state(model)
    b = copy.deepcopy(a)
    b["1.running_mean"] += 100.0  # statistics that would wreck an evaluation if they were interpolated
    errors = error_path(model, a, b, data)
    assert barrier(errors) == 0, "each point's statistics are computed afresh from training data"
