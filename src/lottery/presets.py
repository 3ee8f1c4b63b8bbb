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
    "synthetic-tiny": Preset(
        "A seconds-long smoke test: a small MLP on a synthetic 4-class problem, 3 levels, 1 seed",
        ExperimentConfig(data=DataConfig("synthetic", 200), model=ModelConfig("mlp_small"),
                         train=TrainConfig(optimizer="adam", lr=3e-3, batch_size=50, length="4ep", eval_every="1ep"),
                         prune=PruneConfig(rate=0.2, output_rate=0.1), levels=3, seeds=(0,)),
    ),
}


def _with_branches(base: str, branches: tuple[str, ...], what: str, seeds=None) -> Preset:
    sources = "; ".join(f"{b}: {BRANCHES[b].source}" for b in branches if b != "imp")
    cfg = replace(PRESETS[base].config, branches=branches, **({"seeds": seeds} if seeds else {}))
    return Preset(f"{what} beside the IMP ticket, on the budget of {base} (training settings: Frankle & Carbin "
                  f"2019). Method sources: {sources}", cfg)


for _m in of_kind("method"):
    PRESETS[f"lenet-mnist-{_m}"] = _with_branches("lenet-mnist", ("imp", _m), f"{_m}")
    PRESETS[f"lenet-mnist-{_m}-quick"] = _with_branches("lenet-mnist-quick", ("imp", _m), f"{_m}")
PRESETS["lenet-mnist-all-quick"] = _with_branches(
    "lenet-mnist-quick", tuple(BRANCHES), "every control, ablation and method", seeds=(0,))
PRESETS["mlp-mnist1d-all"] = _with_branches("mlp-mnist1d", tuple(BRANCHES), "every control, ablation and method")
