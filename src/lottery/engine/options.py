"""What the engine is asked (`Options`) and what it will do for a model on a device (`Plan`).

Options are how to train, never what: none of them enters an experiment's hash, and none
changes a number as long as the plan is `independent`.

Independence: a unit's numbers are a function of its config, seeds and device alone, never of the
units it trained beside (its group, lanes, executor) or of torch's thread count. On the CPU the
stacks that run in lanes (mlp, modules) compute every replicate exactly as it would alone, on one
thread: parallelism comes from running units side by side (engine/lanes.py), never from splitting
one unit's arithmetic, whose floats would then depend on the split. The loop stack is
independent of the group too, its numbers depending on torch's threads. What is not independent:
vmap (its batching rules fold replicates together), torch.optim's fallback optimiser, and CUDA,
where the batched products' kernels depend on the batch (unverified here, so not claimed). Asked
for `independent=False`, a lone unit uses all threads and auto may choose vmap: faster in places,
with numbers that depend on the layout, and labelled so (`Plan.record`).
"""

from dataclasses import dataclass

import torch

from lottery.engine.stacked import CHOICES, STACKS, choose
from lottery.errors import ConfigError


@dataclass(frozen=True)
class Options:
    device: str = "auto"  # auto (CUDA when present, else CPU) | cpu | cuda | cuda:N
    stack: str = "auto"  # auto | mlp | vmap | loop (lottery.engine.stacked); the CLI's --engine
    script: bool = True  # on the CPU, compile fixed-kernel steps to TorchScript (engine/scripted.py)
    cuda_graphs: bool = True  # on CUDA, replay fixed-kernel steps as CUDA graphs (engine/cuda_graph.py)
    lanes: int | None = None  # CPU: single-threaded lanes side by side; None: automatic (engine/lanes.py)
    checkpoint_every: int = 500  # steps between in-training checkpoints
    independent: bool = True  # a unit's numbers never depend on what trains beside it (see above)

    def __post_init__(self):
        if self.stack not in CHOICES:
            raise ConfigError(f"engine {self.stack!r} is unknown; choose one of {', '.join(CHOICES)}")
        if self.lanes is not None and self.lanes < 1:
            raise ConfigError(f"lanes={self.lanes} must be at least 1 (1: no lanes)")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every={self.checkpoint_every} must be at least 1")


@dataclass(frozen=True)
class Plan:
    """Options made concrete for one model on one device: the stack that runs it, and whether its
    step is compiled (CPU) or replayed as a graph (CUDA)."""

    device: torch.device
    stack: str  # mlp | vmap | loop
    script: bool
    cuda_graphs: bool
    lanes: int | None
    checkpoint_every: int
    independent: bool = True  # whether a unit's numbers are independent of its layout (module docstring)

    @property
    def one_thread(self) -> bool:
        """Whether every unit computes on one thread (independent CPU stacks that run in lanes)."""
        return self.independent and self.device.type == "cpu" and STACKS[self.stack].lanes

    @property
    def groups(self) -> bool:
        """Whether units train faster as one group than one after another (the stack vectorises)."""
        return STACKS[self.stack].groups

    def record(self) -> dict:
        """What a run records of its engine (the invocation log)."""
        return {"engine": self.stack, "script": self.script, "cuda_graphs": self.cuda_graphs,
                "lanes": self.lanes or "auto", "device": str(self.device), "layout_independent": self.independent}


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when this torch sees a GPU, else CPU; anything else is checked, not trusted."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this torch ({torch.__version__}) sees no CUDA GPU; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def plan(template: torch.nn.Module, example, options: Options = Options()) -> Plan:
    """The engine's plan for `template` (probed on `example`, two training examples (x, y))."""
    device = resolve_device(options.device)
    stack = choose(template, example, options.stack, independent=options.independent)
    fixed = STACKS[stack].fixed_kernels
    independent = options.independent and device.type == "cpu" and stack != "vmap"
    return Plan(device, stack, script=options.script and fixed and device.type == "cpu",
                cuda_graphs=options.cuda_graphs and fixed and device.type == "cuda",
                lanes=options.lanes, checkpoint_every=options.checkpoint_every, independent=independent)
