"""Named experiments. Each preset's docstring says where its settings come from."""

from dataclasses import dataclass, replace

from lottery.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
)
from lottery.imp.branches import BRANCHES, of_kind


@dataclass(frozen=True)
class Preset:
    description: str
    config: ExperimentConfig


_PAPER_LENET = TrainConfig(optimizer="adam", lr=1.2e-3, batch_size=60, length="50000", eval_every="100")

PRESETS = {
    "lenet-mnist": Preset(
        "LeNet-300-100 on MNIST with the paper's budget (Frankle & Carbin 2019, Fig. 3 / App. G): "
        "Adam 1.2e-3, batch 60, 50,000 iterations, prune 20% per level (output layer 10%), "
        "validation every 100 iterations, 20 levels (down to 1.2% of weights)",
        ExperimentConfig(data=DataConfig("mnist", 5000), model=ModelConfig("lenet_300_100"), train=_PAPER_LENET,
                         prune=PruneConfig(rate=0.2, output_rate=0.1), levels=20, seeds=(0,)),
    ),
    "lenet-mnist-quick": Preset(
        "The paper's LeNet-300-100 experiment on a budget that finishes here in minutes: 3 epochs "
        "(2,750 iterations) per training, 12 levels (down to 6.9% of weights), validation every "
        "1/4 epoch, 3 seeds; everything else as lenet-mnist",
        ExperimentConfig(data=DataConfig("mnist", 5000), model=ModelConfig("lenet_300_100"),
                         train=TrainConfig(optimizer="adam", lr=1.2e-3, batch_size=60, length="3ep",
                                           eval_every="0.25ep"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1), levels=12, seeds=(0, 1, 2)),
    ),
    "mlp-mnist1d": Preset(
        "The MNIST-1D MLP (40-100-100-10, Greydanus 2020) on MNIST-1D (4,000 train, 500 held out "
        "for validation, 1,000 test): Adam 1e-3, batch 100, 60 epochs, IMP at 20%/10% per level, "
        "10 levels, 3 seeds",
        ExperimentConfig(data=DataConfig("mnist1d", 500), model=ModelConfig("mlp_mnist1d"),
                         train=TrainConfig(optimizer="adam", lr=1e-3, batch_size=100, length="60ep", eval_every="1ep"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1), levels=10, seeds=(0, 1, 2)),
    ),
    "cnn-mnist": Preset(
        "A small CNN on MNIST (two 5x5 convolutions of 16 and 32 filters, FC 128; lottery.models.conv): Adam "
        "1.2e-3, batch 60, 3 epochs, the lottery-ticket paper's convnet rule (convolutions 10%, fully connected "
        "20%, output 10% per level), 8 levels, validation every 1/4 epoch, 3 seeds; about half an hour on 2 cores",
        ExperimentConfig(data=DataConfig("mnist", 5000), model=ModelConfig("cnn_mnist"),
                         train=TrainConfig(optimizer="adam", lr=1.2e-3, batch_size=60, length="3ep",
                                           eval_every="0.25ep"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1, conv_rate=0.1), levels=8, seeds=(0, 1, 2)),
    ),
    "cnn-mnist1d": Preset(
        "The MNIST-1D paper's CNN (Greydanus 2020: three 1-D convolutions of 25 channels) on MNIST-1D: Adam 1e-2, "
        "batch 100, 60 epochs, 20% of each layer per level (output 10%), 10 levels, 3 seeds; about 3 minutes",
        ExperimentConfig(data=DataConfig("mnist1d", 500), model=ModelConfig("cnn_mnist1d"),
                         train=TrainConfig(optimizer="adam", lr=1e-2, batch_size=100, length="60ep", eval_every="1ep"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1), levels=10, seeds=(0, 1, 2)),
    ),
    "synthetic-tiny": Preset(
        "A seconds-long smoke test: a small MLP on a synthetic 4-class problem, 3 levels, 1 seed",
        ExperimentConfig(data=DataConfig("synthetic", 200), model=ModelConfig("mlp_small"),
                         train=TrainConfig(optimizer="adam", lr=3e-3, batch_size=50, length="4ep", eval_every="1ep"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1), levels=3, seeds=(0,)),
    ),
}


def _lth_convnet(model: str, lr: float, iterations: int, conv_rate: float) -> Preset:
    """Conv-2/4/6 on CIFAR-10 as the lottery-ticket paper trains them (Frankle & Carbin 2019, Fig. 2 and
    5): Adam, batch 60, no augmentation, layerwise pruning of the convolutions at `conv_rate`, the fully
    connected layers at 20% and the output at 10% a level."""
    return Preset(
        f"{model.capitalize()} on CIFAR-10 as in Frankle & Carbin 2019 (Fig. 2, 5): Adam {lr:g}, batch 60, "
        f"{iterations:,} iterations, prune convolutions {conv_rate:.0%} and fully connected layers 20% per level "
        "(output 10%), validation every 100 iterations, 15 levels; CIFAR-10 from your files (--data-dir)",
        ExperimentConfig(data=DataConfig("cifar10", 5000), model=ModelConfig(model.replace("-", "")),
                         train=TrainConfig(optimizer="adam", lr=lr, batch_size=60, length=str(iterations),
                                           eval_every="100"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1, conv_rate=conv_rate), levels=15, seeds=(0,)))


def _lmc_network(model: str, name: str) -> Preset:
    """ResNet-20 and VGG-16 on CIFAR-10 as the linear-mode-connectivity paper trains them (Frankle et al.
    2020, Table 1; its reference code OpenLTH): SGD 0.1 with momentum 0.9 and weight decay 1e-4, batch
    128, 160 epochs with the rate divided by 10 at epochs 80 and 120, random crops and flips, global
    magnitude pruning of 20% a level over every convolution, the output layer left dense."""
    return Preset(
        f"{name} on CIFAR-10 as in Frankle et al. 2020 (linear mode connectivity, Table 1; OpenLTH): SGD 0.1, "
        "momentum 0.9, weight decay 1e-4, batch 128, 160 epochs (rate x0.1 at 80 and 120), crop-and-flip "
        "augmentation, global pruning 20% per level (output layer unpruned), 15 levels; tickets need late "
        "rewinding here: add --rewind-steps 0,1ep,2ep; CIFAR-10 from your files (--data-dir)",
        ExperimentConfig(data=DataConfig("cifar10", 5000, augment="crop_flip"), model=ModelConfig(model),
                         train=TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128,
                                           length="160ep", schedule="step", milestones=("80ep", "120ep"), gamma=0.1,
                                           eval_every="1ep"),
                         prune=PruneConfig(scope="global", rate=0.2, output_rate=0.0), levels=15, seeds=(0,)))


def _quick(base: str, length: str, levels: int, **train) -> Preset:
    """`base` on a budget that runs here in minutes (on CIFAR-10: checks the plumbing more than the science)."""
    cfg = PRESETS[base].config
    t = replace(cfg.train, length=length, eval_every="0.25ep", **train)
    return Preset(f"{base} on a budget that runs in minutes: {length} a training, {levels} levels, one seed; "
                  "everything else as " + base, replace(cfg, train=t, levels=levels))


PRESETS.update({"conv2-cifar10": _lth_convnet("conv-2", 2e-4, 20_000, 0.1),
                "conv4-cifar10": _lth_convnet("conv-4", 3e-4, 25_000, 0.1),
                "conv6-cifar10": _lth_convnet("conv-6", 3e-4, 30_000, 0.15),
                "resnet20-cifar10": _lmc_network("resnet20", "ResNet-20"),
                "vgg16-cifar10": _lmc_network("vgg16", "VGG-16")})
for _name in ("conv2-cifar10", "conv4-cifar10", "conv6-cifar10"):
    PRESETS[f"{_name}-quick"] = _quick(_name, "1ep", 2)
for _name in ("resnet20-cifar10", "vgg16-cifar10"):
    PRESETS[f"{_name}-quick"] = _quick(_name, "2ep", 2, milestones=("1ep",))


def _with_branches(base: str, branches: tuple[str, ...], what: str, seeds=None) -> Preset:
    sources = "; ".join(f"{b}: {BRANCHES[b].source}" for b in branches if b != "imp")
    cfg = replace(PRESETS[base].config, branches=branches, **({"seeds": seeds} if seeds else {}))
    return Preset(f"{what} beside the IMP ticket, on the budget of {base} (training settings: Frankle & Carbin "
                  f"2019). Method sources: {sources}", cfg)


for _m in of_kind("method"):
    PRESETS[f"lenet-mnist-{_m}"] = _with_branches("lenet-mnist", ("imp", _m), f"{_m}")
    PRESETS[f"lenet-mnist-{_m}-quick"] = _with_branches("lenet-mnist-quick", ("imp", _m), f"{_m}")
_EVERY = of_kind("ticket", "control", "ablation", "method")
PRESETS["lenet-mnist-all-quick"] = _with_branches(
    "lenet-mnist-quick", _EVERY, "every control, ablation and method", seeds=(0,))
PRESETS["mlp-mnist1d-all"] = _with_branches("mlp-mnist1d", _EVERY, "every control, ablation and method")
