"""Exact inner-product search from bfloat16 candidates and float64 re-scoring.

Engine ``"bf16"`` of :func:`xmrank.backend.resolve_knn`. Every similarity is
first computed by a bfloat16 matrix product (torch; oneDNN on the CPU, tensor
cores on a GPU), about twice the float32 rate on CPUs with AVX-512 BF16 or
AMX. For each query row, every database row whose approximate score could
still reach the exact top ``k`` is kept (a rigorous error bound, below), and
only those candidates are re-scored exactly. The result is the exact top-``k``
list, not an approximation.

Scores and order
----------------
The similarity reported for a pair is its inner product accumulated in
float64 (products of float32 entries are exact in float64; the sum is
within ``d * 2**-53`` of exact, in a fixed order that does not depend on
the pair's position) and rounded to float32. Lists are sorted by that float32
value, decreasing, ties by the smaller database index: the rule of
:mod:`xmrank.knn.exact_numpy`. The lists are therefore a function of the
input values alone: duplicate rows tie exactly, and the result does not
depend on block sizes, thread counts or the BLAS library (a float32 BLAS
search, faiss ``IndexFlatIP`` included, rounds each score to within about
``d * 2**-24 * |x| |y|`` and its bits change with the thread count and the
row's position in a block, so its order of rows closer than that is
arbitrary).

Candidate bound
---------------
With ``x^ = bf16(x)``, ``r_x = x - x^`` (exact in float32) and likewise for
``y``, ``x.y - x^.y^ = r_x.y^ + x^.r_y + r_x.r_y``, so by Cauchy-Schwarz::

    |x.y - x^.y^| <= |r_x| |y^| + |x^| |r_y| + |r_x| |r_y|

using the measured rounding residuals (|r_x| is about 0.0017 |x|, against the
``2u |x||y| = 0.0078 |x||y|`` worst case of a rounding unit ``u = 2**-8``).
The product accumulates in float32 (``gamma_d |x^| |y^|`` with
``gamma_d = d u32 / (1 - d u32)``, any summation order), flushes subnormals
(a term below ``2**-120 (d + sqrt(d) (|x^| + |y^|))``), and where the
library only returns bfloat16 (torch on the CPU) rounds once more, relative
``2**-8``. With ``e(x, y)`` the sum of these terms, every row ``j`` obeys
``|s_j - s^_j| <= e(x, y_j) + u_out |s^_j|``. If ``t`` is the ``k``-th
largest lower bound ``s^_j - u_out |s^_j| - e(x, y_j)``, at least ``k`` rows
have ``s >= t``; a row can enter the top ``k`` only if its upper bound
reaches ``t`` minus a float32 ulp (the reported scores are rounded), so rows
below are dropped without changing the result. The scan uses the largest
``e`` over the database; the kept rows are then cut with their own ``e``.

Blocks and memory
-----------------
Queries go in blocks of ``max(64, BLOCK_ENTRIES // n_database)`` rows: the
approximate block (bfloat16, ``block x n_database``) plus the bfloat16 copies
of the inputs (half their float32 size) are the extra memory. Candidates are
kept per row in O(n_database) scratch per thread.

When it pays
------------
Only where the CPU multiplies bfloat16 natively (``avx512_bf16`` or
``amx_bf16``; elsewhere torch emulates it, slower than float32) and the
problem is large: ``knn="auto"`` picks it above :data:`AUTO_MIN_WORK`
multiply-adds (see :func:`xmrank.backend.resolve_knn`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from .._jit import njit
from .._validation import MAX_SQUARED_NORM, InputError

logger = logging.getLogger(__name__)

__all__ = ["search", "SearchStats", "BLOCK_ENTRIES", "AUTO_MIN_WORK", "EXTRA_CANDIDATES"]

#: Approximate similarities held at once (bfloat16 entries): the query block is
#: ``max(64, BLOCK_ENTRIES // n_database)`` rows.
BLOCK_ENTRIES = 1 << 23
#: ``knn="auto"`` uses this engine from ``n_queries * n_database * d`` multiply-adds up
#: (measured: below it the torch set-up and the re-scoring eat the gain).
AUTO_MIN_WORK = 2 * 10**10
#: Rows whose candidate list is longer than ``k + EXTRA_CANDIDATES`` are counted in :class:`SearchStats`.
EXTRA_CANDIDATES = 16

_U_BF16 = 2.0**-8
_U_F32 = 2.0**-24
_U_F64 = 2.0**-53
#: Columns per vectorised pre-check of the scan.
_CHUNK = 64
#: Reassociation for the float64 dot product (vector lanes); no assumption on NaN or infinities.
_REORDER = {"reassoc", "contract"}


@dataclass
class SearchStats:
    """What the candidate filter kept, for the benchmark and the log.

    Attributes
    ----------
    n_queries : int
    k : int
    mean_candidates : float
        Mean number of rows re-scored per query row.
    max_candidates : int
    share_over : float
        Share of query rows with more than ``k + EXTRA_CANDIDATES`` candidates.
    """

    n_queries: int
    k: int
    mean_candidates: float
    max_candidates: int
    share_over: float


# --- bfloat16 bit patterns as order-preserving integer keys ---------------------------------------------------

@njit(inline="always", cache=True)
def _key(bits):
    """Order-preserving unsigned key of a bfloat16 bit pattern (negative values below positive ones)."""
    b = np.int32(bits)
    return b ^ (0x8000 + (b >> 15) * 0x7FFF)


def _key_values() -> np.ndarray:
    """Value of every key, float64, non-decreasing (NaN patterns read as -inf below and +inf above)."""
    keys = np.arange(1 << 16, dtype=np.uint32)
    bits = np.where(keys >= 0x8000, keys ^ 0x8000, keys ^ 0xFFFF).astype(np.uint32) << np.uint32(16)
    with np.errstate(invalid="ignore"):
        values = bits.view(np.float32).astype(np.float64)
    nan = np.isnan(values)
    values[nan & (keys < 0x8000)] = -np.inf
    values[nan & (keys >= 0x8000)] = np.inf
    return values


_KEY_VALUES = _key_values()


@njit(inline="always", cache=True)
def _floor_key(t, table):
    """The largest key whose value is <= ``t`` (0 when none is)."""
    return max(0, np.searchsorted(table, t, side="right") - 1)


@njit(inline="always", cache=True)
def _threshold_key(table, kth_key, u, E, slack):
    """Scan threshold: the smallest key whose row could still reach the top ``k``, given the running ``k``-th key.

    ``t = tau - u |tau| - E`` is a lower bound on the exact ``k``-th score; a row
    is needed only if ``s^ + u |s^| + E >= t - slack``.
    """
    tau = table[kth_key]
    t = tau - u * abs(tau) - E
    need = t - (2.0**-22) * (abs(t) + E) - slack
    return _floor_key(_lower_from_upper(need - E, u), table)


@njit(inline="always", cache=True)
def _lower_from_upper(m, u):
    """The smallest s with ``s + u |s| >= m``."""
    return m / (1.0 + u) if m >= 0.0 else m / (1.0 - u)


@njit(inline="always", cache=True)
def _heap_push_min(heap, size, v):
    """Push ``v`` onto a min-heap of ``size`` items; returns the new size."""
    i = size
    heap[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if heap[p] <= heap[i]:
            break
        heap[p], heap[i] = heap[i], heap[p]
        i = p
    return size + 1


@njit(inline="always", cache=True)
def _heap_replace_min(heap, size, v):
    """Replace the smallest item of a min-heap by ``v``."""
    heap[0] = v
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        c = left
        if left + 1 < size and heap[left + 1] < heap[left]:
            c = left + 1
        if heap[i] <= heap[c]:
            break
        heap[c], heap[i] = heap[i], heap[c]
        i = c


@njit(inline="always", cache=True, fastmath=_REORDER)
def _dot64(x, y):
    """``x . y`` accumulated in float64 (``x`` float64, ``y`` float32).

    The summation order is fixed when the kernel is compiled (vector lanes,
    then a tree) and is the same for every pair: it depends on ``d`` only, not
    on where a row sits. Its error is within ``d * 2**-53 * |x| |y|``.
    """
    acc = 0.0
    for t in range(x.shape[0]):
        acc += x[t] * np.float64(y[t])
    return acc


@njit(parallel=True, cache=True, nogil=True)
def _select_block(approx, table, u_out, Xq, Y, ex_a, ex_b, ex_c, ex_max, y_hat, y_res, slack_abs, k, n_chunks,
                  out_sims, out_idx, n_cand):
    """Candidates from one block of approximate scores, re-scored, cut to ``k``.

    approx : uint16 (rows, nd), bfloat16 bit patterns of the approximate scores.
    table : the value of each key (:data:`_KEY_VALUES`).
    Xq : float64 (rows, d), the exact query rows.
    ex_a, ex_b, ex_c : per query row, ``e(x, y) = ex_a * |y^| + ex_b * |r_y| + ex_c``;
    ex_max : per query row, the largest ``e`` over the database.
    y_hat, y_res : per database row, ``|y^|`` and ``|r_y|``.
    slack_abs : per query row, the absolute part of the float32 slack.
    """
    rows, nd = approx.shape
    d = Xq.shape[1]
    u = u_out / (1.0 - u_out)
    for ch in nb.prange(n_chunks):
        heap = np.empty(k, dtype=np.int32)
        buf = np.empty(nd, dtype=np.int64)
        lbs = np.empty(nd, dtype=np.float64)
        vals = np.empty(nd, dtype=np.float64)
        for r in range(ch, rows, n_chunks):
            row = approx[r]
            E = ex_max[r]
            # pass over the row: a running k-th largest key and every column at or above the threshold it implies
            # pass 1: the k-th largest key, by a heap over the first k columns and then chunks whose
            # vectorised maximum beats the heap's minimum (a few dozen times per row)
            for j in range(k):
                _heap_push_min(heap, j, _key(row[j]))
            for c0 in range(k, nd, _CHUNK):
                c1 = min(nd, c0 + _CHUNK)
                top = 0
                for j in range(c0, c1):
                    top = max(top, _key(row[j]))
                if top <= heap[0]:
                    continue
                for j in range(c0, c1):
                    key = _key(row[j])
                    if key > heap[0]:
                        _heap_replace_min(heap, k, key)
            # pass 2 (the row is in cache): every column that could still reach the top k
            tkey = _threshold_key(table, heap[0], u, E, slack_abs[r])
            m = 0
            for c0 in range(0, nd, _CHUNK):
                c1 = min(nd, c0 + _CHUNK)
                top = 0
                for j in range(c0, c1):
                    top = max(top, _key(row[j]))
                if top < tkey:
                    continue
                for j in range(c0, c1):
                    if _key(row[j]) >= tkey:
                        buf[m] = j
                        m += 1
            if m < k:  # cannot happen (the k largest keys pass); a guard against bad input, not a code path
                m = nd
                for j in range(nd):
                    buf[j] = j
            # keep those whose threshold, now final, they still meet, with their own error terms
            for c in range(m):
                j = buf[c]
                v = table[_key(row[j])]
                e = ex_a[r] * y_hat[j] + ex_b[r] * y_res[j] + ex_c[r]
                vals[c] = v
                lbs[c] = v - u * abs(v) - e
            t = np.sort(lbs[:m])[m - k]
            need = t - (2.0**-22) * (abs(t) + E) - slack_abs[r]
            kept = 0
            for c in range(m):
                j = buf[c]
                v = vals[c]
                e = ex_a[r] * y_hat[j] + ex_b[r] * y_res[j] + ex_c[r]
                if v + u * abs(v) + e >= need:
                    buf[kept] = j
                    kept += 1
            n_cand[r] = kept
            # exact scores, then (float32 score decreasing, index increasing): buf is in index order, sort stably
            sc = np.empty(kept, dtype=np.float32)
            x = Xq[r]
            for c in range(kept):
                sc[c] = np.float32(_dot64(x, Y[buf[c]]))
            order = np.argsort(-sc, kind="mergesort")
            for c in range(k):
                out_sims[r, c] = sc[order[c]]
                out_idx[r, c] = buf[order[c]]


def _norms64(a):
    return np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64))


def search(queries: np.ndarray, database: np.ndarray, k: int, *, block_entries: int = BLOCK_ENTRIES,
           return_stats: bool = False):
    """Exact top-``k`` by inner product: bfloat16 candidates, float64 re-scoring.

    Parameters
    ----------
    queries : ndarray of float32, shape (n_queries, d)
    database : ndarray of float32, shape (n_database, d)
    k : int
        At most ``n_database``.
    block_entries : int, default=BLOCK_ENTRIES
        Approximate similarities held at once.
    return_stats : bool, default=False
        Also return a :class:`SearchStats`.

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
        Exact inner products (float64 sums rounded to float32), decreasing.
    indices : ndarray of int64, shape (n_queries, k)
        Ties by the smaller index.
    stats : SearchStats
        Only with ``return_stats=True``.

    Raises
    ------
    xmrank.InputError
        When a similarity could overflow float32 (row norms whose product
        exceeds :data:`xmrank._validation.MAX_SQUARED_NORM`).
    """
    import torch

    Q = np.ascontiguousarray(queries, dtype=np.float32)
    Y = np.ascontiguousarray(database, dtype=np.float32)
    nq, d = Q.shape
    nd = Y.shape[0]
    qn = _norms64(Q)
    yn = _norms64(Y)
    if nq and nd and not float(qn.max()) * float(yn.max()) <= MAX_SQUARED_NORM:
        raise InputError(
            f"queries and database rows of norms {float(qn.max()):.3g} and {float(yn.max()):.3g}: their "
            f"similarity overflows float32 above {MAX_SQUARED_NORM:.3g}; L2-normalise the rows."
        )
    Yt = torch.from_numpy(Y)
    Yb = Yt.to(torch.bfloat16)
    y_hat = _norms64(Yb.float().numpy())
    y_res = _norms64(Y - Yb.float().numpy())
    Yb_T = Yb.T  # oneDNN takes the transposed view without a copy
    gamma = d * _U_F32 / (1.0 - d * _U_F32)
    sqrt_d = math.sqrt(d)
    flush = 2.0**-120
    u_out = _U_BF16  # torch on the CPU returns bfloat16 products
    rows = max(64, block_entries // max(nd, 1))
    n_chunks = max(1, nb.get_num_threads())
    sims = np.empty((nq, k), dtype=np.float32)
    idx = np.empty((nq, k), dtype=np.int64)
    n_cand = np.empty(nq, dtype=np.int64)
    yh_max, yr_max = float(y_hat.max()), float(y_res.max())
    for start in range(0, nq, rows):
        stop = min(nq, start + rows)
        qt = torch.from_numpy(Q[start:stop])
        qb = qt.to(torch.bfloat16)
        q_hat = _norms64(qb.float().numpy())
        q_res = _norms64(Q[start:stop] - qb.float().numpy())
        # e(x, y) = |r_x| |y^| + |x^| |r_y| + |r_x| |r_y| + gamma |x^| |y^| + flush (d + sqrt(d) (|x^| + |y^|))
        #         = ex_a |y^| + ex_b |r_y| + ex_c  (norms in float64; 1e-9 covers their rounding)
        ex_a = (q_res + gamma * q_hat + flush * sqrt_d) * (1 + 1e-9)
        ex_b = (q_hat + q_res) * (1 + 1e-9)
        ex_c = flush * (d + sqrt_d * q_hat)
        ex_max = ex_a * yh_max + ex_b * yr_max + ex_c
        # float64 re-scoring error (twice) and the smallest subnormal steps, on top of the float32 ulp
        slack = 4.0 * d * _U_F64 * qn[start:stop] * float(yn.max()) + 2.0**-140
        approx = torch.mm(qb, Yb_T).view(torch.int16).numpy().view(np.uint16)
        _select_block(approx, _KEY_VALUES, u_out, Q[start:stop].astype(np.float64), Y, ex_a, ex_b, ex_c, ex_max, y_hat, y_res,
                      slack, k, min(n_chunks, stop - start), sims[start:stop], idx[start:stop], n_cand[start:stop])
        del approx
    stats = SearchStats(nq, k, float(n_cand.mean()) if nq else 0.0, int(n_cand.max()) if nq else 0,
                        float((n_cand > k + EXTRA_CANDIDATES).mean()) if nq else 0.0)
    logger.debug("bf16 search: %d x %d, k=%d, %.1f candidates per row (max %d), %.1f%% over k+%d", nq, nd, k,
                 stats.mean_candidates, stats.max_candidates, 100 * stats.share_over, EXTRA_CANDIDATES)
    if return_stats:
        return sims, idx, stats
    return sims, idx
