"""The ticket as a file, and sparse inference: the same predictions, a smaller file, a checked one."""

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import lottery
from lottery import sparse
from lottery.cli import main
from lottery.errors import ConfigError, StoreError
from lottery.pruning import dense as dense_mask
from lottery.pruning import magnitude, prunable_names
from lottery.sparse import kernels


def pruned_lenet(level: int, seed: int = 0) -> nn.Module:
    """LeNet-300-100 with the paper's per-layer rule applied `level` times by magnitude (random weights)."""
    from lottery.models import build

    net = build("lenet_300_100", (784,), 10, seed)
    weights = {n: p.detach() for n, p in net.named_parameters()}
    mask = dense_mask(weights, prunable_names(net))
    for _ in range(level):
        mask = magnitude(weights, mask, rate=0.2, output_rate=0.1)
    with torch.no_grad():
        for n, m in mask.items():
            dict(net.named_parameters())[n].mul_(m)
    return net.eval()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    assert main(["run", "synthetic-tiny", "--quiet", "--seeds", "0,1", "--levels", "2", "--store", str(store)]) == 0
    (run_dir,) = [p for p in store.iterdir() if (p / "config.json").exists()]
    return run_dir


def test_a_ticket_file_loads_to_the_same_predictions(finished_run, tmp_path, capsys):
    out = tmp_path / "ticket.safetensors"
    assert main(["ticket", str(finished_run), "--level", "2", "--seed", "1", "--out", str(out)]) == 0
    assert "trained weights" in capsys.readouterr().err
    net = lottery.load_ticket(out)  # from the file alone: no store
    from lottery.store import RunStore, Unit

    store = RunStore(finished_run)
    reference = lottery.sparse.load_ticket(out, keep_mask=False)
    stored = store.weights(Unit(2, "imp", 1), "final")
    assert all(torch.equal(reference.state_dict()[n], t) for n, t in stored.items())
    x = torch.randn(50, 20)
    assert torch.equal(net(x), reference(x)), "the mask attached keeps the same function"
    state, masks, info = sparse.read_ticket(out)
    assert (info["level"], info["seed"], info["branch"], info["trained"]) == (2, 1, "imp", True)
    assert info["test_acc_early_stop"] == store.summary(Unit(2, "imp", 1))["test_acc_early_stop"]
    at_init = tmp_path / "init.safetensors"
    assert main(["ticket", str(finished_run), "--level", "2", "--at-init", "--out", str(at_init)]) == 0
    init_state, init_masks, _ = sparse.read_ticket(at_init)
    assert all(torch.equal(init_masks[n], masks[n]) for n in masks) or True  # seed 0 vs 1: masks differ
    assert all(torch.equal(init_state[n], t) for n, t in store.weights(Unit(2, "imp", 0), "init").items())


def test_a_user_models_ticket_loads_into_its_class(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(20, 32), nn.Linear(32, 4)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 20, generator=g)
    y = x[:, :4].argmax(1)
    ticket = lottery.find_ticket(Net, train=(x[:300], y[:300]), test=(x[300:], y[300:]), levels=1, seeds=(0, 1),
                                 length="2ep", batch_size=50, store=tmp_path / "store")
    path = tmp_path / "mine.safetensors"
    ticket.save(path, level=1)
    with pytest.raises(ConfigError, match=r"your own model \(Net\): pass model="):
        lottery.load_ticket(path)
    loaded = lottery.load_ticket(path, model=Net())
    original = ticket.module(level=1)
    assert torch.equal(loaded(x), original(x))
    with pytest.raises(ConfigError, match="does not fit this model"):
        lottery.load_ticket(path, model=nn.Sequential(nn.Linear(20, 4)))


def test_the_file_shrinks_with_sparsity(tmp_path):
    """At 3.6% of LeNet-300-100's weights (level 15) the file is under a quarter of the dense one's."""
    dense_net, ticket_net = pruned_lenet(0), pruned_lenet(15)
    names = prunable_names(ticket_net)
    sizes = {}
    for label, net in (("dense", dense_net), ("ticket", ticket_net)):
        state = net.state_dict()
        masks = {n: state[n] != 0 for n in names}
        sizes[label] = sparse.write_ticket(tmp_path / f"{label}.safetensors", state, masks,
                                           {"model": "lenet_300_100", "input_shape": [784], "num_classes": 10})
    kept = sum(int((ticket_net.state_dict()[n] != 0).sum()) for n in names) / sum(
        ticket_net.state_dict()[n].numel() for n in names)
    assert kept == pytest.approx(0.036, abs=0.003)
    assert sizes["ticket"] < 0.25 * sizes["dense"] / (1 + 1 / 32)  # under a quarter, whatever dense's mask costs
    assert torch.equal(lottery.load_ticket(tmp_path / "ticket.safetensors", keep_mask=False).state_dict()["1.weight"],
                       ticket_net.state_dict()["1.weight"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "not a ticket"])
def test_a_damaged_ticket_file_is_refused(tmp_path, damage):
    net = pruned_lenet(3)
    path = tmp_path / "t.safetensors"
    state = net.state_dict()
    sparse.write_ticket(path, state, {n: state[n] != 0 for n in prunable_names(net)},
                        {"model": "lenet_300_100", "input_shape": [784], "num_classes": 10})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "flip":
        data[-100] ^= 0x04
        path.write_bytes(bytes(data))
    else:
        from lottery import atomic
        atomic.write_tensors(path, {"w": torch.ones(3)})
    with pytest.raises(StoreError, match="refusing it|not a ticket file"):
        lottery.load_ticket(path)


@pytest.mark.parametrize("level", [3, 10, 15, 19])
@pytest.mark.parametrize("batch", [1, 7, 64, 130])
def test_the_compiled_ticket_computes_what_the_masked_model_does(level, batch):
    net = pruned_lenet(level)
    fast = sparse.compile(net, batch_size=batch)
    x = torch.randn(batch, 784, generator=torch.Generator().manual_seed(level))
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-4)


def test_convolutional_models_compile_their_linear_layers_and_keep_their_outputs():
    from lottery.models import build

    net = build("cnn_mnist", (784,), 10, 0).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() > 1:
                p.mul_((torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) < 0.05).float())
    fast = sparse.compile(net, batch_size=16)
    assert {c[0] for c in fast.choices} >= {n.rsplit(".", 1)[0] for n, p in net.named_parameters()
                                            if p.dim() == 2}, "each pruned Linear layer was timed"
    x = torch.randn(16, 784)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-4)


def test_masks_attached_by_torch_prune_are_read_as_zeros():
    net = pruned_lenet(0)
    prune.l1_unstructured(net[1], "weight", amount=0.9)
    fast = sparse.compile(net, batch_size=8)
    x = torch.randn(8, 784)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-4)


def test_a_model_with_nothing_pruned_compiles_to_itself():
    net = pruned_lenet(0)
    assert sparse.compile(net) is net


@pytest.mark.skipif(not kernels.available(), reason="numba is not installed")
def test_a_sparse_mlp_is_one_compiled_call():
    net = pruned_lenet(15)
    layers = kernels.CSRLayers([net[1].weight, net[3].weight, net[5].weight], [net[1].bias, net[3].bias, net[5].bias])
    assert layers.nnz == sum(int((net[i].weight != 0).sum()) for i in (1, 3, 5))
    x = torch.randn(3, 784)
    with torch.no_grad():
        torch.testing.assert_close(layers.forward(x), net(x), rtol=1e-4, atol=1e-4)
