"""What the ticket buys: at the verdict's level, its size on disk, its multiply-adds, and its
speed compiled sparse against the same network run dense, measured on the machine that writes
the report (one thread; lottery.sparse).
"""

import time

import torch
from torch import nn

from lottery import models
from lottery.analysis.verdict import Verdict
from lottery.data import DATASETS
from lottery.engine.lanes import one_thread
from lottery.store import RunStore, Unit

CALLS = 200  # timed calls a measurement, at most
SECONDS = 1.0  # about how long one measurement may take: a big network (VGG-16) gets fewer calls, not minutes


def _multiply_adds(net: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(kept, all) multiply-adds of one example through the Linear and Conv layers (their weights'
    kept entries times the positions each is applied at)."""
    counts = {"kept": 0, "all": 0}

    def hook(module, inputs, output):
        positions = output[0].numel() // module.weight.shape[0]  # outputs per unit for one example
        counts["kept"] += int((module.weight != 0).sum()) * positions
        counts["all"] += module.weight.numel() * positions
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    with torch.no_grad():
        net(x[:1])
    for h in handles:
        h.remove()
    return counts["kept"], counts["all"]


def measure(store: RunStore, verdict: Verdict) -> dict | None:
    """The numbers, for the verdict's level (the matching one, else the sparsest compared) and its
    first seed; None when the run's model is not a built-in one (a find_ticket run: use
    lottery.sparse on your module)."""
    from lottery import sparse
    from lottery.sparse import ticket_file
    from lottery.sparse.compile import median_seconds

    cfg = store.config()
    source = DATASETS.get(cfg.data.dataset)
    at = verdict.level if verdict.status == "matching" else (verdict.compared_at.level if verdict.compared_at else None)
    if cfg.model.name not in models.MODELS or source is None or at is None or not verdict.seeds:
        return None
    unit = Unit(at, "imp", verdict.seeds[0])
    state, masks, info = ticket_file.from_store(store, unit)
    net = models.build(cfg.model.name, source.input_shape, source.num_classes, 0)
    net.load_state_dict(state)
    net.eval()
    dense_state = store.weights(Unit(0, "imp", verdict.seeds[0]), "final")
    from safetensors.torch import save

    dense_bytes = len(save({k: v.contiguous() for k, v in dense_state.items()}))
    ticket_bytes = len(ticket_file.encode(state, masks, info))
    def timed(fn, x) -> float:
        with torch.no_grad():
            start = time.perf_counter()
            fn(x)
            once = time.perf_counter() - start
        calls = max(5, min(CALLS, int(SECONDS / max(once, 1e-9))))
        return median_seconds(fn, x, calls, warmup=min(10, calls))

    out = {"level": at, "seed": unit.seed, "fraction_remaining": info["fraction_remaining"],
           "dense_bytes": dense_bytes, "ticket_bytes": ticket_bytes}
    with one_thread():
        for batch in (1, 64):
            x = torch.randn(batch, *source.input_shape, generator=torch.Generator().manual_seed(batch))
            fast = sparse.compile(net, batch_size=batch)
            out[f"dense_s_b{batch}"], out[f"sparse_s_b{batch}"] = timed(net, x), timed(fast, x)
            out[f"how_b{batch}"] = ", ".join(sorted({c[1] for c in getattr(fast, "choices", [])})) or "dense"
        out["kept_macs"], out["all_macs"] = _multiply_adds(net, x)
    return out


def lines(m: dict | None) -> list[str]:
    if m is None:
        return ["Not measured: the run's model is not one of the built-in models (lottery.sparse.compile your own)."]
    return [
        f"The ticket at level {m['level']} (seed {m['seed']}), {100 * m['fraction_remaining']:.1f}% of the weights:",
        f"  on disk (`lottery ticket`): {m['ticket_bytes']:,} bytes against {m['dense_bytes']:,} for the dense "
        f"network's weights ({m['ticket_bytes'] / m['dense_bytes']:.1%})",
        f"  multiply-adds per example: {m['kept_macs']:,} kept of {m['all_macs']:,} ({m['kept_macs'] / m['all_macs']:.1%};"
        f" ideal speed-up {m['all_macs'] / max(1, m['kept_macs']):.1f}x)",
        f"  measured here, one thread: batch 1 {1e6 * m['dense_s_b1']:.1f} µs dense, {1e6 * m['sparse_s_b1']:.1f} µs "
        f"compiled ({m['dense_s_b1'] / m['sparse_s_b1']:.2f}x; {m['how_b1']}); batch 64 "
        f"{1e3 * m['dense_s_b64']:.2f} ms dense, {1e3 * m['sparse_s_b64']:.2f} ms compiled "
        f"({m['dense_s_b64'] / m['sparse_s_b64']:.2f}x; {m['how_b64']})",
    ]
