"""Exact inner-product search from bfloat16 candidates and float64 re-scoring.

Engine ``"bf16"`` of :func:`xmrank.backend.resolve_knn`. Every similarity is
first computed by a bfloat16 matrix product (torch; oneDNN on the CPU, tensor
cores on a GPU), twice the float32 rate or more on CPUs with AVX-512 BF16 or
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
``gamma_d = d v / (1 - d v)`` for any summation order; ``v = 2**-23``, a
whole ulp per addition, so that rounding toward zero is covered too, and
``2**-21`` on a GPU, whose tensor cores need not round each partial sum to
nearest), flushes subnormals (a term below
``2**-120 (d + sqrt(d) (|x^| + |y^|))``), and where the library only
returns bfloat16 (torch on the CPU) rounds once more, to nearest: relative
``2**-8`` (``tests/test_knn_bf16.py`` checks the whole bound against torch's
products). With ``e(x, y)`` the sum of these terms, every row ``j`` obeys
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
problem is large: ``knn="auto"`` picks it from
:data:`xmrank.backend.BF16_AUTO_MIN_WORK` multiply-adds per search (see
:func:`xmrank.backend.resolve_knn`). On a GPU it runs when named
(``knn="bf16", device="cuda"``, :func:`search_torch`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numba as nb
import numpy as np

from .._jit import njit
from .._validation import MAX_SQUARED_NORM, InputError
from .rescore import _U_F64, rescore_row

logger = logging.getLogger(__name__)

__all__ = ["search", "search_torch", "SearchStats", "BLOCK_ENTRIES", "EXTRA_CANDIDATES"]

#: Approximate similarities held at once (bfloat16 entries): the query block is
#: ``max(64, BLOCK_ENTRIES // n_database)`` rows.
BLOCK_ENTRIES = 1 << 23
#: Rows whose candidate list is longer than ``k + EXTRA_CANDIDATES`` are counted in :class:`SearchStats`.
EXTRA_CANDIDATES = 16

_U_BF16 = 2.0**-8
#: Columns per vectorised pre-check of the scan.
_CHUNK = 32


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
    seconds_product, seconds_select : float
        Wall time of the bfloat16 products and of the candidate scan plus re-scoring.
    """

    n_queries: int
    k: int
    mean_candidates: float
    max_candidates: int
    share_over: float
    seconds_product: float = 0.0
    seconds_select: float = 0.0


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
def _first_key_at_least(t, table):
    """The smallest key whose value is >= ``t``: every value >= ``t`` has a key at least this one."""
    return np.searchsorted(table, t, side="left")


@njit(inline="always", cache=True)
def _threshold_key(table, kth_key, u, E, slack):
    """Scan threshold: the smallest key whose row could still reach the top ``k``, given the running ``k``-th key.

    ``t = tau - u |tau| - E`` is a lower bound on the exact ``k``-th score; a row
    is needed only if ``s^ + u |s^| + E >= t - slack``.
    """
    tau = table[kth_key]
    t = tau - u * abs(tau) - E
    need = t - (2.0**-22) * (abs(t) + E) - slack
    return _first_key_at_least(_lower_from_upper(need - E, u), table)


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


@njit(parallel=True, cache=True, nogil=True)
def _select_block(approx, table, u, Xq, Y, ex_a, ex_b, ex_c, ex_max, y_hat, y_res, slack_abs, k, n_chunks,
                  out_sims, out_idx, n_cand):
    """Candidates from one block of approximate scores, re-scored, cut to ``k``.

    approx : uint16 (rows, nd), bfloat16 bit patterns of the approximate scores.
    table : the value of each key (:data:`_KEY_VALUES`).
    u : relative error of the approximate scores' own rounding, ``u_out / (1 - u_out)``.
    Xq : float32 (rows, d), the query rows.
    ex_a, ex_b, ex_c : per query row, ``e(x, y) = ex_a * |y^| + ex_b * |r_y| + ex_c``;
    ex_max : per query row, the largest ``e`` over the database.
    y_hat, y_res : per database row, ``|y^|`` and ``|r_y|``.
    slack_abs : per query row, the absolute part of the float32 slack.
    """
    rows, nd = approx.shape
    for ch in nb.prange(n_chunks):
        heap = np.empty(k, dtype=np.int32)
        cmax = np.empty((nd + _CHUNK - 1) // _CHUNK, dtype=np.int32)
        buf = np.empty(nd, dtype=np.int64)
        lbs = np.empty(nd, dtype=np.float64)
        vals = np.empty(nd, dtype=np.float64)
        for r in range(ch, rows, n_chunks):
            row = approx[r]
            E = ex_max[r]
            # chunk maxima (vectorised); the k-th largest of them is a lower bound on the k-th largest key
            n_ch = (nd + _CHUNK - 1) // _CHUNK
            for c in range(n_ch):
                top = 0
                for j in range(c * _CHUNK, min(nd, (c + 1) * _CHUNK)):
                    top = max(top, _key(row[j]))
                cmax[c] = top
            floor = 0
            if n_ch >= k:
                for c in range(k):
                    _heap_push_min(heap, c, cmax[c])
                for c in range(k, n_ch):
                    if cmax[c] > heap[0]:
                        _heap_replace_min(heap, k, cmax[c])
                floor = heap[0]
            # the k-th largest key: a heap seeded with k copies of the floor, fed by the chunks that reach it
            for c in range(k):
                heap[c] = floor
            for c in range(n_ch):
                if cmax[c] > heap[0]:
                    for j in range(c * _CHUNK, min(nd, (c + 1) * _CHUNK)):
                        key = _key(row[j])
                        if key > heap[0]:
                            _heap_replace_min(heap, k, key)
            # every column that could still reach the top k
            tkey = _threshold_key(table, heap[0], u, E, slack_abs[r])
            m = 0
            for c in range(n_ch):
                if cmax[c] >= tkey:
                    for j in range(c * _CHUNK, min(nd, (c + 1) * _CHUNK)):
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
            # exact scores, then (float32 score decreasing, index increasing): buf is in index order
            rescore_row(Xq[r], Y, buf, kept, k, out_sims[r], out_idx[r])


@njit(parallel=True, cache=True, nogil=True)
def _round_bf16(A, A_bits):
    """bfloat16 copy of float32 ``A`` (round to nearest, ties to even) and, per row, ``|a|``, ``|a^|``, ``|a - a^|``.

    ``A_bits`` is ``A`` viewed as uint32. One pass; the norms are float64 sums
    (``a - a^`` is exact). A NaN or infinity makes the row's norms NaN or inf.
    """
    n, d = A.shape
    bits = np.empty((n, d), dtype=np.uint16)
    norms = np.empty((n, 3), dtype=np.float64)
    for i in nb.prange(n):
        hat = np.empty(d, dtype=np.uint32)
        for t in range(d):
            b = A_bits[i, t]
            r = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
            bits[i, t] = np.uint16(r)
            hat[t] = r << np.uint32(16)
        hf = hat.view(np.float32)
        s_a = 0.0
        s_h = 0.0
        s_r = 0.0
        for t in range(d):
            a = np.float64(A[i, t])
            h = np.float64(hf[t])
            s_a += a * a
            s_h += h * h
            s_r += (a - h) * (a - h)
        norms[i, 0] = np.sqrt(s_a)
        norms[i, 1] = np.sqrt(s_h)
        norms[i, 2] = np.sqrt(s_r)
    return bits, norms


def _to_bf16(A):
    """``A`` (float32, C-contiguous) as a torch bfloat16 tensor and its per-row rounding norms."""
    import torch

    bits, norms = _round_bf16(A, A.view(np.uint32))
    return torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16), norms


class _Bound:
    """The per-row terms of the candidate bound (module docstring), from the rounding norms.

    ``e(x, y) = ex_a |y^| + ex_b |r_y| + ex_c`` for query row ``x``, ``ex_max``
    its largest value over the database, ``u = u_out / (1 - u_out)`` the
    relative part, ``slack`` the absolute part of the float32 slack.
    ``acc_unit`` is the error of one float32 addition in the product's
    accumulation, relative.

    Raises
    ------
    xmrank.InputError
        When a similarity could overflow float32.
    """

    def __init__(self, q_norms, y_norms, d: int, *, u_out: float, acc_unit: float = 2.0**-23):
        qn, q_hat, q_res = (np.asarray(q_norms[:, c]) for c in range(3))
        yn, self.y_hat, self.y_res = (np.ascontiguousarray(y_norms[:, c]) for c in range(3))
        qmax, ymax = float(qn.max()), float(yn.max())
        # a bfloat16 copy rounds up to 2**-8 relative: bound the rounded norms too (their product stays finite)
        if not qmax * ymax * (1 + 2.0**-7) <= MAX_SQUARED_NORM:
            raise InputError(
                f"queries and database rows of norms up to {qmax:.3g} and {ymax:.3g}: their similarities "
                f"overflow float32 above {MAX_SQUARED_NORM:.3g}; L2-normalise the rows."
            )
        gamma = d * acc_unit / (1.0 - d * acc_unit)
        sqrt_d = math.sqrt(d)
        flush = 2.0**-120  # subnormal inputs and partial sums flushed to zero (well above the true 2**-126)
        # e(x, y) = |r_x| |y^| + |x^| |r_y| + |r_x| |r_y| + gamma |x^| |y^| + flush (d + sqrt(d) (|x^| + |y^|));
        # norms are float64 sums, within 1e-12 relative: the 1e-9 covers them
        self.ex_a = np.ascontiguousarray((q_res + gamma * q_hat + flush * sqrt_d) * (1 + 1e-9))
        self.ex_b = np.ascontiguousarray((q_hat + q_res) * (1 + 1e-9))
        self.ex_c = np.ascontiguousarray(flush * (d + sqrt_d * q_hat))
        self.ex_max = self.ex_a * float(self.y_hat.max()) + self.ex_b * float(self.y_res.max()) + self.ex_c
        self.u = u_out / (1.0 - u_out)
        # the float64 re-scoring error (twice) and subnormal steps, on top of the float32 ulp in the kernel
        self.slack = np.ascontiguousarray(4.0 * d * _U_F64 * qn * ymax + 2.0**-140)


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
    sims = np.empty((nq, k), dtype=np.float32)
    idx = np.empty((nq, k), dtype=np.int64)
    n_cand = np.zeros(nq, dtype=np.int64)
    t_prod = t_sel = 0.0
    if nq:
        Yb, y_norms = _to_bf16(Y)
        Qb, q_norms = _to_bf16(Q)
        bound = _Bound(q_norms, y_norms, d, u_out=_U_BF16)  # torch on the CPU returns bfloat16 products
        Yb_T = Yb.T  # oneDNN takes the transposed operand as a view
        rows = max(64, block_entries // max(nd, 1))
        n_threads = max(1, nb.get_num_threads())
        for start in range(0, nq, rows):
            stop = min(nq, start + rows)
            t0 = time.perf_counter()
            approx = torch.mm(Qb[start:stop], Yb_T).view(torch.int16).numpy().view(np.uint16)
            t1 = time.perf_counter()
            _select_block(approx, _KEY_VALUES, bound.u, Q[start:stop], Y, bound.ex_a[start:stop],
                          bound.ex_b[start:stop], bound.ex_c[start:stop], bound.ex_max[start:stop], bound.y_hat,
                          bound.y_res, bound.slack[start:stop], k, min(n_threads, stop - start),
                          sims[start:stop], idx[start:stop], n_cand[start:stop])
            del approx
            t_prod += t1 - t0
            t_sel += time.perf_counter() - t1
    stats = SearchStats(nq, k, float(n_cand.mean()) if nq else 0.0, int(n_cand.max()) if nq else 0,
                        float((n_cand > k + EXTRA_CANDIDATES).mean()) if nq else 0.0, t_prod, t_sel)
    logger.debug("bf16 search: %d x %d, k=%d, %.1f candidates per row (max %d), %.1f%% over k+%d; "
                 "products %.2fs, candidates and re-scoring %.2fs", nq, nd, k, stats.mean_candidates,
                 stats.max_candidates, 100 * stats.share_over, EXTRA_CANDIDATES, t_prod, t_sel)
    if return_stats:
        return sims, idx, stats
    return sims, idx


# --- the same search in torch, for a GPU (and testable on the CPU) ---------------------------------------------

#: Approximate similarities held at once by :func:`search_torch` (each entry also holds two float64 bounds).
TORCH_BLOCK_ENTRIES = 1 << 24
#: Gathered candidate entries (rows x candidates x d) re-scored at once by :func:`search_torch`.
TORCH_RESCORE_ENTRIES = 1 << 25


def _torch_device(device: str):
    """The torch device of ``device``: on "cuda", cupy's current GPU (set by ``device="cuda:N"``)."""
    import torch

    if device == "cpu":
        return torch.device("cpu")
    import sys

    if "cupy" in sys.modules:
        import cupy

        return torch.device("cuda", cupy.cuda.runtime.getDevice())
    return torch.device("cuda", torch.cuda.current_device())


def _as_tensor(array, dev):
    """``array`` (numpy, cupy or torch) as a C-contiguous float32 torch tensor on ``dev``."""
    import torch

    if isinstance(array, torch.Tensor):
        t = array.detach()
    elif type(array).__module__.split(".")[0] == "cupy":
        t = torch.from_dlpack(array)
    else:
        t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return t.to(device=dev, dtype=torch.float32).contiguous()


def _torch_rounding_norms(A, Ab, rows: int):
    """Per row: ``|a|``, ``|a^|``, ``|a - a^|`` in float64 (host numpy array, n x 3), a block of rows at a time."""
    import torch

    out = []
    for s in range(0, A.shape[0], rows):
        a, ab = A[s:s + rows].double(), Ab[s:s + rows].double()
        out.append(torch.stack([a.norm(dim=1), ab.norm(dim=1), (a - ab).norm(dim=1)], dim=1))
    return torch.cat(out).cpu().numpy()


def _product(qb, ybT, out_f32: bool):
    import torch

    if out_f32:
        return torch.mm(qb, ybT, out_dtype=torch.float32)
    return torch.mm(qb, ybT).float()


def _float32_products(dev) -> bool:
    """Whether torch returns float32 products of bfloat16 matrices on ``dev`` (``mm(..., out_dtype=)``)."""
    import torch

    a = torch.ones((2, 2), dtype=torch.bfloat16, device=dev)
    try:
        return torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
    except (RuntimeError, TypeError, NotImplementedError):  # older torch, or no such kernel (the CPU)
        return False


def search_torch(queries, database, k: int, *, device: str = "cuda", block_entries: int = TORCH_BLOCK_ENTRIES,
                 rescore_entries: int = TORCH_RESCORE_ENTRIES, return_stats: bool = False):
    """:func:`search` in torch operations: engine ``"bf16-gpu"`` on ``device="cuda"``.

    The same bound and the same result rule as :func:`search`: bfloat16
    products (float32 output where torch offers it, ``mm(..., out_dtype=)``;
    else bfloat16, its rounding in the bound), per-row lower and upper
    bounds in float64, the candidates ranked by upper bound, re-scored as
    float64 inner products of the float32 rows (``bmm`` in float64) and
    ordered by (float32 score decreasing, index increasing). cuBLAS picks the
    float64 summation order, so a score can differ from :func:`search`'s in
    the rare case where the two float64 sums (within ``d * 2**-53`` of exact)
    straddle a float32 rounding boundary. The product's accumulation error is
    taken four times wider on a GPU, and cuBLAS' bfloat16 split-K reduction
    is switched off while it runs. On the CPU it runs too (slower than
    :func:`search`), which is how it is tested without a GPU; on a GPU it is
    untested here.

    Parameters
    ----------
    queries, database : numpy or cupy array, or torch tensor, float32, shapes (n_queries, d), (n_database, d)
    k : int
    device : {"cuda", "cpu"}, default="cuda"
        "cuda" runs on cupy's current GPU (``device="cuda:N"`` upstream sets it).
    block_entries, rescore_entries : int
        Approximate similarities, and gathered candidate entries, held at once.
    return_stats : bool, default=False

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
    indices : ndarray of int64, shape (n_queries, k)
        Host numpy arrays.
    stats : SearchStats
        Only with ``return_stats=True``.
    """
    import torch

    dev = _torch_device(device)
    Q = _as_tensor(queries, dev)
    Y = _as_tensor(database, dev)
    nq, d = Q.shape
    nd = Y.shape[0]
    sims = np.empty((nq, k), dtype=np.float32)
    idx = np.empty((nq, k), dtype=np.int64)
    n_cand = np.zeros(nq, dtype=np.int64)
    t_prod = t_sel = 0.0
    if nq:
        Qb, Yb = Q.to(torch.bfloat16), Y.to(torch.bfloat16)
        norm_rows = max(1, (1 << 24) // max(d, 1))
        out_f32 = _float32_products(dev)
        bound = _Bound(_torch_rounding_norms(Q, Qb, norm_rows), _torch_rounding_norms(Y, Yb, norm_rows), d,
                       u_out=0.0 if out_f32 else _U_BF16, acc_unit=2.0**-21 if dev.type == "cuda" else 2.0**-23)
        rows = max(1, block_entries // max(nd, 1))
        cuda = dev.type == "cuda"
        if cuda:  # cuBLAS may otherwise reduce split-K partial sums in bfloat16, outside the bound
            matmul = torch.backends.cuda.matmul
            saved = matmul.allow_bf16_reduced_precision_reduction
            matmul.allow_bf16_reduced_precision_reduction = False
        try:
            t_prod, t_sel = _torch_blocks(Q, Y, Qb, Yb.T, k, bound, out_f32, rows, rescore_entries, sims, idx, n_cand)
        finally:
            if cuda:
                matmul.allow_bf16_reduced_precision_reduction = saved
    stats = SearchStats(nq, k, float(n_cand.mean()) if nq else 0.0, int(n_cand.max()) if nq else 0,
                        float((n_cand > k + EXTRA_CANDIDATES).mean()) if nq else 0.0, t_prod, t_sel)
    logger.debug("bf16 search on %s: %d x %d, k=%d, %.1f candidates per row (max %d)", dev, nq, nd, k,
                 stats.mean_candidates, stats.max_candidates)
    if return_stats:
        return sims, idx, stats
    return sims, idx


def _torch_blocks(Q, Y, Qb, YbT, k, bound, out_f32, rows, rescore_entries, sims, idx, n_cand):
    """The block loop of :func:`search_torch`: fills ``sims``, ``idx`` and ``n_cand``; returns the two wall times."""
    import torch

    dev = Q.device
    nq, d = Q.shape
    f64 = dict(dtype=torch.float64, device=dev)
    y_hat, y_res = torch.as_tensor(bound.y_hat, **f64)[None, :], torch.as_tensor(bound.y_res, **f64)[None, :]
    terms = {name: torch.as_tensor(getattr(bound, name), **f64)[:, None]
             for name in ("ex_a", "ex_b", "ex_c", "ex_max", "slack")}
    t_prod = t_sel = 0.0
    for start in range(0, nq, rows):
        stop = min(nq, start + rows)
        t0 = time.perf_counter()
        S = _product(Qb[start:stop], YbT, out_f32).double()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t1 = time.perf_counter()
        a, b, c, e_max, slack = (terms[n][start:stop] for n in ("ex_a", "ex_b", "ex_c", "ex_max", "slack"))
        spread = bound.u * S.abs() + (a * y_hat + b * y_res + c)  # |s - s^| <= spread, per pair
        t = torch.topk(S - spread, k, dim=1).values[:, -1:]  # k rows have s >= t
        need = t - 2.0**-22 * (t.abs() + e_max) - slack
        ub = S + spread
        del S, spread
        count = (ub >= need).sum(dim=1)
        n_cand[start:stop] = count.cpu().numpy()
        width = int(count.max())
        cand = torch.topk(ub, width, dim=1).indices  # holds every row whose upper bound reaches need
        del ub
        cand, _ = cand.sort(dim=1)  # index order, for the stable sort below
        sub = max(1, rescore_entries // max(width * d, 1))
        for s in range(0, stop - start, sub):
            e = min(stop - start, s + sub)
            rows_c = cand[s:e]
            G = Y[rows_c.reshape(-1)].view(e - s, width, d).double()
            exact = torch.bmm(G, Q[start + s:start + e].double()[:, :, None])[:, :, 0].float()
            order = torch.sort(-exact, dim=1, stable=True).indices[:, :k]
            sims[start + s:start + e] = exact.gather(1, order).cpu().numpy()
            idx[start + s:start + e] = rows_c.gather(1, order).cpu().numpy()
        t_sel += time.perf_counter() - t1
        t_prod += t1 - t0
    return t_prod, t_sel
