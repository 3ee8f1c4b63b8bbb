"""The engine: trains groups of replicates of one architecture, fast, through one front door.

    from lottery import engine
    results = engine.train(engine.Group(template, replicates, data, train_config), engine.Options())

`Group` says what to train (replicates sharing a schedule), `Options` how (device, stack,
compiled steps, lanes, checkpoint interval); `plan` makes the options concrete for a model once
(which stack runs it, whether its step compiles), and `train` takes a plan or options alike.
Results come back in the replicates' order, on the CPU. The semantics, for one replicate in one
sitting, are `reference.train_one`; tests hold the fast paths to it.

    group.py      what a group is, what comes back
    options.py    Options → Plan (device, stack, compiled steps)
    train.py      the loop: evaluations, early stopping, snapshots, checkpoints
    schedule.py   data order, learning rates, when to evaluate
    state.py      the group's tensors stacked [S, R, ...]
    stacked/      stacks: the forward and backward of every replicate at once
    step.py       one step (scripted.py: compiled to TorchScript; cuda_graph.py: replayed)
    lanes.py      single-threaded programs side by side on a multi-core CPU
    optim.py      fused Adam and SGD over the stacked tensors
    masking.py    how pruned weights stay exactly zero
    evaluate.py   loss and accuracy of a stack; early stopping
    checkpoint.py a training's state in a checkpoint and back
    reference.py  the plain loop: the semantics, for one replicate
"""

from lottery.engine.group import Group, Replicate, ReplicateResult
from lottery.engine.options import Options, Plan, plan, resolve_device
from lottery.engine.train import Trainer

__all__ = ["Group", "Options", "Plan", "Replicate", "ReplicateResult", "Trainer", "plan", "resolve_device", "train"]


def train(group: Group, how: Options | Plan = Options(), *, checkpoint=None, progress=None,
          observer=None) -> list[ReplicateResult]:
    """Train `group` and return each replicate's result, in the order given.

    `checkpoint`: an object with `save(tensors, meta)` and `load()` (None when there is none):
    training saves there every `checkpoint_every` steps and resumes from it bit for bit.
    `progress(step, total, metrics=None)`: called as steps are taken, and after each evaluation
    with `metrics`, the group's mean `train_loss`, `val_loss` and `val_acc` there. `observer(step, params) → bool`: called
    at every evaluation with the stacked state; True stops training there. An observer keeps its
    own state in checkpoints through `state() → (tensors, json-able)` and `load_state(tensors, meta)`.
    """
    resolved = how if isinstance(how, Plan) else plan(group.template, group.example(), how)
    return Trainer(group, resolved, checkpoint=checkpoint, progress=progress, observer=observer).run()
