"""Exact re-scoring of candidate lists: the score and order rule shared by the exact engines.

The similarity reported for a pair is its inner product accumulated in
float64 (products of float32 entries are exact in float64; the sum, in a
fixed order that depends on ``d`` only, is within ``d * 2**-53 |x| |y|`` of
exact) and rounded to float32. Lists are sorted by that value, decreasing,
ties by the smaller database index. :mod:`xmrank.knn.exact_bf16`,
:mod:`xmrank.knn.exact_faiss` and :mod:`xmrank.knn.exact_numpy` all score
through :func:`rescore_row`, so they return identical lists, whatever the
thread count, block size or BLAS library.

:func:`exact_top_k` turns any float32 top-``k + m`` search (faiss, a BLAS
product) into the exact list: the float32 candidates are re-scored, and a
row is accepted only when no row outside its candidates can reach its exact
``k``-th score given the float32 search's error bound (below); the other
rows are searched again with a wider margin, and at last against every row.

Float32 bound
-------------
A float32 inner product of ``d`` terms, accumulated in any order with a
rounding error of at most ``v = 2**-23`` relative per addition (a whole ulp:
round to nearest or toward zero, with or without FMA), is within
``gamma_d |x| |y|`` of exact, ``gamma_d = d v / (1 - d v)`` (Higham, Thm
3.1, and Cauchy-Schwarz), plus ``2**-120 (d + sqrt(d) (|x| + |y|))`` where
subnormal products and partial sums are flushed to zero.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .._jit import njit

__all__ = ["rescore_row", "rescore_lists", "exact_top_k", "MARGIN"]

#: Extra float32 candidates per row searched beyond ``k`` by :func:`exact_top_k`.
MARGIN = 16
#: Candidate entries (rows x candidates) re-scored at once when a row must be checked against every row.
_FULL_ENTRIES = 1 << 24

_U_F64 = 2.0**-53
#: Reassociation for the float64 dot product (vector lanes); no assumption on NaN or infinities.
_REORDER = {"reassoc", "contract"}


@njit(cache=True, fastmath=_REORDER)
def _dot64x4(x, y0, y1, y2, y3):
    """``x . y0``, ..., ``x . y3`` of float32 rows, accumulated in float64 (each product is exact).

    Four rows at a time keep four memory streams in flight (the re-scoring
    reads each candidate row once, from memory). Every score goes through
    this one function, whose summation order (vector lanes, then a tree) is
    fixed when it is compiled and is the same for the four: it depends on
    ``d`` only, not on where a row sits, so equal rows score equally. The
    error is within ``d * 2**-53 * |x| |y|``.
    """
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    for t in range(x.shape[0]):
        xv = np.float64(x[t])
        a0 += xv * np.float64(y0[t])
        a1 += xv * np.float64(y1[t])
        a2 += xv * np.float64(y2[t])
        a3 += xv * np.float64(y3[t])
    return a0, a1, a2, a3


@njit(cache=True, nogil=True)
def rescore_row(x, Y, buf, kept, k, out_sims, out_idx):
    """Exact top-``k`` of query row ``x`` among the candidate rows ``buf[:kept]`` of ``Y``.

    ``buf`` must be in increasing index order (the stable sort then breaks
    ties by the smaller index). Fills ``out_sims[:k]`` (float32 scores,
    decreasing) and ``out_idx[:k]``; ``kept >= k``.
    """
    sc = np.empty(kept, dtype=np.float32)
    for c in range(0, kept, 4):  # past the end, repeat the last row (scored and dropped)
        j0 = buf[c]
        j1 = buf[min(c + 1, kept - 1)]
        j2 = buf[min(c + 2, kept - 1)]
        j3 = buf[min(c + 3, kept - 1)]
        s0, s1, s2, s3 = _dot64x4(x, Y[j0], Y[j1], Y[j2], Y[j3])
        sc[c] = np.float32(s0)
        if c + 1 < kept:
            sc[c + 1] = np.float32(s1)
        if c + 2 < kept:
            sc[c + 2] = np.float32(s2)
        if c + 3 < kept:
            sc[c + 3] = np.float32(s3)
    order = np.argsort(-sc, kind="mergesort")
    for c in range(k):
        out_sims[c] = sc[order[c]]
        out_idx[c] = buf[order[c]]


@njit(parallel=True, cache=True, nogil=True)
def rescore_lists(Q, Y, cand, k, out_sims, out_idx):
    """:func:`rescore_row` for every row of ``Q``, candidates ``cand[r]`` (any order, no repeats, no -1)."""
    for r in nb.prange(Q.shape[0]):
        buf = np.sort(cand[r])
        rescore_row(Q[r], Y, buf, buf.shape[0], k, out_sims[r], out_idx[r])


@njit(parallel=True, cache=True, nogil=True)
def _rescore_all(Q, Y, k, out_sims, out_idx):
    """:func:`rescore_row` of every row of ``Q`` against every row of ``Y``."""
    nd = Y.shape[0]
    for r in nb.prange(Q.shape[0]):
        buf = np.arange(nd)
        rescore_row(Q[r], Y, buf, nd, k, out_sims[r], out_idx[r])


def _row_norms(A):
    """Per-row Euclidean norms, accumulated in float64."""
    out = np.empty(A.shape[0], dtype=np.float64)
    step = max(1, (1 << 22) // max(A.shape[1], 1))
    for s in range(0, A.shape[0], step):
        a = A[s:s + step].astype(np.float64)
        out[s:s + step] = np.sqrt(np.einsum("ij,ij->i", a, a))
    return out


def float32_error(q_norms, y_max: float, d: int) -> np.ndarray:
    """Per query row, a bound on ``|s32 - x.y| + |s64 - x.y|`` over every database row.

    ``s32`` is a float32 product (module docstring: ``gamma_d`` with a whole
    ulp per addition, and the flush of subnormals), ``s64`` the float64
    re-scoring (``d * 2**-53``). ``y_max`` is the largest database row norm.
    """
    v = 2.0**-23
    gamma = d * v / (1.0 - d * v) + d * _U_F64
    flush = 2.0**-120 * (d + math.sqrt(d) * (q_norms + y_max))
    # norms are float64 sums, within 1e-12 relative: the 1e-6 covers them
    return (gamma * q_norms * y_max + flush) * (1 + 1e-6)


def exact_top_k(Q, Y, k: int, candidates, *, margin: int = MARGIN):
    """Exact top-``k`` lists (module rule) from a float32 top-``k + margin`` search.

    Parameters
    ----------
    Q, Y : ndarray of float32, C-contiguous, shapes (n_queries, d), (n_database, d)
    k : int
        At most ``n_database``.
    candidates : callable
        ``candidates(rows, kk)``: for the query rows ``Q[rows]``, their
        ``kk`` largest float32 scores (any order of equal scores) and indices,
        arrays of shape (len(rows), kk); ``kk < n_database``.
    margin : int
        Extra candidates per row in the first pass; each later pass for the
        rows not yet proven takes four times as many, and the last every row.

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
    indices : ndarray of int64, shape (n_queries, k)
    """
    nq, d = Q.shape
    nd = Y.shape[0]
    sims = np.empty((nq, k), dtype=np.float32)
    idx = np.empty((nq, k), dtype=np.int64)
    if nq == 0:
        return sims, idx
    q_norms = _row_norms(Q)
    err = float32_error(q_norms, float(_row_norms(Y).max()) if nd else 0.0, d)
    todo = np.arange(nq)
    kk = k + max(int(margin), 1)
    while todo.size and kk < nd:
        step = max(1, _FULL_ENTRIES // kk)  # candidate lists held at once: O(_FULL_ENTRIES)
        left = [rows[~_pass(Q, Y, k, rows, kk, candidates, err, sims, idx)]
                for rows in (todo[s:s + step] for s in range(0, todo.size, step))]
        todo = np.concatenate(left)
        kk *= 4
    if todo.size:  # against every row
        step = max(1, _FULL_ENTRIES // max(nd, 1))
        for s in range(0, todo.size, step):
            rows = todo[s:s + step]
            s_sub = np.empty((rows.size, k), dtype=np.float32)
            i_sub = np.empty((rows.size, k), dtype=np.int64)
            _rescore_all(Q[rows], Y, k, s_sub, i_sub)
            sims[rows] = s_sub
            idx[rows] = i_sub
    return sims, idx


def _pass(Q, Y, k, rows, kk, candidates, err, sims, idx):
    """One float32 search of ``kk`` candidates for the query rows ``rows``, re-scored; fills the proven rows.

    Returns the mask of the rows proven (their lists written to ``sims``, ``idx``).
    """
    f_sims, f_idx = candidates(rows, kk)
    f_idx = np.ascontiguousarray(f_idx, dtype=np.int64)
    ok = (f_idx >= 0).all(axis=1)  # faiss pads with -1 where a score is NaN
    good = np.flatnonzero(ok)
    s_sub = np.empty((good.size, k), dtype=np.float32)
    i_sub = np.empty((good.size, k), dtype=np.int64)
    if good.size:
        rescore_lists(Q[rows[good]], Y, f_idx[good], k, s_sub, i_sub)
    # a row outside the candidates has a float32 score <= the smallest candidate's, so an exact score below that
    # plus err: the row is proven when this stays under the float32 rounding midpoint below the k-th exact score
    with np.errstate(invalid="ignore"):
        floor = np.asarray(f_sims, dtype=np.float64)[good].min(axis=1) + err[rows[good]]
        s_k = s_sub[:, k - 1].astype(np.float64)
        proven = floor < s_k - 2.0**-22 * np.abs(s_k) - 2.0**-140
    sims[rows[good[proven]]] = s_sub[proven]
    idx[rows[good[proven]]] = i_sub[proven]
    ok[good[~proven]] = False
    return ok
