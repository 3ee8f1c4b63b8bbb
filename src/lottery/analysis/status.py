"""Progress of a run from its store alone: units done / total, the group in training, an ETA."""

import json
from dataclasses import replace

from lottery import atomic
from lottery.imp.branches import level_units
from lottery.store import RunStore


def status_lines(store: RunStore) -> list[str]:
    inv = [i for i in store.invocations() if i.get("event") == "started"]
    summaries = store.summaries()
    name = store.run_dir
    if not inv:
        return [f"{name}: never started"]
    last = inv[-1]
    cfg = replace(store.config(), levels=last["levels"], seeds=tuple(last["seeds"]), branches=tuple(last["branches"]))
    units = [u for lv in range(cfg.levels + 1) for u in level_units(cfg, lv)]
    done = sum(store.is_done(u) for u in units)
    ended = [i for i in store.invocations() if i.get("event") in ("finished", "interrupted")]
    state = "finished" if done == len(units) else ("running or killed" if len(ended) < len(inv) else "interrupted")
    lines = [f"{name}: {done}/{len(units)} units done ({state}); levels 0-{cfg.levels}, "
             f"seeds {','.join(map(str, cfg.seeds))}, branches {','.join(cfg.branches)}"]
    in_training = 0.0
    for ckpt in sorted((store.run_dir / "checkpoints").glob("level_*.safetensors")):
        step = json.loads(atomic.read_metadata(ckpt)["meta"])["step"]
        total = summaries[0]["steps"] if summaries else None
        in_training = step / total if total else 0.0
        lines.append(f"  in training: {ckpt.stem} at step {step}" + (f"/{total}" if total else ""))
    if summaries and done < len(units):
        per_unit = sum(s["train_seconds"] for s in summaries) / len(summaries)
        remaining = len(units) - done
        group = max(1, summaries[-1].get("group_size", 1))
        eta = per_unit * (remaining - in_training * group)
        lines.append(f"  ETA about {eta / 60:.1f} min at {per_unit:.1f} s of training per unit")
    return lines
