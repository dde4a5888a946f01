"""Compiled kernels of the k-reciprocal Jaccard pipeline.

The loops over rows of the sets and weights stages live here, as ``numba``
functions over plain arrays and CSR structures; they are parallel over rows
(``prange``). The min-sum stage lives in :mod:`xmrank.jaccard.blocks`
(:func:`minsum_jaccard` is re-exported here). Nothing here
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
from .blocks import minsum_jaccard

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
