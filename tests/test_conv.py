"""Convolutional networks: the models as the papers build them, the stack that trains them fast,
and augmentation that keeps the paired design and resumes bit for bit."""

import pytest
import torch
from conftest import assert_same_training, crash_and_resume_group, train
from torch import nn

from lottery import engine, pruning
from lottery.config import TrainConfig
from lottery.data import Dataset
from lottery.data.augment import CropFlip, draws
from lottery.engine import Replicate
from lottery.engine.reference import train_one
from lottery.models import build

CFG = TrainConfig(optimizer="adam", lr=3e-3, batch_size=20, length="4ep", eval_every="1ep")


@pytest.fixture(scope="module")
def images():
    """A small image task: 4 classes told apart by which quadrant is bright, in noise."""
    g = torch.Generator().manual_seed(0)

    def draw(n):
        y = torch.randint(0, 4, (n,), generator=g)
        x = 0.5 * torch.randn(n, 3, 8, 8, generator=g)
        for i, c in enumerate(y.tolist()):
            x[i, :, 4 * (c // 2):4 * (c // 2) + 4, 4 * (c % 2):4 * (c % 2) + 4] += 1.0
        return x, y
    (x, y), (vx, vy), (tx, ty) = draw(200), draw(40), draw(80)
    return Dataset("images", x, y, vx, vy, tx, ty, 4)


def small_cnn(seed, batchnorm=True):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=not batchnorm),
                         *([nn.BatchNorm2d(8)] if batchnorm else []), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 4))


def replicates(seeds_branches, batchnorm=True):
    reps = []
    for s, b in seeds_branches:
        model = small_cnn(10 * s + b, batchnorm)
        state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        mask = {n: torch.rand(state[n].shape, generator=torch.Generator().manual_seed(b)) < 0.7
                for n in pruning.prunable_names(model)}
        reps.append(Replicate(pruning.apply(state, mask), mask, data_seed=100 + s))
    return model, reps


def test_convolutional_networks_train_in_the_modules_stack(images):
    model, _ = replicates([(0, 0)])
    assert engine.plan(model, (images.train_x[:2], images.train_y[:2])).stack == "modules"


@pytest.mark.parametrize("augment", ["none", "crop_flip"])
def test_the_modules_stack_is_the_reference_loop(images, augment):
    """Two seeds × two branches, BatchNorm, masks, augmentation: each replicate as the plain loop
    trains it alone (to float rounding: the stack runs images channels-last)."""
    model, reps = replicates([(0, 0), (0, 1), (1, 0), (1, 1)])
    results = train(model, reps, images, CFG, augment=augment)
    for rep, res in zip(reps, results):
        ref = train_one(model, rep, images, CFG, augment=augment)
        for n in ref.final:
            torch.testing.assert_close(res.final[n], ref.final[n], rtol=1e-4, atol=1e-5)
        assert [h["step"] for h in res.history] == [h["step"] for h in ref.history]
        assert res.early_stop_step == ref.early_stop_step
        for n, m in rep.mask.items():
            assert torch.all(res.final[n][~m] == 0.0), f"{n}: a pruned weight moved"


def test_lanes_of_the_modules_stack_are_the_one_program_bit_for_bit(images):
    """Each replicate's ops run on one thread in a lane, as in one program on one thread: the same
    bits. (One program on two threads splits the convolutions' sums differently: float rounding.)"""
    model, reps = replicates([(s, b) for s in range(3) for b in range(2)])
    one_thread = train(model, reps, images, CFG, lanes=1)
    torch.set_num_threads(2)
    lanes = train(model, reps, images, CFG, lanes=2)
    assert lanes[0].extra["lanes"] == 2
    assert_same_training(lanes, one_thread)


def test_augmentation_keeps_shapes_and_labels_and_moves_the_pixels():
    x = torch.randn(2, 5, 3, 32, 32)
    before = x.clone()
    CropFlip((3, 32, 32))(x, [7, 8], step=3)
    assert x.shape == before.shape and not torch.equal(x, before)
    flips, offsets = draws(7, 3, 5)
    for b in range(5):  # each image is its own crop of the padded original, flipped where drawn
        padded = nn.functional.pad(before[0, b], (4, 4, 4, 4))
        crop = padded[:, offsets[b, 0]:offsets[b, 0] + 32, offsets[b, 1]:offsets[b, 1] + 32]
        assert torch.equal(x[0, b], crop.flip(-1) if flips[b] else crop)
    again = before.clone()
    CropFlip((3, 32, 32))(again, [7, 8], step=3)
    assert torch.equal(again, x), "a function of (data seed, step) alone"


def test_the_ticket_and_its_controls_see_the_same_augmented_batches(images):
    """Two copies of one replicate on one stream end bit for bit alike (the same augmented images);
    the same replicate on another stream does not."""
    model, (rep,) = replicates([(0, 0)])
    other = Replicate(rep.init, rep.mask, data_seed=999)
    a, b, c = train(model, [rep, rep, other], images, CFG, augment="crop_flip", lanes=1)
    assert all(torch.equal(a.final[n], b.final[n]) for n in a.final)
    assert not torch.equal(a.final["0.weight"], c.final["0.weight"])
    plain = train(model, [rep], images, CFG)[0]
    assert not torch.equal(a.final["0.weight"], plain.final["0.weight"]), "augmentation changes the training"


def test_a_resumed_augmented_run_equals_an_uninterrupted_one(images):
    model, reps = replicates([(0, 0), (1, 0)])
    whole = train(model, reps, images, CFG, augment="crop_flip")
    resumed = crash_and_resume_group(model, reps, images, CFG, crash_at=23, every=10, augment="crop_flip")
    assert_same_training(resumed, whole)


@pytest.mark.parametrize("name, shape, params", [
    ("conv2", (3, 32, 32), 4_301_642), ("conv4", (3, 32, 32), 2_425_930), ("conv6", (3, 32, 32), 2_262_602),
    ("resnet20", (3, 32, 32), 272_474), ("vgg16", (3, 32, 32), 14_728_266),
    ("cnn_mnist", (784,), 215_370), ("cnn_mnist1d", (40,), 5_210)])
def test_the_papers_models_have_their_sizes_and_prune_only_weights(name, shape, params):
    model = build(name, shape, 10, 0)
    assert sum(p.numel() for p in model.parameters()) == params
    names = pruning.prunable_names(model)
    kinds = {type(m).__name__ for n, m in model.named_modules() if f"{n}.weight" in names}
    assert kinds <= {"Conv1d", "Conv2d", "Linear"}, "BatchNorm is never pruned"
    assert all(n.endswith(".weight") for n in names), "biases are never pruned"
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_the_reference_codes_initialisation():
    model = build("resnet20", (3, 32, 32), 10, 0)
    bn = model.bn.weight.detach()
    assert 0 <= float(bn.min()) and float(bn.max()) < 1 and torch.all(model.bn.bias == 0)
    fan_in = 16 * 9
    assert float(model.blocks[0].conv1.weight.detach().std()) == pytest.approx((2 / fan_in) ** 0.5, rel=0.1), "He normal"
    conv2 = build("conv2", (3, 32, 32), 10, 0)
    fan_in, fan_out = 64 * 9, 64 * 9
    assert float(conv2[2].weight.detach().std()) == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05), "Glorot normal"
    assert torch.all(conv2[2].bias == 0)
