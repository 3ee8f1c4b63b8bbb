"""`find_ticket`: the whole experiment on your own model and data, from Python."""

import copy
import os
import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path

import torch
from torch import nn

from lottery import engine
from lottery.analysis.table import write_csv
from lottery.analysis.verdict import verdicts
from lottery.api import identity
from lottery.api.ticket import Ticket
from lottery.api.user_model import UserModel
from lottery.config import (
    DEFAULT_BRANCHES,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
)
from lottery.data import split_validation
from lottery.errors import ConfigError, DivergenceWarning, InitWarning
from lottery.imp.branches import all_units
from lottery.imp.driver import Experiment, RunOptions
from lottery.progress import duration, reporter_for
from lottery.pruning import prunable_names
from lottery.store import default_root


def find_ticket(model, train, test, *, levels: int = 5, seeds=(0, 1, 2), branches=DEFAULT_BRANCHES, store=None,
                prunable: list[str] | None = None, validation_size: int | None = None, rate: float = 0.2,
                output_rate: float = 0.1, scope: str = "layerwise", rewind_step: str = "0", init_fn=None,
                fresh: bool = False, progress: bool | None = None, device: str = "auto", length: str = "20ep",
                eval_every: str = "0.5ep", delta: float = 0.005, executor: str = "local", address: str | None = None,
                **training) -> Ticket:
    """Iterative magnitude pruning with rewinding, its controls (`branches`), and the verdict, on
    your own classifier and data.

    `model`: a function returning your module (a factory, called under each seed: your
    initialisation is kept), or a module (each seed re-draws it with `reset_parameters()`);
    `init_fn(module)` runs after either, under the seed. `train`, `test`: (x, y) tensors, or a
    map-style dataset of (x, y) pairs; y holds class indices. `prunable`: parameter names to prune
    (default: the weights of Linear and Conv layers). `length`, `eval_every`: steps ('2000') or
    epochs ('20ep'); `training`: any other TrainConfig field (optimizer, lr, batch_size, ...).
    `device`: auto, cpu, cuda or cuda:N. `progress`: None shows it where stderr is a terminal or a
    notebook. `delta`: the matching margin of the verdict (0.005: half a point of accuracy).
    `executor`: "local" (this machine) or "ray" (Ray tasks: a local instance, or the cluster at
    `address`; the numbers are the same either way).

    The run is stored like any other, named by a fingerprint of your model's code, initial values
    and data: calling again with the same ones reuses what is done and resumes the rest (more
    levels, seeds or branches extend it); `fresh=True` starts a new run regardless.
    """
    allowed = {f.name for f in fields(TrainConfig)} - {"length", "eval_every"}
    unknown = sorted(set(training) - allowed)
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; allowed: length, eval_every, "
                          f"{', '.join(sorted(allowed))}")
    x, y = _examples(train, "train")
    test_x, test_y = _examples(test, "test")
    if x.shape[1:] != test_x.shape[1:]:
        raise ConfigError(f"train inputs have shape {tuple(x.shape[1:])} but test inputs {tuple(test_x.shape[1:])}: "
                          "they must match")
    bad_seeds = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)]
    if bad_seeds:
        raise ConfigError(f"seeds must be integers; got {bad_seeds}")
    user = UserModel(model, init_fn)
    template = user.template
    names = list(prunable) if prunable is not None else prunable_names(template)
    params = dict(template.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(f"prunable names {missing} are not parameters of the model; it has {', '.join(params)}")
    if not names:
        raise ConfigError("the model has nothing to prune: no Linear or Conv weights; pass prunable=[parameter names]")
    num_classes = int(max(y.max(), test_y.max())) + 1
    _check_outputs(template, x, num_classes)
    validation_size = validation_size or min(5000, max(1, len(x) // 10))
    data = split_validation("custom", x, y, test_x, test_y, validation_size, num_classes)
    code = identity.model(template, names, user.factory, init_fn)
    cfg = ExperimentConfig(
        data=DataConfig("custom", validation_size, fingerprint=identity.tensors(x, y, test_x, test_y)),
        model=ModelConfig("custom", fingerprint=code.digest + (f"-fresh-{os.urandom(4).hex()}" if fresh else "")),
        train=TrainConfig(length=str(length), eval_every=str(eval_every), **training),
        prune=PruneConfig(rate=rate, output_rate=output_rate, scope=scope), rewind_step=str(rewind_step),
        levels=levels, seeds=tuple(seeds), branches=tuple(branches))
    show = _interactive() if progress is None else progress
    options = RunOptions(store=Path(store) if store else default_root(), engine=engine.Options(device=device),
                         executor=executor, address=address)
    exp = Experiment(cfg, options, data=data, reporter=reporter_for(quiet=not show), model_factory=user.build,
                     prunable=names)
    if not code.complete and any(exp.store.is_done(u) for u in all_units(cfg)):
        warnings.warn(f"reusing {exp.store.run_dir}: the source of {', '.join(code.unread)} cannot be read (typed "
                      "into this session?), so a change to code it calls outside its class would go unseen; pass "
                      "fresh=True after such a change", InitWarning, stacklevel=2)
    print(_plan_line(exp, cfg, template, data), file=sys.stderr)
    run_dir = exp.run()
    gone = exp.diverged_units()
    if gone:
        warnings.warn(f"{len(gone)} training(s) diverged (their loss stopped being finite), e.g. {gone[0]}: the "
                      "verdict counts none of them as a ticket; a lower lr may help", DivergenceWarning, stacklevel=2)
    results = write_csv(exp.store)  # the store that checked the units as they were trained
    return Ticket(run_dir, results, verdicts(results, delta=delta, seeds=cfg.seeds), cfg.seeds, user)


def _examples(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) tensors, or a map-style dataset of (x, y) pairs, as inputs and class indices."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    else:
        try:
            pairs = [data[i] for i in range(len(data))]
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
            y = torch.stack([torch.as_tensor(p[1]) for p in pairs])
        except Exception as e:  # any shape of failure means the argument is not what we accept
            raise ConfigError(f"{name} must be (x, y) tensors or a map-style dataset of (x, y) pairs: {e}") from None
    if len(x) != len(y):
        raise ConfigError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise ConfigError(f"{name} has no examples")
    classification = ("find_ticket is for classification: the labels must be class indices 0, 1, 2, … "
                      "(one integer per example)")
    if y.dim() != 1:
        raise ConfigError(f"{classification}; {name} labels have shape {tuple(y.shape)}")
    if y.is_floating_point() and not bool((y == y.round()).all()):
        raise ConfigError(f"{classification}; {name} labels are fractions such as {float(y[y != y.round()][0]):g} "
                          "(a regression target?)")
    if len(y) and int(y.min()) < 0:
        raise ConfigError(f"{classification}; {name} labels include {int(y.min())}")
    return x.float(), y.long()


def _check_outputs(template: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    try:
        with torch.no_grad():
            out = copy.deepcopy(template).eval()(x[:2])
    except Exception as e:  # the user's model rejected the data: say so in one line
        raise ConfigError(f"the data (inputs of shape {tuple(x.shape[1:])}) does not fit the model: {e}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"find_ticket is for classification: the model must output [batch, classes] logits; it "
                          f"gives {shape}")
    if out.shape[1] < num_classes:
        raise ConfigError(f"find_ticket is for classification: the model outputs {out.shape[1]} value(s) per example, "
                          f"one logit per class is needed and the labels name {num_classes} classes")


def _interactive() -> bool:
    """Whether someone is watching: stderr is a terminal, or this is a notebook."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _plan_line(exp: Experiment, cfg: ExperimentConfig, template: nn.Module, data) -> str:
    """One line before the work: how many trainings of how many steps, and about how long."""
    units = all_units(cfg)
    todo: dict[int, list] = {}
    for u in units:
        if not exp.store.is_done(u):
            todo.setdefault(u.level, []).append(u)
    about = "nothing to train: all done"
    if todo:
        group = len(cfg.seeds) * len(cfg.branches)
        per_step = _seconds_a_step(exp, template, data, cfg.train, group)
        steps = {lv: exp.total_steps - (0 if lv == 0 else exp.rewind_step) for lv in todo}
        about = (f"about {duration(per_step * sum(steps.values()))}, a level's {group} units training together at "
                 f"{1e3 * per_step:.1f} ms a step")
    count = sum(len(us) for us in todo.values())
    return (f"find_ticket: {count} of {len(units)} trainings to do ({len(cfg.seeds)} seeds × {cfg.levels} levels × "
            f"{len(cfg.branches)} branches + the dense networks), {exp.total_steps} steps each "
            f"({exp.total_steps / cfg.train.steps_per_epoch(len(data.train_x)):.3g} epochs of batch "
            f"{cfg.train.batch_size}) on {exp.plan.device}; {about}. Run: {exp.store.run_dir}")


def _seconds_a_step(exp: Experiment, template: nn.Module, data, train: TrainConfig, group: int) -> float:
    """Seconds a step of `group` replicates takes through the run's engine: two short trainings
    (2 and 10 steps, evaluating only at their ends) timed, their difference over 8 steps, so the
    one-time costs (compiling the step) cancel."""
    from dataclasses import replace

    from lottery.engine import Group, Replicate
    from lottery.pruning import apply, dense

    state = template.state_dict()
    mask = dense(dict(template.named_parameters()), exp.prunable)
    reps = [Replicate(apply(state, mask), mask, data_seed=i) for i in range(group)]
    small = replace(data, val_x=data.val_x[:64], val_y=data.val_y[:64], test_x=data.test_x[:64],
                    test_y=data.test_y[:64])
    seconds = []
    for steps in (2, 10):
        start = time.perf_counter()
        engine.train(Group(template, reps, small, replace(train, length=str(steps), eval_every=str(steps))), exp.plan)
        seconds.append(time.perf_counter() - start)
    return max(seconds[1] - seconds[0], 0.0) / 8
