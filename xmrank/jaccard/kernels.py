"""Compiled kernels of the k-reciprocal Jaccard pipeline.

All loops over rows live here, as ``numba`` functions over plain arrays and
CSR structures; they are parallel over rows (``prange``). Nothing here
allocates an N x N array: memory grows with N times the list lengths, plus
one O(N) scratch array per thread. In particular the expanded sets are built
in two passes (count, then fill), so their memory is the sets themselves
(at most N per row), never N x k1²: at N = 6,000, d = 32, k1 = 600 the whole
``jaccard_distance`` peaks below 1 GB (``benchmarks/bench_jaccard.py --k1-sweep``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._jit import njit

__all__ = [
    "reciprocal_mask",
    "expand_lists",
    "softmax_weights",
    "minsum_jaccard",
]

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


def _n_chunks(n):
    """Row chunks of the per-thread kernels: one per thread (each holds O(N) scratch)."""
    return max(1, min(n, nb.get_num_threads()))


@njit(**_PARALLEL)
def _reciprocal_mask(rank, kk, sorted_heads):
    n, ncol = rank.shape
    mask = np.zeros((n, ncol), dtype=np.bool_)
    for i in nb.prange(n):
        for c in range(kk):
            j = rank[i, c]
            head = sorted_heads[j]
            t = np.searchsorted(head, i)
            if t < kk and head[t] == i:
                mask[i, c] = True
    return mask


def reciprocal_mask(rank, k):
    """``mask[i, c]``: is ``i`` among the first ``k+1`` columns of ``rank[rank[i, c]]``.

    Only the first ``min(k+1, rank.shape[1])`` columns are tested; the rest
    of the mask is False. Each row's first columns are sorted once, so the
    test is a binary search: O(N k log k) time, O(N k) memory.
    """
    rank = np.ascontiguousarray(rank)
    n, ncol = rank.shape
    kk = min(k + 1, ncol)
    if n == 0 or kk == 0:
        return np.zeros((n, ncol), dtype=np.bool_)
    sorted_heads = np.sort(rank[:, :kk], axis=1)
    return _reciprocal_mask(rank, kk, sorted_heads)


@njit(**_PARALLEL)
def _expand_rows(rank, r_mask, h_rank, h_mask, expand, n_chunks, write, indptr, indices, grows):
    """Count (``write=False``) or write (``write=True``) each row's set ``E_i``.

    Chunk ``ch`` takes rows ``ch, ch + n_chunks, ...`` and owns one marker
    array over all N rows: ``mark[j] == 2i+1`` while row ``i`` is built means
    ``j`` is in ``R_i``, ``mark[j] == 2i+2`` that ``j`` was added by an
    expansion (rows are visited in increasing order, so older marks are
    smaller and never need clearing). Membership tests are O(1); memory is
    O(N) per chunk plus the output. The count pass records in ``grows`` which
    list columns expand, so the write pass does not redo the 2/3 tests.
    Returns the size of each row's set (count pass).
    """
    n, ncol = rank.shape
    hcol = h_rank.shape[1]
    counts = np.zeros(n, dtype=np.int64)
    for ch in nb.prange(n_chunks):
        mark = np.full(n, -1, dtype=np.int64)
        for i in range(ch, n, n_chunks):
            in_r = 2 * i + 1
            in_e = 2 * i + 2
            pos = indptr[i] if write else 0
            m = 0
            for c in range(ncol):
                if r_mask[i, c]:
                    j = rank[i, c]
                    if mark[j] != in_r:
                        mark[j] = in_r
                        if write:
                            indices[pos + m] = j
                        m += 1
            if expand:
                for c in range(ncol):
                    if not r_mask[i, c]:
                        continue
                    cand = rank[i, c]
                    if write:
                        take = grows[i, c]
                    else:
                        size = 0
                        inter = 0
                        for t in range(hcol):
                            if h_mask[cand, t]:
                                size += 1
                                if mark[h_rank[cand, t]] == in_r:
                                    inter += 1
                        take = inter > (2.0 / 3.0) * size
                        grows[i, c] = take
                    if take:
                        for t in range(hcol):
                            if h_mask[cand, t]:
                                h = h_rank[cand, t]
                                if mark[h] < in_r:
                                    mark[h] = in_e
                                    if write:
                                        indices[pos + m] = h
                                    m += 1
            if write:
                indices[pos:pos + m].sort()
            else:
                counts[i] = m
    return counts


def expand_lists(rank, r_mask, h_rank=None, h_mask=None):
    """Build each row's neighbour set ``E_i`` as a CSR structure.

    ``R_i`` is ``rank[i][r_mask[i]]``. With ``h_rank``/``h_mask`` given, every
    ``c`` in ``R_i`` whose half list ``H_c = h_rank[c][h_mask[c]]`` shares more
    than 2/3 of its members with ``R_i`` adds ``H_c`` to ``E_i``.

    Two passes (count, then fill) with one O(N) marker array per thread:
    memory is the output (``sum |E_i|`` indices) plus an N x ncol flag
    array, never N x ncol²; time is O(N · ncol · hcol).

    Returns
    -------
    indptr : ndarray of int64, shape (N + 1,)
    indices : ndarray of int64
        Sorted, unique column indices per row.
    """
    rank = np.ascontiguousarray(rank, dtype=np.int64)
    r_mask = np.ascontiguousarray(r_mask, dtype=np.bool_)
    n, ncol = rank.shape
    expand = h_rank is not None
    if expand:
        h_rank = np.ascontiguousarray(h_rank, dtype=np.int64)
        h_mask = np.ascontiguousarray(h_mask, dtype=np.bool_)
    else:
        h_rank = np.zeros((n, 1), dtype=np.int64)
        h_mask = np.zeros((n, 1), dtype=np.bool_)
    n_chunks = _n_chunks(n)
    grows = np.zeros((n, ncol) if expand else (n, 1), dtype=np.bool_)
    indptr = np.zeros(n + 1, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    counts = _expand_rows(rank, r_mask, h_rank, h_mask, expand, n_chunks, False, indptr, empty, grows)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    _expand_rows(rank, r_mask, h_rank, h_mask, expand, n_chunks, True, indptr, indices, grows)
    return indptr, indices


@njit(**_PARALLEL)
def _softmax_weights(X, indptr, indices, list_idx, list_sim, n_chunks):
    n = indptr.shape[0] - 1
    ncol = list_idx.shape[1]
    d = X.shape[1]
    data = np.empty(indices.shape[0], dtype=np.float32)
    for ch in nb.prange(n_chunks):
        # where[j] = the first list column of row i holding j, valid while stamp[j] == i
        stamp = np.full(n, -1, dtype=np.int64)
        where = np.zeros(n, dtype=np.int64)
        for i in range(ch, n, n_chunks):
            lo, hi = indptr[i], indptr[i + 1]
            if hi == lo:  # no reciprocal neighbour (possible with duplicate rows): the row stays empty
                continue
            for c in range(ncol):
                j = list_idx[i, c]
                if j >= 0 and stamp[j] != i:
                    stamp[j] = i
                    where[j] = c
            dist = np.empty(hi - lo, dtype=np.float32)
            for p in range(lo, hi):
                j = indices[p]
                if stamp[j] == i:
                    s = list_sim[i, where[j]]
                else:
                    acc = np.float32(0.0)
                    for t in range(d):
                        acc += X[i, t] * X[j, t]
                    s = acc
                dist[p - lo] = np.float32(2.0) - np.float32(2.0) * s
            mx = -dist.min()
            total = 0.0
            for p in range(hi - lo):
                e = np.exp(np.float64(-dist[p] - mx))
                dist[p] = e
                total += e
            for p in range(hi - lo):
                data[lo + p] = np.float32(dist[p] / total)
    return data


def softmax_weights(X, indptr, indices, list_idx, list_sim):
    """``V[i, j] = softmax_{j in E_i}(-(2 - 2 x_i . x_j))`` over each CSR row.

    Similarities already found by the search (``list_idx``/``list_sim``, any
    number of columns) are reused; the rest are computed as dot products.
    Lookups go through one O(N) position array per thread.
    """
    n = indptr.shape[0] - 1
    return _softmax_weights(X, indptr, indices, np.ascontiguousarray(list_idx), np.ascontiguousarray(list_sim),
                            _n_chunks(n))


@njit(inline="always", cache=True)
def _store_pair(write, ch, i, j, v, counts, offsets, out_idx, out_val):
    """Count (``write=False``) or write pair (i, j) into row i and, unless i == j, row j.

    Chunk ``ch`` writes row r from ``offsets[ch, r]`` on, a region no other chunk touches.
    """
    if write:
        pos = offsets[ch, i]
        out_idx[pos] = j
        out_val[pos] = v
        offsets[ch, i] = pos + 1
        if i != j:
            pos = offsets[ch, j]
            out_idx[pos] = i
            out_val[pos] = v
            offsets[ch, j] = pos + 1
    else:
        counts[ch, i] += 1
        if i != j:
            counts[ch, j] += 1


@njit(**_PARALLEL)
def _minsum_half(n, r_ptr, r_idx, r_val, c_ptr, c_idx, c_val, limit, n_chunks, write, counts, offsets, out_idx,
                 out_val):
    """Min-sum Jaccard over pairs ``j > i`` only; each pair is stored twice.

    Rows are dealt to ``n_chunks`` interleaved chunks (row ``i`` to chunk
    ``i % n_chunks``, which balances the triangular work). Count pass
    (``write=False``): ``counts[ch, r]`` = pairs chunk ``ch`` stores in row
    ``r``. Write pass: chunk ``ch`` writes row ``r``'s pairs from
    ``offsets[ch, r]`` on, a region no other chunk touches.
    The diagonal is stored as 0 for every row with weights.
    """
    need_values = write or limit < 1.0
    for ch in nb.prange(n_chunks):
        acc = np.zeros(n, dtype=np.float64)
        seen = np.zeros(n, dtype=np.bool_)
        touched = np.empty(n, dtype=np.int64)
        for i in range(ch, n, n_chunks):
            if r_ptr[i + 1] == r_ptr[i]:
                continue
            m = 0
            for p in range(r_ptr[i], r_ptr[i + 1]):
                col = r_idx[p]
                a = r_val[p]
                lo = c_ptr[col]
                hi = c_ptr[col + 1]
                # column rows are sorted: skip to the first row > i
                lo = lo + np.searchsorted(c_idx[lo:hi], i, side="right")
                for q in range(lo, hi):
                    j = c_idx[q]
                    if not seen[j]:
                        seen[j] = True
                        touched[m] = j
                        m += 1
                    if need_values:
                        b = c_val[q]
                        acc[j] += a if a < b else b
            _store_pair(write, ch, i, i, 0.0, counts, offsets, out_idx, out_val)
            for t in range(m):
                j = touched[t]
                seen[j] = False
                v = 0.0
                if need_values:
                    s = acc[j]
                    acc[j] = 0.0
                    v = 1.0 - s / (2.0 - s)
                    if v < 0.0:
                        v = 0.0
                    if np.float32(v) > limit:
                        continue
                _store_pair(write, ch, i, j, v, counts, offsets, out_idx, out_val)


def minsum_jaccard(vq_csr, n_threads: int, *, max_distance=None):
    """Jaccard distance ``1 - m/(2-m)``, ``m(i,j) = sum_l min(V'[i,l], V'[j,l])``.

    Parameters
    ----------
    vq_csr : scipy.sparse.csr_matrix, shape (N, N)
        The query-expanded weights ``V'``.
    n_threads : int
    max_distance : float, default=None
        Keep only pairs whose float32 distance is <= float32(max_distance).
        None keeps every pair with ``m > 0``. (:func:`xmrank.jaccard.blocks.minsum_jaccard`
        computes the thresholded case in one pass; ``jaccard_distance`` uses it.)

    Returns
    -------
    indptr, indices, data : CSR arrays of the stored pairs (int32 indices
        while they fit, float32 data). Unstored pairs have distance 1; the
        diagonal is stored as 0. Each pair is computed once and stored in
        both rows, so the matrix is exactly symmetric.
    """
    n = vq_csr.shape[0]
    vq_csr = vq_csr.tocsr()
    vq_csr.sort_indices()
    r_ptr = vq_csr.indptr.astype(np.int64)
    r_idx = vq_csr.indices.astype(np.int64)
    r_val = vq_csr.data.astype(np.float64)
    n_chunks = max(1, min(n, 4 * n_threads))
    counts = np.zeros((n_chunks, n), dtype=np.int64)
    csc = vq_csr.tocsc()
    csc.sort_indices()
    args = (n, r_ptr, r_idx, r_val, csc.indptr.astype(np.int64), csc.indices.astype(np.int64),
            csc.data.astype(np.float64), 2.0 if max_distance is None else float(np.float32(max_distance)), n_chunks)
    kernel = _minsum_half
    del csc
    kernel(*args, False, counts, counts, np.empty(0, np.int32), np.empty(0, np.float32))
    per_row = counts.sum(axis=0)
    nnz = int(per_row.sum())
    idx_dtype = np.int32 if max(n, nnz) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    # chunk ch writes row r from indptr[r] + (pairs of chunks before ch in row r)
    offsets = np.cumsum(counts, axis=0)
    offsets -= counts
    offsets += indptr[:-1][None, :]
    del counts
    out_idx = np.empty(nnz, dtype=idx_dtype)
    out_val = np.empty(nnz, dtype=np.float32)
    kernel(*args, True, offsets, offsets, out_idx, out_val)
    return indptr.astype(idx_dtype), out_idx, out_val
