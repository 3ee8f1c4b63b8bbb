import pytest
import torch
from torch import nn

import lottery
from lottery.analysis.table import COLUMNS
from lottery.errors import ConfigError, EngineWarning


class TanhNet(nn.Module):
    """A model the package never saw: Tanh, and a bias-free middle layer."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(20, 24)
        self.mid = nn.Linear(24, 16, bias=False)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(torch.tanh(self.mid(torch.tanh(self.inp(x)))))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 20, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (n,), generator=g)
    return centres[y] + 0.8 * torch.randn(n, 20, generator=g), y


def test_find_ticket_on_an_unseen_model(tmp_path):
    model = TanhNet()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    ticket = lottery.find_ticket(model, train=data(600, 1), test=data(200, 2), levels=2, seeds=(0, 1),
                                 store=tmp_path, lr=1e-2, batch_size=50, length="3ep", eval_every="1ep")
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items()), "the user's model is untouched"
    assert set(ticket.masks) == {"inp.weight", "mid.weight", "out.weight"}
    df = ticket.results
    assert set(COLUMNS) <= set(df.columns) and len(df) == 2 * (1 + 3 * 2)
    assert (ticket.run_dir / "results.csv").exists()
    net = ticket.module()
    assert isinstance(net, TanhNet)
    for n, m in ticket.masks.items():
        assert torch.all(dict(net.named_parameters())[n][~m] == 0.0)
    assert int(ticket.masks["inp.weight"].sum()) == 480 - 96 - 77, "two levels of 20% layerwise"
    acc = (net(data(200, 2)[0]).argmax(-1) == data(200, 2)[1]).float().mean()
    assert acc == pytest.approx(df[(df.branch == "imp") & (df.level == 2) & (df.seed == 0)].test_acc_end.item())
    again = lottery.find_ticket(TanhNet(), train=data(600, 1), test=data(200, 2), levels=2, seeds=(0, 1),
                                store=tmp_path, lr=1e-2, batch_size=50, length="3ep", eval_every="1ep")
    assert again.run_dir == ticket.run_dir, "same architecture and data: the same run, reused"


def test_map_style_dataset_is_accepted(tmp_path):
    x, y = data(300, 3)
    pairs = [(x[i], int(y[i])) for i in range(300)]
    ticket = lottery.find_ticket(TanhNet(), train=pairs, test=data(100, 4), levels=1, branches=("imp",),
                                 store=tmp_path, length="1ep", batch_size=50, eval_every="1ep")
    assert len(ticket.results) == 2


def test_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="nothing to prune"):
        lottery.find_ticket(nn.Sequential(nn.Tanh()), train=data(100, 1), test=data(50, 2), store=tmp_path)
    with pytest.raises(ConfigError, match=r"does not fit the model"):
        lottery.find_ticket(TanhNet(), train=(torch.randn(100, 7), torch.zeros(100).long()), test=data(50, 2),
                            store=tmp_path)
    with pytest.raises(ConfigError, match="unknown training option"):
        lottery.find_ticket(TanhNet(), train=data(100, 1), test=data(50, 2), store=tmp_path, learning_rate=1)


def test_models_vmap_cannot_run_train_one_at_a_time(tmp_path):
    """Dropout (randomness vmap cannot seed per replicate), with BatchNorm: a warning says so,
    and the run works, buffers included."""
    model = nn.Sequential(nn.Linear(20, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 4))
    with pytest.warns(EngineWarning, match=r"cannot be vectorised \(torch.func.vmap cannot run it.*"
                                           "training its units one at a time"):
        ticket = lottery.find_ticket(model, train=data(200, 1), test=data(100, 2), store=tmp_path, levels=1,
                                     seeds=(0, 1), length="2ep", batch_size=50, eval_every="1ep")
    assert set(ticket.results["group_size"]) == {1}
    trained = ticket.module(1)
    level_1 = ticket.results.query("level == 1 and branch == 'imp' and seed == 0")
    assert trained[1].num_batches_tracked.item() == int(level_1["steps"].iloc[0]) > 0  # one per step of the level
    assert not torch.allclose(trained[1].running_mean, torch.zeros(8)), "running statistics are trained state"
    kept = ticket.masks["0.weight"]
    assert torch.all(trained[0].weight[~kept] == 0)
    assert float(ticket.results["params_total"].iloc[0]) == sum(p.numel() for p in model.parameters())


def test_engine_mlp_on_a_model_it_cannot_run_is_refused(tmp_path):
    from lottery import engine
    from lottery.config import DataConfig, ExperimentConfig, ModelConfig
    from lottery.imp.driver import Experiment, RunOptions

    cfg = ExperimentConfig(data=DataConfig("synthetic", 50), model=ModelConfig("mlp_small"), levels=0)
    tanh = nn.Sequential(nn.Flatten(), nn.Linear(20, 8), nn.Tanh(), nn.Linear(8, 4))
    with pytest.raises(ConfigError, match="engine 'mlp' runs Sequential stacks of Linear and ReLU"):
        Experiment(cfg, RunOptions(store=tmp_path, engine=engine.Options(stack="mlp")), model_factory=lambda seed: tanh)
    assert not any(tmp_path.iterdir()), "refused before the store was touched"
