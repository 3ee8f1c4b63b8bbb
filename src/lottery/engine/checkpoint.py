"""A training's state in a checkpoint, and back: resuming from it continues bit for bit.

A checkpoint holds everything later steps read: the stacked parameters and buffers, the
optimiser's state, the best weights so far (early stopping), the training loss summed since the
last evaluation, the snapshots taken, the history, and the state of an observer that may stop
training (an early-bird search). Keys: `param.*`, `best.*`, `best_loss`, `best_step`,
`train_loss_sum`, `diverged`, `snap.<step>.*`, `opt.*`, `observer.*`; the JSON metadata holds the step, the
step of the last evaluation, the history, the snapshot steps and the observer's own.
"""

import json

import torch


def pack(trainer) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, metadata) of a `lottery.engine.train.Trainer` between two steps."""
    tensors = {f"param.{n}": p.detach() for n, p in trainer.params.items()}
    tensors.update({f"best.{n}": t for n, t in trainer.best.weights.items()})
    tensors["best_loss"], tensors["best_step"] = trainer.best.loss, trainer.best.step
    tensors["train_loss_sum"], tensors["diverged"] = trainer.train_loss_sum, trainer.diverged
    for step, snap in trainer.snapshots.items():
        tensors.update({f"snap.{step}.{n}": t for n, t in snap.items()})
    tensors.update({f"opt.{k}": v for k, v in trainer.optimizer.state_tensors().items()})
    meta = {"step": trainer.step, "last_eval": trainer.last_eval, "history": trainer.history,
            "snapshot_steps": list(trainer.snapshots)}
    if trainer.observer is not None:
        observed, meta["observer"] = trainer.observer.state()
        tensors.update({f"observer.{k}": t for k, t in observed.items()})
    return {k: v.detach().cpu() for k, v in tensors.items()}, json.dumps(meta)


@torch.no_grad()
def unpack(trainer, tensors: dict[str, torch.Tensor], meta: str) -> None:
    """Put a checkpoint's state into `trainer` (made for the same group)."""
    meta = json.loads(meta)
    device = trainer.device
    for n, p in trainer.params.items():
        p.copy_(tensors[f"param.{n}"])
    trainer.best.weights = {n: tensors[f"best.{n}"].to(device) for n in trainer.params}
    trainer.best.loss, trainer.best.step = tensors["best_loss"], tensors["best_step"]
    trainer.train_loss_sum.copy_(tensors["train_loss_sum"])  # the one tensor the programs slice
    if "diverged" in tensors:  # (checkpoints from before divergence was recorded lack it)
        trainer.diverged = tensors["diverged"].clone()
    trainer.snapshots = {int(s): {n: tensors[f"snap.{s}.{n}"] for n in trainer.params} for s in meta["snapshot_steps"]}
    trainer.optimizer.load_state_tensors({k[4:]: t.to(device) for k, t in tensors.items() if k.startswith("opt.")})
    trainer.step, trainer.last_eval, trainer.history = meta["step"], meta["last_eval"], meta["history"]
    if trainer.observer is not None:
        trainer.observer.load_state({k[9:]: t for k, t in tensors.items() if k.startswith("observer.")},
                                    meta.get("observer"))
