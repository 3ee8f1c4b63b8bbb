"""Sparse kernels for pruned Linear layers (CPU), from numba when it is installed.

`CSRLayers` holds a chain of pruned Linear layers as one flat CSR structure (rows: output
units); `forward(x)` runs the whole chain, ReLU between layers where asked, in one compiled call:
at small batch the per-op dispatch of torch (several µs an op) is most of the time, so one call
for the network is what makes batch 1 fast.

How a layer is computed: activations are kept feature-major ([features, batch tile]), so each
kept weight w of output row o and input i adds w · x[i, :] to y[o, :]: a contiguous multiply-add
over the tile that the compiler turns into vector instructions. The input tile is transposed
once on the way in and the output once on the way out; tiles of TILE examples keep a layer's
activations in cache. A single example takes a gather-and-sum loop instead.

Without numba, `available()` is False and lottery.sparse.compile falls back on torch's CSR
matmul (one call a layer).
"""

import os

import numpy as np
import torch

from lottery.data.cache import cache_dir

TILE = 64
_KERNELS = None


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _kernels():
    """The compiled kernels (numba caches them on disk in the user cache: compiled once a machine)."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
    import numba

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def transpose(x, xt):  # pragma: no cover (compiled): xt[i, b] = x[b, i]
        for i in range(x.shape[1]):
            for b in range(x.shape[0]):
                xt[i, b] = x[b, i]

    @numba.njit(nogil=True, cache=True, boundscheck=False, fastmath=True)
    def layer(src, tb, dst, indptr, indices, values, bias, rows, p0, v0, b0, relu):  # pragma: no cover
        # dst[o, :tb] = bias[o] + Σ_k w_k · src[i_k, :tb] over row o's kept weights, eight at a time:
        # one read-modify-write of dst's row for eight products (src and dst are C-contiguous and
        # indexed from 0, so the loop over b compiles to vector instructions)
        for o in range(rows):
            bo = bias[b0 + o]
            for b in range(tb):
                dst[o, b] = bo
            k, end = indptr[p0 + o], indptr[p0 + o + 1]
            while k + 8 <= end:
                q = v0 + k
                i0, i1, i2, i3 = indices[q], indices[q + 1], indices[q + 2], indices[q + 3]
                i4, i5, i6, i7 = indices[q + 4], indices[q + 5], indices[q + 6], indices[q + 7]
                w0, w1, w2, w3 = values[q], values[q + 1], values[q + 2], values[q + 3]
                w4, w5, w6, w7 = values[q + 4], values[q + 5], values[q + 6], values[q + 7]
                for b in range(tb):
                    dst[o, b] += (w0 * src[i0, b] + w1 * src[i1, b] + w2 * src[i2, b] + w3 * src[i3, b]
                                  + w4 * src[i4, b] + w5 * src[i5, b] + w6 * src[i6, b] + w7 * src[i7, b])
                k += 8
            while k < end:
                i, w = indices[v0 + k], values[v0 + k]
                for b in range(tb):
                    dst[o, b] += w * src[i, b]
                k += 1
            if relu:
                for b in range(tb):
                    if dst[o, b] < 0.0:
                        dst[o, b] = 0.0

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def tiles(x, xt, indptr, indices, values, bias, meta, out, buf0, buf1):  # pragma: no cover (compiled)
        # x [batch, in] → out [batch, out], TILE examples at a time; xt [in, TILE] holds a tile's
        # input feature-major (a transposed copy is cheaper than strided reads in every product)
        n_layers, batch, tile = meta.shape[0], x.shape[0], xt.shape[1]
        for t0 in range(0, batch, tile):
            tb = min(tile, batch - t0)
            transpose(x[t0:t0 + tb], xt)
            layer(xt, tb, buf0, indptr, indices, values, bias, meta[0, 0], meta[0, 1], meta[0, 2], meta[0, 3], meta[0, 4])
            src, dst = buf0, buf1
            for n in range(1, n_layers):
                layer(src, tb, dst, indptr, indices, values, bias, meta[n, 0], meta[n, 1], meta[n, 2], meta[n, 3],
                      meta[n, 4])
                src, dst = dst, src
            for b in range(tb):
                for o in range(meta[n_layers - 1, 0]):
                    out[t0 + b, o] = src[o, b]

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def one(x, indptr, indices, values, bias, meta, out, src0, src1):  # pragma: no cover (compiled)
        # a single example: each output a gather-and-sum over its row's kept weights (vector
        # gathers, which fastmath would allow, measured slower here)
        src, dst = src0, src1
        for i in range(x.shape[1]):
            src[i] = x[0, i]
        for n in range(meta.shape[0]):
            rows, p0, v0, b0, relu = meta[n, 0], meta[n, 1], meta[n, 2], meta[n, 3], meta[n, 4]
            for o in range(rows):
                acc = bias[b0 + o]
                for k in range(indptr[p0 + o], indptr[p0 + o + 1]):
                    acc += values[v0 + k] * src[indices[v0 + k]]
                if relu and acc < 0.0:
                    acc = np.float32(0.0)
                dst[o] = acc
            src, dst = dst, src
        for o in range(out.shape[1]):
            out[0, o] = src[o]

    _KERNELS = (tiles, one)
    return _KERNELS


class CSRLayers:
    """A chain of Linear layers (weights [out, in] with zeros where pruned, biases or None), ReLU
    after every layer but the last when `relu_between`, as one compiled call."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor | None], relu_between: bool = True):
        indptr, indices, values, bias, meta = [], [], [], [], []
        p_off = v_off = b_off = 0
        for n, w in enumerate(weights):
            w = w.detach().float().cpu().numpy()
            rows, cols = w.shape
            kept = w != 0
            counts = kept.sum(1)
            ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            r, c = np.nonzero(kept)  # row-major: each row's kept entries in column order
            indptr.append(ptr)
            indices.append(c.astype(np.int32))
            values.append(w[r, c].astype(np.float32))
            b = biases[n]
            bias.append(np.zeros(rows, np.float32) if b is None else b.detach().float().cpu().numpy())
            meta.append([rows, p_off, v_off, b_off, int(relu_between and n < len(weights) - 1)])
            p_off, v_off, b_off = p_off + rows + 1, v_off + len(c), b_off + rows
        self.indptr, self.indices = np.concatenate(indptr), np.concatenate(indices).astype(np.int32)
        self.values, self.bias = np.concatenate(values), np.concatenate(bias)
        self.meta = np.asarray(meta, dtype=np.int64)
        self.n_in, self.n_out = weights[0].shape[1], weights[-1].shape[0]
        self.width = max([self.n_in] + [w.shape[0] for w in weights])
        self.nnz = len(self.values)
        self._xt = np.empty((self.n_in, TILE), np.float32)
        self._tiles = (np.empty((self.width, TILE), np.float32), np.empty((self.width, TILE), np.float32))
        self._vectors = (np.empty(self.width, np.float32), np.empty(self.width, np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [batch, in] (CPU) → [batch, out], float32, in one compiled call."""
        tiles, one = _kernels()
        if x.requires_grad or x.dtype != torch.float32 or not x.is_contiguous():
            x = x.detach().float().contiguous()
        xs = x.numpy()
        out = np.empty((xs.shape[0], self.n_out), np.float32)  # numpy's allocation is the cheaper, at batch 1
        if xs.shape[0] == 1:
            one(xs, self.indptr, self.indices, self.values, self.bias, self.meta, out, *self._vectors)
        else:
            tiles(xs, self._xt, self.indptr, self.indices, self.values, self.bias, self.meta, out, *self._tiles)
        return torch.from_numpy(out)
