"""What a ticket buys at inference: LeNet-300-100 tickets compiled sparse vs the same masked model
run dense, vs a dense model of the same parameter count, and the file sizes.

Tickets at about 21%, 7%, 3.6% and 1.5% of the weights remaining: the paper's per-layer rule
(hidden layers 20%, output 10% a level) applied 7, 12, 15 and 19 times by magnitude (speed
depends on the masks' shapes and counts, not on the values). Contenders, one thread each
(torch.set_num_threads(1); the compiled kernel is single-threaded):

- dense: the masked model as an nn.Module, zeros and all (what `ticket.module()` gives);
- compiled: `lottery.sparse.compile(model, batch_size)` (one fused sparse call at these shapes);
- torch CSR: each pruned Linear layer through torch's CSR matmul (lottery.sparse.compile.CSRLinear);
- small dense: a dense LeNet whose hidden widths are scaled to the ticket's parameter count.

Latency at batch 1, throughput at batches 64 and 256: medians over rounds that alternate the
contenders; the ideal (dense FLOPs / the ticket's FLOPs) beside each. Last line:
`RESULT speedup_3.6pct_b64=… speedup_3.6pct_b1=… size_ratio_3.6pct=…`.
"""

import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

import lottery.sparse as sparse
from lottery.models import build
from lottery.pruning import dense as dense_mask
from lottery.pruning import magnitude, prunable_names
from lottery.sparse.compile import CSRLinear, median_seconds

torch.set_num_threads(1)
LEVELS = {"21%": 7, "7%": 12, "3.6%": 15, "1.5%": 19}
BATCHES = (1, 64, 256)
ROUNDS, CALLS = 5, 200


def ticket(level: int) -> nn.Module:
    net = build("lenet_300_100", (784,), 10, 0)
    weights = {n: p.detach() for n, p in net.named_parameters()}
    mask = dense_mask(weights, prunable_names(net))
    for _ in range(level):
        mask = magnitude(weights, mask, rate=0.2, output_rate=0.1)
    with torch.no_grad():
        for n, m in mask.items():
            dict(net.named_parameters())[n].mul_(m)
    return net.eval()


def small_dense(kept: int) -> nn.Module:
    """A dense 784-h-h/3-10 MLP (LeNet's shape) with about `kept` weights."""
    best = min(range(1, 301), key=lambda h: abs(784 * h + h * (h // 3 or 1) + (h // 3 or 1) * 10 - kept))
    h2 = best // 3 or 1
    return nn.Sequential(nn.Flatten(), nn.Linear(784, best), nn.ReLU(), nn.Linear(best, h2), nn.ReLU(),
                         nn.Linear(h2, 10)).eval()


def csr(net: nn.Module) -> nn.Module:
    return nn.Sequential(net[0], CSRLinear(net[1]), net[2], CSRLinear(net[3]), net[4], CSRLinear(net[5])).eval()


def seconds(fn, x) -> float:
    return median_seconds(fn, x, CALLS, warmup=10)


def flops(net: nn.Module) -> int:
    return sum(int((m.weight != 0).sum()) for m in net.modules() if isinstance(m, nn.Linear))


def file_sizes(net: nn.Module, folder: Path) -> tuple[int, int]:
    from safetensors.torch import save_file

    state = net.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "dense.safetensors"))
    size = sparse.write_ticket(folder / "ticket.safetensors", state, {n: state[n] != 0 for n in prunable_names(net)},
                               {"model": "lenet_300_100", "input_shape": [784], "num_classes": 10})
    return size, (folder / "dense.safetensors").stat().st_size


dense_flops = flops(ticket(0))
results = {}
with tempfile.TemporaryDirectory() as tmp:
    for label, level in LEVELS.items():
        net = ticket(level)
        kept = flops(net)
        size, dense_size = file_sizes(net, Path(tmp))
        row = {"kept": kept / dense_flops, "ideal": dense_flops / kept, "size": size / dense_size, "size_bytes": size}
        for batch in BATCHES:
            x = torch.randn(batch, 784, generator=torch.Generator().manual_seed(batch))
            contenders = {"dense": net, "compiled": sparse.compile(net, batch_size=batch), "torch CSR": csr(net),
                          "small dense": small_dense(kept)}
            runs = {name: [] for name in contenders}
            for _ in range(ROUNDS):
                for name, model in contenders.items():
                    runs[name].append(seconds(model, x))
            times = {name: statistics.median(t) for name, t in runs.items()}
            row[batch] = times
        results[label] = row

print(f"LeNet-300-100 on one thread; medians of {ROUNDS} rounds × {CALLS} calls")
print("| weights left | batch | dense | compiled | speed-up | torch CSR | small dense | ideal |")
print("|---|---|---|---|---|---|---|---|")
for label, row in results.items():
    for batch in BATCHES:
        t = row[batch]
        unit, scale = ("µs a call", 1e6) if batch == 1 else ("examples/s", None)

        def show(s):
            return f"{s * 1e6:.1f} µs" if batch == 1 else f"{batch / s:,.0f}/s"
        print(f"| {100 * row['kept']:.1f}% | {batch} | {show(t['dense'])} | {show(t['compiled'])} | "
              f"{t['dense'] / t['compiled']:.2f}x | {t['dense'] / t['torch CSR']:.2f}x | "
              f"{t['dense'] / t['small dense']:.2f}x | {row['ideal']:.1f}x |")
print("\nfile sizes (ticket file / dense safetensors): " + ", ".join(
    f"{label}: {row['size']:.1%} ({row['size_bytes']:,} bytes)" for label, row in results.items()))
r = results["3.6%"]
print(f"RESULT speedup_3.6pct_b64={r[64]['dense'] / r[64]['compiled']:.2f} "
      f"speedup_3.6pct_b1={r[1]['dense'] / r[1]['compiled']:.2f} "
      f"speedup_3.6pct_b256={r[256]['dense'] / r[256]['compiled']:.2f} size_ratio_3.6pct={r['size']:.3f}")
