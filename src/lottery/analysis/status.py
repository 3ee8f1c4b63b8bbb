"""Progress of a run from its store alone: units done, running (where: host, process, Ray node)
and waiting, the groups in training, an ETA. Works while other processes train the run."""

import json
from dataclasses import replace

from lottery import atomic
from lottery.imp.branches import all_units
from lottery.store import RunStore


def status_lines(store: RunStore) -> list[str]:
    inv = [i for i in store.invocations() if i.get("event") == "started"]
    summaries = store.summaries()
    name = store.run_dir
    if not inv:
        return [f"{name}: never started"]
    last = inv[-1]
    cfg = replace(store.config(), levels=last["levels"], seeds=tuple(last["seeds"]), branches=tuple(last["branches"]))
    units = all_units(cfg)
    done = sum(store.is_done(u) for u in units)
    holders = {u: h for u in units if not store.is_done(u) and (h := store.claims.holder(u)) is not None}
    ended = [i for i in store.invocations() if i.get("event") in ("finished", "interrupted")]
    state = "finished" if done == len(units) else ("running" if holders else
                                                   "killed" if len(ended) < len(inv) else "interrupted")
    lines = [f"{name}: {done}/{len(units)} units done, {len(holders)} running, "
             f"{len(units) - done - len(holders)} waiting ({state}); levels 0-{cfg.levels}, "
             f"seeds {','.join(map(str, cfg.seeds))}, branches {','.join(cfg.branches)}"]
    where: dict[str, list] = {}
    for unit, h in holders.items():
        place = f"node {h['node']}" if h.get("node") else f"host {h.get('host', '?')}, pid {h.get('pid', '?')}"
        where.setdefault(place, []).append(unit)
    for place, held in sorted(where.items()):
        lines.append(f"  running on {place}: {len(held)} unit(s), e.g. {held[0].key}")
    for unit, problem in store.damaged.items():
        lines.append(f"  damaged: {unit.key} ({problem}); the next run recomputes it")
    in_training = 0.0
    for ckpt in sorted((store.run_dir / "checkpoints").glob("level_*.safetensors")):
        try:
            step = json.loads(atomic.read_metadata(ckpt)["meta"])["step"]
        except (atomic.DamagedFile, KeyError, ValueError):
            lines.append(f"  in training: {ckpt.stem} (its checkpoint is damaged: that training starts over)")
            continue
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
