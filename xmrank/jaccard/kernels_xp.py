"""The Jaccard kernels in array-module style, for the GPU (``xp=cupy``).

Same inputs, outputs and results as :mod:`xmrank.jaccard.kernels` (the numba
CPU kernels), written only with operations numpy and cupy share: sorting,
``searchsorted`` on 1-D arrays, ``cumsum``, ``bincount`` with weights, fancy
and boolean indexing. So the whole module runs, and is tested, with
``xp=numpy`` on a machine without a GPU.

Every function works on blocks of rows sized by ``budget`` (array entries
held at once), so memory is O(N k) plus one block; nothing is N x N.

Sparse matrices are plain :class:`CSR` tuples of ``xp`` arrays, not scipy or
cupyx objects, so one code path serves both array modules.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .stages import Executor, run_stages

__all__ = [
    "ArrayModuleExecutor",
    "CSR",
    "reciprocal_mask",
    "expand_lists",
    "softmax_weights",
    "sparse_product",
    "minsum_jaccard",
    "jaccard_from_plan",
]

#: Default number of array entries a block may hold (a few hundred MB of temporaries).
BUDGET = 1 << 24


class CSR(NamedTuple):
    """A CSR matrix as ``xp`` arrays (works for numpy and cupy alike)."""

    indptr: object
    indices: object
    data: object
    shape: tuple


# --- helpers that hide the few numpy/cupy differences -----------------------

def _argsort(a, xp):
    """Stable argsort of a 1-D array (cupy's sorts are always stable and take no ``kind``)."""
    return np.argsort(a, kind="stable") if xp is np else xp.argsort(a)


def _to_xp(a, xp, dtype=None):
    return xp.asarray(a) if dtype is None else xp.asarray(a, dtype=dtype)


def as_csr(matrix, xp) -> CSR:
    """A :class:`CSR` of ``xp`` arrays from a scipy/cupyx CSR matrix or a CSR tuple."""
    return CSR(_to_xp(matrix.indptr, xp, np.int64), _to_xp(matrix.indices, xp, np.int64),
               _to_xp(matrix.data, xp), tuple(matrix.shape))


def _row_of_entry(indptr, xp):
    """Row index of every stored entry of a CSR structure."""
    nnz = int(indptr[-1])
    return xp.searchsorted(indptr, xp.arange(nnz, dtype=indptr.dtype), side="right") - 1


def _row_blocks(work, budget, xp):
    """Split rows into consecutive ranges whose summed ``work`` stays near ``budget``.

    Returns a host list of ``(start, stop)``; a single row larger than the
    budget gets a range of its own.
    """
    n = int(work.shape[0])
    if n == 0:
        return []
    cum = np.asarray(_host(xp.cumsum(work)), dtype=np.int64)
    bounds = [0]
    while bounds[-1] < n:
        start = bounds[-1]
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + budget, side="right"))
        bounds.append(min(n, max(stop, start + 1)))
    return list(zip(bounds[:-1], bounds[1:]))


def _host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _expand(owner_len, owner_first, xp):
    """For owners with ``owner_len`` items starting at ``owner_first`` in a flat array:
    the owner of every expanded item and the item's flat position."""
    total = int(owner_len.sum())
    ends = xp.cumsum(owner_len)
    t = xp.arange(total, dtype=ends.dtype)
    owner = xp.searchsorted(ends, t, side="right")
    pos = owner_first[owner] + (t - (ends[owner] - owner_len[owner]))
    return owner, pos


def _segments(sorted_keys, xp):
    """Segment id of each element of a sorted key array, and the first index of every segment."""
    new = xp.ones(sorted_keys.shape[0], dtype=bool)
    if sorted_keys.shape[0] > 1:
        new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    seg = xp.cumsum(new) - 1
    return seg, xp.flatnonzero(new)


# --- the kernels --------------------------------------------------------------

def reciprocal_mask(rank, k, *, xp=np, budget=BUDGET):
    """``mask[i, c]``: is ``i`` among the first ``k+1`` columns of ``rank[rank[i, c]]``.

    As :func:`xmrank.jaccard.kernels.reciprocal_mask`: only the first
    ``min(k+1, rank.shape[1])`` columns are tested, the rest is False.
    """
    rank = _to_xp(rank, xp, np.int64)
    n, ncol = rank.shape
    kk = min(k + 1, ncol)
    head = xp.ascontiguousarray(rank[:, :kk])
    mask = xp.zeros((n, ncol), dtype=bool)
    step = max(1, budget // max(1, kk * kk))
    for s in range(0, n, step):
        e = min(n, s + step)
        back = head[head[s:e]]  # (b, kk, kk): the heads of each neighbour's list
        me = xp.arange(s, e, dtype=np.int64)[:, None, None]
        mask[s:e, :kk] = (back == me).any(axis=2)
    return mask


def expand_lists(rank, r_mask, h_rank=None, h_mask=None, *, xp=np, budget=BUDGET):
    """Each row's neighbour set ``E_i`` as CSR ``(indptr, indices)``, sorted and unique per row.

    As :func:`xmrank.jaccard.kernels.expand_lists`: ``R_i = rank[i][r_mask[i]]``;
    every ``c`` in ``R_i`` whose half list ``H_c = h_rank[c][h_mask[c]]`` has
    more than 2/3 of its members in ``R_i`` adds ``H_c``.
    """
    rank = _to_xp(rank, xp, np.int64)
    r_mask = _to_xp(r_mask, xp, bool)
    n, ncol = rank.shape
    none = n  # sentinel, larger than every row index
    R = xp.where(r_mask, rank, none)
    expand = h_rank is not None
    if expand:
        h_rank = _to_xp(h_rank, xp, np.int64)
        h_mask = _to_xp(h_mask, xp, bool)
        hcol = h_rank.shape[1]
        H = xp.where(h_mask, h_rank, none)
        H_size = h_mask.sum(axis=1)
    else:
        hcol = 0
    width = ncol + ncol * hcol
    step = max(1, budget // max(1, 4 * width))
    counts_parts, index_parts = [], []
    for s in range(0, n, step):
        e = min(n, s + step)
        b = e - s
        Rb = R[s:e]
        if expand:
            valid = Rb < none
            cand = xp.where(valid, Rb, 0)
            Hc = H[cand]  # (b, ncol, hcol)
            # |H_c ∩ R_i| by binary search in each row's sorted R_i (keys offset per row)
            span = n + 1
            off = xp.arange(b, dtype=np.int64) * span
            flat = (xp.sort(Rb, axis=1) + off[:, None]).ravel()
            keys = (Hc + off[:, None, None]).ravel()
            pos = xp.minimum(xp.searchsorted(flat, keys), flat.shape[0] - 1)
            hit = (flat[pos] == keys) & (Hc.ravel() < none)
            inter = hit.reshape(b, ncol, hcol).sum(axis=2)
            takes = valid & (inter > (2.0 / 3.0) * H_size[cand])
            added = xp.where(takes[:, :, None], Hc, none).reshape(b, ncol * hcol)
            Eb = xp.concatenate([Rb, added], axis=1)
        else:
            Eb = Rb
        Eb = xp.sort(Eb, axis=1)
        keep = Eb < none
        if Eb.shape[1] > 1:
            keep[:, 1:] &= Eb[:, 1:] != Eb[:, :-1]
        counts_parts.append(keep.sum(axis=1))
        index_parts.append(Eb[keep])
    counts = xp.concatenate(counts_parts) if counts_parts else xp.zeros(0, dtype=np.int64)
    indptr = xp.zeros(n + 1, dtype=np.int64)
    indptr[1:] = xp.cumsum(counts)
    indices = xp.concatenate(index_parts) if index_parts else xp.zeros(0, dtype=np.int64)
    return indptr, indices.astype(np.int64)


def softmax_weights(X, indptr, indices, list_idx, list_sim, *, xp=np, budget=BUDGET):
    """``V[i, j] = softmax_{j in E_i}(-(2 - 2 x_i . x_j))`` over each CSR row, float32.

    As :func:`xmrank.jaccard.kernels.softmax_weights`: similarities found by
    the search (``list_idx``/``list_sim``) are reused, the rest computed.
    """
    X = _to_xp(X, xp, np.float32)
    indptr = _to_xp(indptr, xp, np.int64)
    indices = _to_xp(indices, xp, np.int64)
    list_idx = _to_xp(list_idx, xp, np.int64)
    list_sim = _to_xp(list_sim, xp, np.float32)
    n = indptr.shape[0] - 1
    ncol = list_idx.shape[1]
    d = X.shape[1]
    data = xp.empty(indices.shape[0], dtype=np.float32)
    lengths = xp.diff(indptr)
    two = np.float32(2.0)
    for s, e in _row_blocks(lengths * (ncol + d), budget, xp):
        lo, hi = int(indptr[s]), int(indptr[e])
        if hi == lo:
            continue
        local = _row_of_entry(indptr[s:e + 1] - lo, xp)  # row within the block
        rows = local + s
        cols = indices[lo:hi]
        eq = list_idx[rows] == cols[:, None]
        found = eq.any(axis=1)
        sim = list_sim[rows, xp.argmax(eq.astype(np.int8), axis=1)]
        miss = xp.flatnonzero(~found)
        if miss.shape[0]:
            sim[miss] = (X[rows[miss]] * X[cols[miss]]).sum(axis=1, dtype=np.float32)
        dist = two - two * sim
        b = e - s
        pos = xp.arange(hi - lo, dtype=np.int64) - (indptr[rows] - lo)
        padded = xp.full((b, int(lengths[s:e].max())), np.inf, dtype=np.float32)
        padded[local, pos] = dist
        mx = -padded.min(axis=1)  # only non-empty rows are read below
        w = xp.exp((-dist - mx[local]).astype(np.float64))
        total = xp.bincount(local, weights=w, minlength=b)
        data[lo:hi] = (w / total[local]).astype(np.float32)
    return data


def sparse_product(Q: CSR, V: CSR, *, xp=np, budget=BUDGET) -> CSR:
    """``Q @ V`` for CSR tuples (the query expansion ``V' = Q V``), float32.

    Rows of the result hold sorted, unique columns. Products are summed in
    float64 and rounded once, so they match scipy's float32 product to
    float32 rounding.
    """
    n_rows, n_cols = Q.shape[0], V.shape[1]
    q_ptr, q_idx, q_val = Q.indptr, Q.indices, Q.data.astype(np.float32)
    v_ptr, v_idx, v_val = V.indptr, V.indices, V.data.astype(np.float32)
    v_len = xp.diff(v_ptr)
    q_rows = _row_of_entry(q_ptr, xp)
    work = xp.bincount(q_rows, weights=v_len[q_idx], minlength=n_rows).astype(np.int64)
    counts = xp.zeros(n_rows, dtype=np.int64)
    idx_parts, val_parts = [], []
    for s, e in _row_blocks(work, budget, xp):
        lo, hi = int(q_ptr[s]), int(q_ptr[e])
        if hi == lo:
            continue
        owner, pos = _expand(v_len[q_idx[lo:hi]], v_ptr[q_idx[lo:hi]], xp)
        row = q_rows[lo:hi][owner] - s
        col = v_idx[pos]
        val = (q_val[lo:hi][owner] * v_val[pos]).astype(np.float64)
        key = row * n_cols + col
        order = _argsort(key, xp)
        key = key[order]
        seg, first = _segments(key, xp)
        sums = xp.bincount(seg, weights=val[order])
        ukey = key[first]
        counts[s:e] = xp.bincount(ukey // n_cols, minlength=e - s)
        idx_parts.append(ukey % n_cols)
        val_parts.append(sums.astype(np.float32))
    indptr = xp.zeros(n_rows + 1, dtype=np.int64)
    indptr[1:] = xp.cumsum(counts)
    indices = xp.concatenate(idx_parts) if idx_parts else xp.zeros(0, dtype=np.int64)
    data = xp.concatenate(val_parts) if val_parts else xp.zeros(0, dtype=np.float32)
    return CSR(indptr, indices, data, (n_rows, n_cols))


def _transpose(A: CSR, xp) -> CSR:
    """CSR of ``A.T`` (equivalently the CSC arrays of ``A``), rows sorted within each column."""
    n_rows, n_cols = A.shape
    rows = _row_of_entry(A.indptr, xp)
    order = _argsort(A.indices * n_rows + rows, xp)
    indptr = xp.zeros(n_cols + 1, dtype=np.int64)
    indptr[1:] = xp.cumsum(xp.bincount(A.indices, minlength=n_cols))
    return CSR(indptr, rows[order], A.data[order], (n_cols, n_rows))


def minsum_jaccard(vq_csr, n_threads=None, *, max_distance=None, xp=np, budget=BUDGET):
    """Jaccard distance ``1 - m/(2-m)``, ``m(i,j) = sum_l min(V'[i,l], V'[j,l])``.

    As :func:`xmrank.jaccard.kernels.minsum_jaccard` (``n_threads`` is
    ignored): every pair that shares a column is stored, or only those with
    distance <= ``max_distance``; the diagonal is stored as 0 for every
    non-empty row. Each unordered pair is computed once (``j > i``) and
    mirrored.

    Parameters
    ----------
    vq_csr : CSR, scipy or cupyx csr_matrix, shape (N, N)
    n_threads : ignored
    max_distance : float, default=None
    xp : module, default=numpy
    budget : int
        Expanded ``(i, l, j)`` triples held at once.

    Returns
    -------
    indptr, indices, data : ``xp`` arrays; int32 indices while they fit, float32 data.
    """
    A = as_csr(vq_csr, xp)
    n = A.shape[0]
    C = _transpose(A, xp)
    limit = 2.0 if max_distance is None else float(np.float32(max_distance))
    col_len = xp.diff(C.indptr)
    a_rows = _row_of_entry(A.indptr, xp)
    work = xp.bincount(a_rows, weights=col_len[A.indices], minlength=n).astype(np.int64)
    r_parts, c_parts, v_parts = [], [], []
    for s, e in _row_blocks(work, budget, xp):
        lo, hi = int(A.indptr[s]), int(A.indptr[e])
        if hi == lo:
            continue
        cols = A.indices[lo:hi]
        owner, pos = _expand(col_len[cols], C.indptr[cols], xp)
        i = a_rows[lo:hi][owner]
        j = C.indices[pos]
        upper = j > i
        owner, pos, i, j = owner[upper], pos[upper], i[upper], j[upper]
        contrib = xp.minimum(A.data[lo:hi][owner], C.data[pos]).astype(np.float64)
        key = (i - s) * n + j
        order = _argsort(key, xp)
        key = key[order]
        seg, first = _segments(key, xp)
        m = xp.bincount(seg, weights=contrib[order])
        v = xp.maximum(1.0 - m / (2.0 - m), 0.0)
        keep = v.astype(np.float32) <= limit  # the stored float32 value, as DBSCAN compares it
        ukey = key[first][keep]
        r_parts.append(ukey // n + s)
        c_parts.append(ukey % n)
        v_parts.append(v[keep].astype(np.float32))
    diag = xp.flatnonzero(xp.diff(A.indptr) > 0)
    empty_i = xp.zeros(0, dtype=np.int64)
    up_r = xp.concatenate(r_parts + [empty_i])
    up_c = xp.concatenate(c_parts + [empty_i])
    up_v = xp.concatenate(v_parts + [xp.zeros(0, dtype=np.float32)])
    rows = xp.concatenate([up_r, up_c, diag])
    cols = xp.concatenate([up_c, up_r, diag])
    vals = xp.concatenate([up_v, up_v, xp.zeros(diag.shape[0], dtype=np.float32)])
    order = _argsort(rows, xp)
    nnz = int(rows.shape[0])
    idx_dtype = np.int32 if max(n, nnz) < np.iinfo(np.int32).max else np.int64
    indptr = xp.zeros(n + 1, dtype=np.int64)
    indptr[1:] = xp.cumsum(xp.bincount(rows, minlength=n))
    return indptr.astype(idx_dtype), cols[order].astype(idx_dtype), vals[order]


class ArrayModuleExecutor(Executor):
    """The pipeline stages with this module's kernels, in array module ``xp`` (cupy on the GPU).

    Parameters
    ----------
    xp : module, default=numpy
        ``cupy`` for the GPU; ``numpy`` runs the same code on the host.
    budget : int, default=BUDGET
        Array entries a block of rows may hold at once.
    """

    name = "array-module"

    def __init__(self, xp=np, budget: int = BUDGET):
        self.xp = xp
        self.budget = int(budget)

    def weights(self, X, plan):
        xp, budget = self.xp, self.budget
        X = _to_xp(X, xp, np.float32)
        indptr, indices = expand_lists(*plan.sets, xp=xp, budget=budget)
        sims, rank = plan.known
        data = softmax_weights(X, indptr, indices, rank, sims, xp=xp, budget=budget)
        return CSR(indptr, indices, data, (plan.n, plan.n))

    def expand(self, V, plan):
        Q = plan.expansion
        return V if Q is None else sparse_product(as_csr(Q, self.xp), V, xp=self.xp, budget=self.budget)

    def minsum(self, Vq, max_distance):
        out = minsum_jaccard(Vq, max_distance=max_distance, xp=self.xp, budget=self.budget)
        return tuple(_host(a) for a in out)


def jaccard_from_plan(X, plan, *, xp=np, max_distance=None, budget=BUDGET):
    """The stages after planning (:func:`xmrank.jaccard.stages.run_stages`) on :class:`ArrayModuleExecutor`.

    Parameters
    ----------
    X : array of float32, shape (N, d)
        Features (numpy or ``xp``; moved to ``xp``).
    plan : JaccardPlan
        From :func:`xmrank.jaccard.plan_jaccard`.
    xp : module
    max_distance : float, default=None
    budget : int

    Returns
    -------
    indptr, indices, data : numpy arrays of the distance CSR (on the host).
    """
    return run_stages(X, plan, ArrayModuleExecutor(xp, budget), max_distance=max_distance)
