"""Space-time memory read: L2 affinity, top-k softmax, readout (STCN), chunked over query positions.

The affinity between memory position m and query position q is the negative squared L2 distance
divided by sqrt(Ck): (2 k_m.q_q - |k_m|^2 - |q_q|^2) / sqrt(Ck). The |q|^2 term is constant per
query position, so it cannot change a softmax over memory positions and is dropped (as in STCN).

Layout: affinities are held query-major, (query positions, memory positions), so the top-k and
the softmax run along contiguous rows.

Chunking: query positions are processed in chunks whose temporaries stay under `max_bytes`, so a
large memory never needs the whole (THW x HW) matrix. The affinity GEMM itself always runs on
fixed blocks of BLOCK query positions (BLAS libraries pick different kernels, and so round
differently, for different matrix widths), which makes the result bit-identical whatever the
budget, as long as a chunk holds at least one block.

Precision: affinities and softmaxes are always float32, also under torch.autocast, so fp16/bf16
runs do not lose the small differences between large squared distances.
"""
import math
import warnings

import torch

# Budget for the per-chunk temporaries (affinity rows, top-k buffers, gathered values).
DEFAULT_MAX_BYTES = 256 << 20
# Query positions per affinity GEMM (fixed: see the module docstring).
BLOCK = 256

# torch warns once per process that sparse CSR is "beta"; use up that warning silently here.
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    torch.sparse_csr_tensor(torch.tensor([0, 1]), torch.tensor([0]), torch.ones(1), size=(1, 1))


def _flat_keys(k):
    """(1, Ck, [T,] h, w) or (Ck, N) -> (Ck, N) float32."""
    if k.dim() >= 3:
        if k.shape[0] != 1:
            raise ValueError(f'keys must have batch size 1, got shape {tuple(k.shape)}')
        k = k[0]
    return k.reshape(k.shape[0], -1).float()


def _no_autocast(device):
    return torch.autocast(device_type=device.type, enabled=False)


class _Affinity:
    """Affinity rows for query positions [s, e): (e - s, N) float32, computed in fixed blocks."""

    def __init__(self, mk, qk):
        self.mk = mk.float().contiguous()                               # (Ck, N)
        self.q = qk.float().t().contiguous()                            # (M, Ck)
        ck = self.mk.shape[0]
        self.alpha = 2.0 / math.sqrt(ck)
        self.bias = (self.mk.pow(2).sum(0) / -math.sqrt(ck))[None]      # (1, N): -|k|^2 / sqrt(Ck)
        self.n, self.m = self.mk.shape[1], self.q.shape[0]

    def rows(self, s, e, out=None):
        out = torch.empty((e - s, self.n), device=self.mk.device) if out is None else out[:e - s]
        with _no_autocast(self.mk.device):
            # Blocks start at multiples of BLOCK from 0 (chunks are aligned to BLOCK) so every
            # query position always sees the same GEMM shape.
            for b in range(s, e, BLOCK):
                be = min(e, (b // BLOCK + 1) * BLOCK)
                torch.addmm(self.bias, self.q[b:be], self.mk, alpha=self.alpha, out=out[b - s:be - s])
        return out


def _chunk_rows(m, per_row_bytes, max_bytes):
    """Query positions per chunk: a multiple of BLOCK (fewer only if one block busts the budget)."""
    if max_bytes is None:
        return m
    rows = int(max_bytes // max(1, per_row_bytes))
    if rows >= BLOCK:
        rows = rows // BLOCK * BLOCK
    else:
        # One block does not fit: shrink to a divisor of BLOCK so chunks stay block-aligned.
        rows = 1 << max(0, int(math.log2(max(1, rows))))
    return max(1, min(m, rows))


def l2_affinity(mk, qk):
    """mk (Ck, N), qk (Ck, M) -> (N, M) float32 affinity (2 k.q - |k|^2) / sqrt(Ck)."""
    a = _Affinity(_flat_keys(mk), _flat_keys(qk))
    return a.rows(0, a.m).t()


def topk_softmax(affinity, top_k, dim=0):
    """Softmax along `dim` (memory positions) over the top_k entries only.

    Returns (weights, indices) in float32, top_k long along `dim`; every other entry of the dense
    result is 0. top_k=None (or >= the memory size) keeps everything.
    """
    n = affinity.shape[dim]
    with _no_autocast(affinity.device):
        affinity = affinity.float()
        if top_k is None or top_k >= n:
            shape = [1] * affinity.dim()
            shape[dim] = n
            idx = torch.arange(n, device=affinity.device).view(shape).expand_as(affinity)
            return torch.softmax(affinity, dim=dim), idx
        values, idx = torch.topk(affinity, k=top_k, dim=dim)
        return torch.softmax(values, dim=dim), idx


def dense_topk_affinity(mk, qk, top_k=20):
    """Dense (N, M) top-k softmaxed affinity (the STCN 'affinity' matrix; for tests and small inputs)."""
    aff = l2_affinity(mk, qk)
    w, idx = topk_softmax(aff, top_k, dim=0)
    return torch.zeros_like(aff).scatter_(0, idx, w)


def full_softmax_affinity(mk, qk):
    """Dense (N, M) full-softmax affinity (MiVOS `get_W`; for tests and small inputs)."""
    return torch.softmax(l2_affinity(mk, qk), dim=0)


def _weighted_rows(weights, idx, rows):
    """out[q] = sum_j weights[q, j] * rows[idx[q, j]]  ->  (c, C)."""
    c, k = idx.shape
    if rows.device.type == 'cpu' and rows.dtype == torch.float32:
        # A CSR matrix with k entries per row: no (c, k, C) gather buffer, ~3x faster on CPU.
        crow = torch.arange(0, c * k + 1, k, device=rows.device)
        a = torch.sparse_csr_tensor(crow, idx.reshape(-1), weights.reshape(-1), size=(c, rows.shape[0]),
                                    check_invariants=False)
        with _no_autocast(rows.device):
            return torch.sparse.mm(a, rows)
    gathered = rows.index_select(0, idx.reshape(-1)).view(c, k, rows.shape[1])
    return torch.bmm(weights.to(rows.dtype).unsqueeze(1), gathered).squeeze(1)


def memory_readout(mk, mv, qk, top_k=20, max_bytes=DEFAULT_MAX_BYTES):
    """Top-k memory read for all objects at once.

    mk: (1, Ck, T, h, w) memory keys (shared by all objects); mv: (K, Cv, T, h, w) memory values;
    qk: (1, Ck, h, w) query key. Returns (K, Cv, h, w) in mv's dtype:
    readout[k, :, q] = sum_m softmax_topk(A)[m, q] * mv[k, :, m].

    Only the top-k memory entries of each query position are read (not a dense
    (K*Cv, THW) @ (THW, HW) product), so apart from the Ck-dimensional affinity the cost does
    not grow with the memory size.
    """
    kk, cv = mv.shape[:2]
    h, w = qk.shape[-2:]
    aff = _Affinity(_flat_keys(mk), _flat_keys(qk))
    n, m = aff.n, aff.m
    if mv[0, 0].numel() != n:
        raise ValueError(f'memory keys have {n} positions but values have {mv[0, 0].numel()}')
    k_eff = n if top_k is None else min(top_k, n)
    rows = mv.reshape(kk * cv, n).t().contiguous()         # (N, K*Cv): one memory position per row
    per_row = n * 4 + k_eff * 16 + kk * cv * 4 + k_eff * kk * cv * mv.element_size()
    chunk = _chunk_rows(m, per_row, max_bytes)
    out = mv.new_empty((m, kk * cv))
    buf = None
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        buf = aff.rows(s, e, buf if buf is not None else torch.empty((min(chunk, m), n), device=mv.device))
        wts, idx = topk_softmax(buf, k_eff, dim=1)          # (c, k)
        out[s:e] = _weighted_rows(wts, idx, rows).to(out.dtype)
    return out.t().reshape(kk, cv, h, w)


def attention_readout(mk, qk, values, max_bytes=DEFAULT_MAX_BYTES):
    """Full-softmax attention read of per-position scalars (MiVOS fusion attention).

    mk: (1, Ck, [T,] h, w) memory keys, qk: (1, Ck, h, w) query key, values: (B, N), one scalar
    per memory position. Returns (B, M) float32 = values @ softmax(A over memory positions).
    """
    aff = _Affinity(_flat_keys(mk), _flat_keys(qk))
    n, m = aff.n, aff.m
    vals = values.reshape(values.shape[0], n).float().t().contiguous()     # (N, B)
    chunk = _chunk_rows(m, n * 8, max_bytes)
    out = vals.new_empty((m, vals.shape[1]))
    buf = None
    with _no_autocast(vals.device):
        for s in range(0, m, chunk):
            e = min(m, s + chunk)
            buf = aff.rows(s, e, buf if buf is not None else torch.empty((min(chunk, m), n), device=vals.device))
            out[s:e] = torch.softmax(buf, dim=1) @ vals
    return out.t()
