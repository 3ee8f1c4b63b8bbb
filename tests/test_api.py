"""find_ticket: your own model and data, run as you built them, with the verdict's ticket back."""

import importlib
import sys
import textwrap

import pytest
import torch
from torch import nn

import lottery
from lottery.analysis.table import COLUMNS
from lottery.analysis.verdict import Verdict
from lottery.errors import ConfigError, EngineWarning, InitWarning
from lottery.store import RunStore, Unit

QUICK = dict(lr=1e-2, batch_size=50, length="3ep", eval_every="1ep")


class TanhNet(nn.Module):
    """A model the package never saw: Tanh, and a bias-free middle layer."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(20, 24)
        self.mid = nn.Linear(24, 16, bias=False)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(torch.tanh(self.mid(torch.tanh(self.inp(x)))))


def data(n, seed, noise=0.8):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 20, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (n,), generator=g)
    return centres[y] + noise * torch.randn(n, 20, generator=g), y


def test_find_ticket_on_an_unseen_model(tmp_path):
    model = TanhNet()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    with pytest.warns(InitWarning, match=r"re-draws its weights with reset_parameters\(\) \(Linear ×3\)"):
        ticket = lottery.find_ticket(model, train=data(600, 1), test=data(200, 2), levels=2, seeds=(0, 1),
                                     store=tmp_path, **QUICK)
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items()), "the user's model is untouched"
    mask = ticket.mask(level=2)
    assert set(mask) == {"inp.weight", "mid.weight", "out.weight"}
    df = ticket.results
    assert set(COLUMNS) <= set(df.columns) and len(df) == 2 * (1 + 3 * 2)
    assert (ticket.run_dir / "results.csv").exists()
    net = ticket.module(level=2, keep_mask=False)
    assert isinstance(net, TanhNet)
    for n, m in mask.items():
        assert torch.all(dict(net.named_parameters())[n][~m] == 0.0)
    assert int(mask["inp.weight"].sum()) == 480 - 96 - 77, "two levels of 20% layerwise"
    acc = (net(data(200, 2)[0]).argmax(-1) == data(200, 2)[1]).float().mean()
    assert acc == pytest.approx(df[(df.branch == "imp") & (df.level == 2) & (df.seed == 0)].test_acc_end.item())
    with pytest.warns(InitWarning):
        again = lottery.find_ticket(TanhNet(), train=data(600, 1), test=data(200, 2), levels=2, seeds=(0, 1),
                                    store=tmp_path, **QUICK)
    assert again.run_dir == ticket.run_dir, "same code, values and data: the same run, reused"


def test_map_style_dataset_is_accepted(tmp_path):
    x, y = data(300, 3)
    pairs = [(x[i], int(y[i])) for i in range(300)]
    ticket = lottery.find_ticket(lambda: TanhNet(), train=pairs, test=data(100, 4), levels=1, seeds=(0,),
                                 branches=("imp",), store=tmp_path, length="1ep", batch_size=50, eval_every="1ep")
    assert len(ticket.results) == 2


def test_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="nothing to prune"):
        lottery.find_ticket(lambda: nn.Sequential(nn.Tanh()), train=data(100, 1), test=data(50, 2), store=tmp_path)
    with pytest.raises(ConfigError, match=r"does not fit the model"):
        lottery.find_ticket(lambda: TanhNet(), train=(torch.randn(100, 7), torch.zeros(100).long()),
                            test=(torch.randn(50, 7), torch.zeros(50).long()), store=tmp_path)
    with pytest.raises(ConfigError, match="unknown training option"):
        lottery.find_ticket(lambda: TanhNet(), train=data(100, 1), test=data(50, 2), store=tmp_path, learning_rate=1)
    with pytest.raises(ConfigError, match="must be an nn.Module or a function returning one"):
        lottery.find_ticket("TanhNet", train=data(100, 1), test=data(50, 2), store=tmp_path)


def test_regression_targets_are_refused_as_such(tmp_path):
    x, _ = data(100, 1)
    with pytest.raises(ConfigError, match=r"for classification.*fractions such as .*regression target"):
        lottery.find_ticket(lambda: TanhNet(), train=(x, torch.rand(100)), test=(x, torch.rand(100)), store=tmp_path)
    one_output = lambda: nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 1))  # noqa: E731
    with pytest.raises(ConfigError, match=r"for classification: the model outputs 1 value\(s\) per example"):
        lottery.find_ticket(one_output, train=data(100, 1), test=data(50, 2), store=tmp_path)
    with pytest.raises(ConfigError, match="for classification.*labels have shape"):
        lottery.find_ticket(lambda: TanhNet(), train=(x, torch.rand(100, 3)), test=data(50, 2), store=tmp_path)
    assert not any(tmp_path.iterdir()), "refused before any work"


# --- the identity: what a run is -------------------------------------------------------------
NET = '''
import torch
from torch import nn


def act(x):
    return torch.{act}(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(20, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x):
        return self.b({forward}(self.a(x)))
'''


def user_module(tmp_path, monkeypatch, act="tanh", forward="act"):
    """The user's model file, as written now (a module of theirs, re-imported after each edit)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "usernet.py").write_text(textwrap.dedent(NET.format(act=act, forward=forward)))
    if "usernet" in sys.modules:
        return importlib.reload(sys.modules["usernet"])
    return importlib.import_module("usernet")


def run_of(module, store, **kw):
    small = dict(levels=1, seeds=(0,), branches=("imp",), store=store, length="1ep", eval_every="1ep", batch_size=50)
    return lottery.find_ticket(lambda: module.Net(), train=data(200, 1), test=data(100, 2), **{**small, **kw}).run_dir


def test_editing_the_model_makes_a_new_run(tmp_path, monkeypatch):
    store = tmp_path / "store"
    first = run_of(user_module(tmp_path, monkeypatch), store)
    assert run_of(user_module(tmp_path, monkeypatch), store) == first, "the same code: reused"
    relu = run_of(user_module(tmp_path, monkeypatch, forward="torch.relu"), store)
    assert relu != first, "forward changed: a new run, not the old numbers"
    helper = run_of(user_module(tmp_path, monkeypatch, act="sigmoid"), store)
    assert helper not in (first, relu), "a function forward calls changed: a new run"
    assert run_of(user_module(tmp_path, monkeypatch), store, fresh=True) != first, "fresh=True: a new run"
    assert run_of(user_module(tmp_path, monkeypatch), store, levels=2) == first, "more levels extend the run"


def test_a_change_to_the_initialisation_or_the_data_makes_a_new_run(tmp_path):
    def zeroed():
        net = TanhNet()
        nn.init.zeros_(net.mid.weight)
        return net
    a = run_of(type("M", (), {"Net": TanhNet}), tmp_path)
    b = run_of(type("M", (), {"Net": zeroed}), tmp_path)
    assert a != b
    x, y = data(200, 1)
    other = lottery.find_ticket(lambda: TanhNet(), train=(x + 1e-3, y), test=data(100, 2), levels=1, seeds=(0,),
                                branches=("imp",), store=tmp_path, length="1ep", eval_every="1ep", batch_size=50)
    assert other.run_dir not in (a, b)


# --- the initialisation: as the user built it -----------------------------------------------------
class Scaled(nn.Module):
    """He init on its first layer, its last layer zeroed, and a bare parameter: a constructor's choices."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(20, 64), nn.Linear(64, 4)
        nn.init.kaiming_normal_(self.a.weight, nonlinearity="relu")
        nn.init.zeros_(self.b.weight)
        self.scale = nn.Parameter(torch.randn(64))

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) * self.scale)


def dense_inits(ticket):
    from lottery.store import RunStore, Unit

    return [RunStore(ticket.run_dir).weights(Unit(0, "imp", s), "init") for s in ticket.seeds]


def test_a_factory_keeps_the_users_initialisation_and_draws_it_per_seed(tmp_path):
    ticket = lottery.find_ticket(lambda: Scaled(), train=data(200, 1), test=data(100, 2), levels=1, seeds=(0, 1),
                                 store=tmp_path, length="1ep", eval_every="1ep", batch_size=50)
    first, second = dense_inits(ticket)
    for init in (first, second):
        assert torch.all(init["b.weight"] == 0), "the zeroed layer starts at zero"
        assert init["a.weight"].std() == pytest.approx((2 / 20) ** 0.5, rel=0.15), "He init, not PyTorch's default"
    assert not torch.equal(first["scale"], second["scale"]), "the bare parameter is drawn per seed"
    assert not torch.equal(first["a.weight"], second["a.weight"])


def test_an_instance_is_redrawn_and_says_so_or_refused_where_nothing_redraws(tmp_path):
    with pytest.raises(ConfigError, match=r"parameters scale have no reset_parameters\(\).*pass a factory"):
        lottery.find_ticket(Scaled(), train=data(200, 1), test=data(100, 2), store=tmp_path)

    def init_fn(module):
        nn.init.normal_(module.scale)
        nn.init.zeros_(module.b.weight)
    ticket = lottery.find_ticket(Scaled(), init_fn=init_fn, train=data(200, 1), test=data(100, 2), levels=1,
                                 seeds=(0, 1), store=tmp_path, length="1ep", eval_every="1ep", batch_size=50)
    first, second = dense_inits(ticket)
    assert torch.all(first["b.weight"] == 0) and not torch.equal(first["scale"], second["scale"])


def test_parameters_a_factory_never_redraws_are_flagged(tmp_path):
    fixed = torch.randn(16, 20)

    def loaded():
        net = TanhNet()
        net.inp.weight.data[:16] = fixed  # the same start for every seed, as loaded weights would be
        net.inp.weight.data[16:] = fixed[:8]
        return net
    with pytest.warns(InitWarning, match="inp.weight start every seed from the same values"):
        lottery.find_ticket(loaded, train=data(200, 1), test=data(100, 2), levels=1, seeds=(0,), branches=("imp",),
                            store=tmp_path, length="1ep", eval_every="1ep", batch_size=50)


# --- defaults for any data ----------------------------------------------------------------------
def test_the_default_length_is_in_epochs_and_one_line_says_what_is_coming(tmp_path, capsys):
    ticket = lottery.find_ticket(lambda: TanhNet(), train=data(300, 1), test=data(100, 2), levels=1, seeds=(0,),
                                 branches=("imp",), store=tmp_path, batch_size=50)
    steps = ticket.results.query("level == 0").steps.item()
    assert steps == round(20 * (300 - 30) / 50), "20 epochs of the training set, whatever its size"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, "no progress display when nobody is watching, one line before the work"
    assert err[0].startswith("find_ticket: 2 of 2 trainings to do") and f"{steps} steps each" in err[0]
    assert "20 epochs of batch 50" in err[0] and "about" in err[0] and "ms a step" in err[0]


def test_progress_shows_where_someone_is_watching(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("lottery.api.find._interactive", lambda: True)
    lottery.find_ticket(lambda: TanhNet(), train=data(300, 1), test=data(100, 2), levels=1, seeds=(0,),
                        branches=("imp",), store=tmp_path, batch_size=50, length="2ep")
    err = capsys.readouterr().err
    assert "level 1/1" in err and "units" in err, err


# --- the ticket the verdict names ----------------------------------------------------------------
@pytest.fixture(scope="module")
def matched(tmp_path_factory):
    """Three seeds, a generous margin (5 points): a verdict that names a matching ticket."""
    return lottery.find_ticket(lambda: TanhNet(), train=data(1000, 1, 1.5), test=data(2000, 2, 1.5), levels=3,
                               seeds=(0, 1, 2), store=tmp_path_factory.mktemp("store"), delta=0.05, **QUICK)


def test_the_ticket_is_the_one_the_verdict_names(matched):
    v = matched.verdict
    assert isinstance(v, Verdict) and v.status == "matching" and v.seeds == (0, 1, 2)
    assert matched.level == v.level == 3
    from lottery.analysis.verdict import verdicts
    assert [x.lines() for x in matched.verdicts] == [x.lines() for x in verdicts(matched.results, 0.05, seeds=(0, 1, 2))]
    assert torch.equal(matched.mask()["inp.weight"], matched.mask(level=3, seed=0)["inp.weight"])
    picked = matched.module(level=1, seed=2, keep_mask=False)
    from lottery.store import RunStore, Unit
    stored = RunStore(matched.run_dir).weights(Unit(1, "imp", 2), "final")
    assert all(torch.equal(p, stored[n]) for n, p in picked.state_dict().items())


def test_no_ticket_is_handed_out_when_the_verdict_names_none(tmp_path):
    ticket = lottery.find_ticket(lambda: TanhNet(), train=data(300, 1), test=data(100, 2), levels=1, seeds=(0,),
                                 branches=("imp",), store=tmp_path, **QUICK)
    assert ticket.verdict.status == "not enough seeds" and ticket.level is None
    with pytest.raises(ConfigError, match=r"the verdict names no matching ticket .*pass level=N .*\(0, 1\)"):
        ticket.module()
    assert ticket.module(level=1) is not None


def test_the_returned_module_keeps_its_mask_when_trained_and_bakes_on_request(matched):
    net = matched.module()
    mask = matched.mask()
    assert hasattr(net.inp, "weight_orig") and torch.equal(net.inp.weight_mask, mask["inp.weight"].float())
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    x, y = data(200, 5)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    for name, m in mask.items():
        owner = net.get_submodule(name.rsplit(".", 1)[0])
        assert torch.all(owner.weight[~m] == 0.0), f"{name}: pruned weights regrew"
    lottery.bake(net)
    assert not hasattr(net.inp, "weight_orig") and isinstance(net.inp.weight, nn.Parameter)
    assert torch.all(net.inp.weight[~mask["inp.weight"]] == 0.0)


def test_models_vmap_cannot_run_train_one_at_a_time(tmp_path):
    """Dropout (randomness vmap cannot seed per replicate), with BatchNorm: a warning says so,
    and the run works, buffers included."""
    def model():
        return nn.Sequential(nn.Linear(20, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 4))
    with pytest.warns(EngineWarning, match=r"cannot be vectorised \(torch.func.vmap cannot run it.*"
                                           "training its units one at a time"):
        ticket = lottery.find_ticket(model, train=data(200, 1), test=data(100, 2), store=tmp_path, levels=1,
                                     seeds=(0, 1), length="2ep", batch_size=50, eval_every="1ep")
    store = RunStore(ticket.run_dir)  # the provenance of each unit: trained alone
    assert {store.summary(Unit(r.level, r.branch, r.seed))["group_size"] for r in ticket.results.itertuples()} == {1}
    trained = ticket.module(1, keep_mask=False)
    level_1 = ticket.results.query("level == 1 and branch == 'imp' and seed == 0")
    assert trained[1].num_batches_tracked.item() == int(level_1["steps"].iloc[0]) > 0  # one per step of the level
    assert not torch.allclose(trained[1].running_mean, torch.zeros(8)), "running statistics are trained state"
    kept = ticket.mask(level=1)["0.weight"]
    assert torch.all(trained[0].weight[~kept] == 0)
    assert float(ticket.results["params_total"].iloc[0]) == sum(p.numel() for p in model().parameters())


def test_engine_mlp_on_a_model_it_cannot_run_is_refused(tmp_path):
    from lottery import engine
    from lottery.config import DataConfig, ExperimentConfig, ModelConfig
    from lottery.imp.driver import Experiment, RunOptions

    cfg = ExperimentConfig(data=DataConfig("synthetic", 50), model=ModelConfig("mlp_small"), levels=0)
    tanh = nn.Sequential(nn.Flatten(), nn.Linear(20, 8), nn.Tanh(), nn.Linear(8, 4))
    with pytest.raises(ConfigError, match="engine 'mlp' runs Sequential stacks of Linear and ReLU"):
        Experiment(cfg, RunOptions(store=tmp_path, engine=engine.Options(stack="mlp")), model_factory=lambda seed: tanh)
    assert not any(tmp_path.iterdir()), "refused before the store was touched"
