"""The training step replayed as a CUDA graph: one launch a step instead of a few dozen.

On a GPU a fixed-kernel step (the MLP engine's) is a few dozen small kernels, and launching them
one by one from Python costs more than running them (measurements: docs/engine.md). A graph
records the step once and replays it. What it touches must keep its memory: the stack's work
buffers and gradients, the parameters and the optimiser state are all updated in place; the
batch's indices and the learning rate go in through two device tensors written before each
replay. The replayed kernels are the eager ones on the same data: results equal the eager
loop's bit for bit (tested on a GPU) where the rate is exact in float32, the type the tensor
holds; otherwise they differ by that rounding of the rate (about 1e-8 of it).
"""

import gc

import torch

WARMUP_STEPS = 3  # eager steps on a side stream before capture, as torch's CUDA-graph notes ask


class GraphedStep:
    """`step(indices, lr)` run eagerly for the first few calls, then captured and replayed."""

    def __init__(self, step, indices_like: torch.Tensor):
        self._step = step  # (indices, lr) → None, with every tensor it writes updated in place
        self.indices = torch.zeros_like(indices_like)
        self.lr = torch.zeros((), device=indices_like.device)
        self.graph = None
        self.calls = 0
        self._side = torch.cuda.Stream(device=indices_like.device)

    def __call__(self, indices: torch.Tensor, lr: float) -> None:
        with torch.cuda.device(self.indices.device):  # streams and replays belong to the training device
            self._run(indices, lr)

    def _run(self, indices: torch.Tensor, lr: float) -> None:
        self.indices.copy_(indices)
        self.lr.fill_(lr)
        if self.graph is not None:
            self.graph.replay()
            return
        self.calls += 1
        if self.calls <= WARMUP_STEPS:  # real training steps, on a side stream (lazy library set-up)
            self._side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._side):
                self._step(self.indices, self.lr)
            torch.cuda.current_stream().wait_stream(self._side)
            return
        graph = torch.cuda.CUDAGraph()
        # No garbage collection inside the capture: trainers live in reference cycles, so the
        # collector frees an earlier trainer's graph at whatever allocation it runs, and inside a
        # capture that is a CUDA call the capture forbids: it voids the capture ("operation not
        # permitted when stream is capturing", seen on an H200 with torch 2.11, whose
        # torch.cuda.graph no longer collects first). Paused, not run now: collecting first cost
        # a tenth of a second a trainer there (docs/engine.md).
        collecting = gc.isenabled()
        gc.disable()
        try:
            with torch.cuda.graph(graph):  # records, runs nothing
                self._step(self.indices, self.lr)
        finally:
            if collecting:
                gc.enable()
        self.graph = graph
        graph.replay()
