"""The min-sum Jaccard kernel (numba): the one CPU implementation of the last pipeline stage.

``J(i, j) = 1 - m/(2 - m)`` with ``m(i, j) = sum_l min(V'[i, l], V'[j, l])``,
for the rows of ``V'`` (CSR) against the rows of a second sparse matrix read
by column (CSC). One kernel, :func:`_minsum_rows`, serves every caller:

- the square N x N case (:func:`minsum_jaccard`, used by
  :func:`xmrank.jaccard_distance`): row ``i`` accumulates only partners
  ``j > i`` (``m`` is symmetric), which halves the work, and :func:`assemble`
  mirrors the pairs and adds the zero diagonal;
- any row range ``[lo, hi)`` of it (:func:`minsum_rows`), so that a cluster
  computes the blocks independently (:mod:`xmrank.distributed.dask`);
- the query x gallery case of re-ranking (:func:`accumulate_rectangle`):
  every query row against every gallery row, added into a dense output.

With ``max_distance`` below 1 a single pass computes and stores the pairs
(per-chunk buffers, re-run only if a buffer overflows); otherwise every pair
that shares a column is kept, and a first pass counts them. Memory per
thread is O(N) scratch; nothing is N x N.
"""

from __future__ import annotations

import logging

import numba as nb
import numpy as np
import scipy.sparse as sp

from .._jit import njit

logger = logging.getLogger(__name__)

__all__ = ["prepare", "minsum_rows", "assemble", "minsum_jaccard", "accumulate_rectangle", "estimate_pairs",
           "check_output_fits"]

_PARALLEL = dict(parallel=True, cache=True, nogil=True)

#: What :func:`_minsum_rows` does with each pair it finds.
_COUNT, _PAIRS, _DENSE = 0, 1, 2


@njit(**_PARALLEL)
def _minsum_rows(lo, hi, n_partners, r_ptr, r_idx, r_val, c_ptr, c_idx, c_val, upper, mode, limit, n_chunks, cap,
                 out_row, out_col, out_val, need, dense, weight):
    """Min-sum over the rows ``lo <= i < hi`` of ``r`` (CSR) and the partners ``j`` of ``c`` (CSC).

    ``c_idx`` holds partner indices ``0 <= j < n_partners``, sorted within
    each column; ``upper`` keeps only partners ``j > i`` (the square case).
    Chunk ``ch`` takes rows ``lo + ch, lo + ch + n_chunks, ...`` (strided, so
    the heavier low rows of the triangle spread over all threads) with one
    O(``n_partners``) accumulator. ``mode``:

    - ``_COUNT``: ``need[ch]`` = the partners chunk ``ch`` finds (no values);
    - ``_PAIRS``: pairs with float32 distance <= ``limit`` go to row ``ch`` of
      ``out_row``/``out_col``/``out_val`` (at most ``cap``); ``need[ch]`` is
      the number found, above ``cap`` when the buffer overflowed;
    - ``_DENSE``: ``dense[i - lo, j] += weight * (J - 1)``.
    """
    for ch in nb.prange(n_chunks):
        acc = np.zeros(n_partners, dtype=np.float64)
        seen = np.zeros(n_partners, dtype=np.bool_)
        touched = np.empty(n_partners, dtype=np.int64)
        stored = 0
        for i in range(lo + ch, hi, n_chunks):
            m = 0
            for p in range(r_ptr[i], r_ptr[i + 1]):
                col = r_idx[p]
                a = np.float64(r_val[p])
                q_lo = c_ptr[col]
                q_hi = c_ptr[col + 1]
                if upper:  # column rows are sorted: skip to the first row > i
                    q_lo = q_lo + np.searchsorted(c_idx[q_lo:q_hi], i, side="right")
                for q in range(q_lo, q_hi):
                    j = c_idx[q]
                    fresh = not seen[j]
                    seen[j] = True
                    touched[m] = j
                    m += fresh
                    if mode != _COUNT:
                        b = np.float64(c_val[q])
                        acc[j] += a if a < b else b
            if mode == _COUNT:
                for t in range(m):
                    seen[touched[t]] = False
                stored += m
                continue
            for t in range(m):
                j = touched[t]
                seen[j] = False
                s = acc[j]
                acc[j] = 0.0
                v = 1.0 - s / (2.0 - s)
                if v < 0.0:
                    v = 0.0
                if mode == _DENSE:
                    dense[i - lo, j] += np.float32(weight * (v - 1.0))
                elif np.float32(v) <= limit:  # the float32 value is what is stored and compared with eps
                    if stored < cap:
                        out_row[ch, stored] = i
                        out_col[ch, stored] = j
                        out_val[ch, stored] = v
                    stored += 1
        need[ch] = stored


def _kernel_arrays(rows_csr, cols_csc):
    """``(r_ptr, r_idx, r_val, c_ptr, c_idx, c_val)`` in the kernel's dtypes (int64 pointers, float32 weights)."""
    return (rows_csr.indptr.astype(np.int64, copy=False), rows_csr.indices,
            rows_csr.data.astype(np.float32, copy=False), cols_csc.indptr.astype(np.int64, copy=False),
            cols_csc.indices, cols_csc.data.astype(np.float32, copy=False))


def _no_pairs(n_chunks):
    empty_i = np.empty((n_chunks, 0), dtype=np.int64)
    return empty_i, empty_i, np.empty((n_chunks, 0), dtype=np.float32)


_NO_DENSE = np.empty((0, 0), dtype=np.float32)


def prepare(vq_csr):
    """The CSR and CSC arrays :func:`minsum_rows` reads, in the kernel's dtypes.

    Parameters
    ----------
    vq_csr : scipy.sparse.csr_matrix, shape (N, N)
        The query-expanded weights ``V'``.

    Returns
    -------
    parts : tuple
        ``(n, r_ptr, r_idx, r_val, c_ptr, c_idx, c_val)``; ship this once to
        every worker of a cluster.
    """
    vq_csr = sp.csr_matrix(vq_csr)
    vq_csr.sort_indices()
    csc = vq_csr.tocsc()
    csc.sort_indices()
    # float32 weights are widened exactly inside the kernel: no float64 copies needed
    return (vq_csr.shape[0], *_kernel_arrays(vq_csr, csc))


def minsum_rows(parts, lo: int, hi: int, *, max_distance=None, n_threads: int = 1):
    """Pairs ``(i, j)`` with ``lo <= i < hi``, ``j > i`` and distance <= ``max_distance``.

    Parameters
    ----------
    parts : tuple
        From :func:`prepare`.
    lo, hi : int
        Row range.
    max_distance : float, default=None
        None keeps every pair that shares a column (distance < 1 up to
        rounding).
    n_threads : int, default=1
        Parallel chunks (numba threads are set by the caller).

    Returns
    -------
    rows, cols : ndarray of int64
    vals : ndarray of float32
        The upper-triangle pairs of the range, diagonal excluded.
    """
    n = parts[0]
    arrays = parts[1:]
    limit = 2.0 if max_distance is None else float(np.float32(max_distance))
    n_chunks = max(1, min(hi - lo, 4 * n_threads))
    rows_per_chunk = (hi - lo + n_chunks - 1) // n_chunks
    cap = max(256, 32 * rows_per_chunk)
    if limit >= 1.0:  # every pair that shares a column is stored: count them first
        need = np.zeros(n_chunks, dtype=np.int64)
        _minsum_rows(lo, hi, n, *arrays, True, _COUNT, limit, n_chunks, 0, *_no_pairs(n_chunks), need, _NO_DENSE,
                     0.0)
        cap = int(need.max(initial=0))
    while True:
        out_row = np.empty((n_chunks, cap), dtype=np.int64)
        out_col = np.empty((n_chunks, cap), dtype=np.int64)
        out_val = np.empty((n_chunks, cap), dtype=np.float32)
        need = np.zeros(n_chunks, dtype=np.int64)
        _minsum_rows(lo, hi, n, *arrays, True, _PAIRS, limit, n_chunks, cap, out_row, out_col, out_val, need,
                     _NO_DENSE, 0.0)
        if need.max(initial=0) <= cap:
            break
        cap = int(need.max())  # rare: one more pass with buffers of the exact size
        del out_row, out_col, out_val
    keep = np.arange(cap)[None, :] < need[:, None]
    return out_row[keep], out_col[keep], out_val[keep]


@njit(cache=True, nogil=True)
def _mirror_fill(rows, cols, vals, diag, pos, out_idx, out_val):
    """Counting-sort the pairs, both orientations, and the diagonal into CSR slots."""
    for e in range(rows.shape[0]):
        r = rows[e]
        c = cols[e]
        out_idx[pos[r]] = c
        out_val[pos[r]] = vals[e]
        pos[r] += 1
        out_idx[pos[c]] = r
        out_val[pos[c]] = vals[e]
        pos[c] += 1
    for e in range(diag.shape[0]):
        r = diag[e]
        out_idx[pos[r]] = r
        out_val[pos[r]] = 0.0
        pos[r] += 1


def assemble(n: int, pieces, nonempty_rows):
    """Mirror upper-triangle pairs and add the zero diagonal: the CSR of the full matrix.

    Parameters
    ----------
    n : int
    pieces : iterable of (rows, cols, vals)
        From :func:`minsum_rows`, any order.
    nonempty_rows : ndarray of bool, shape (N,)
        Rows of ``V'`` with at least one entry; they get an explicit 0 on the
        diagonal.

    Returns
    -------
    indptr, indices, data : CSR arrays (int32 indices while they fit, float32
        data); column indices are not sorted within a row.
    """
    pieces = list(pieces)
    rows = np.concatenate([p[0] for p in pieces] + [np.empty(0, np.int64)])
    cols = np.concatenate([p[1] for p in pieces] + [np.empty(0, np.int64)])
    vals = np.concatenate([p[2] for p in pieces] + [np.empty(0, np.float32)])
    del pieces
    diag = np.flatnonzero(nonempty_rows).astype(np.int64)
    counts = np.bincount(rows, minlength=n) + np.bincount(cols, minlength=n)
    counts[diag] += 1
    nnz = int(counts.sum())
    idx_dtype = np.int32 if max(n, nnz) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    out_idx = np.empty(nnz, dtype=idx_dtype)
    out_val = np.empty(nnz, dtype=np.float32)
    _mirror_fill(rows, cols, vals, diag, indptr[:-1].copy(), out_idx, out_val)
    return indptr.astype(idx_dtype), out_idx, out_val


#: Rows whose partners :func:`estimate_pairs` counts (a seeded sample beyond it).
ESTIMATE_ROWS = 2048
#: Peak bytes per stored upper-triangle pair of :func:`minsum_jaccard`: the
#: kernel's pair buffers and their trimmed copy (2 x 20 bytes), then, in
#: :func:`assemble`, the pieces, their concatenation and both orientations of
#: the CSR output (int32 or int64 indices, float32 values).
_PEAK_BYTES_PER_PAIR = {np.dtype(np.int32): 64, np.dtype(np.int64): 72}


def estimate_pairs(parts, *, max_distance=None, n_threads: int = 1, sample: int = ESTIMATE_ROWS,
                   seed: int = 0) -> float:
    """Estimated upper-triangle pairs :func:`minsum_jaccard` would store, from a sample of rows.

    Every partner of a sample of rows (both sides of the diagonal) is found by
    the same kernel with no storage; the total scales by ``N / sample``. Cost:
    ``sample / N`` of the min-sum itself, memory O(N) per thread.

    Parameters
    ----------
    parts : tuple
        From :func:`prepare`.
    max_distance : float, default=None
        As in :func:`minsum_rows`.
    n_threads : int, default=1
    sample : int, default=ESTIMATE_ROWS
    seed : int, default=0

    Returns
    -------
    pairs : float
        Estimated stored pairs ``(i, j)``, ``i < j`` (exact where ``N <= sample``).
    """
    n, r_ptr, r_idx, r_val = parts[0], parts[1], parts[2], parts[3]
    if n == 0:
        return 0.0
    rows = np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    sub = sp.csr_matrix((r_val, r_idx, r_ptr), shape=(n, n))[rows]
    sub.sort_indices()
    limit = 2.0 if max_distance is None else float(np.float32(max_distance))
    mode = _COUNT if limit >= 1.0 else _PAIRS
    n_chunks = max(1, min(rows.size, 4 * n_threads))
    need = np.zeros(n_chunks, dtype=np.int64)
    _minsum_rows(0, rows.size, n, sub.indptr.astype(np.int64), sub.indices, sub.data.astype(np.float32, copy=False),
                 *parts[4:], False, mode, limit, n_chunks, 0, *_no_pairs(n_chunks), need, _NO_DENSE, 0.0)
    entries = float(need.sum()) * n / rows.size  # both orientations and the diagonal
    nonempty = float(np.count_nonzero(np.diff(r_ptr)))
    return max(0.0, (entries - nonempty) / 2.0)


def check_output_fits(parts, *, max_distance=None, n_threads: int = 1) -> None:
    """Refuse, before allocating, a min-sum whose stored pairs would not fit in memory.

    First a bound that costs O(N): no more pairs can be stored than share a
    column of ``V'`` (``sum_c n_c (n_c - 1) / 2``, ``n_c`` the rows holding
    column ``c``), nor than ``N (N - 1) / 2``. Only where that bound does not
    fit is the stored count estimated (:func:`estimate_pairs`, a sample of
    rows through the kernel) and compared.

    Raises
    ------
    xmrank._memory.OutputTooLarge
        With the stored pairs, the bytes and what to change (``max_distance``).
    """
    from .._memory import budget_bytes, check_fits

    n = parts[0]
    holders = np.diff(parts[4]).astype(np.float64)  # rows of V' holding each column (CSC pointers)
    bound = min(n * (n - 1) / 2.0, float(np.dot(holders, holders - 1.0)) / 2.0)
    budget = budget_bytes()
    if budget is None or bound * _PEAK_BYTES_PER_PAIR[np.dtype(np.int64)] <= budget:
        return
    pairs = estimate_pairs(parts, max_distance=max_distance, n_threads=n_threads)
    nnz = 2 * pairs + n
    per = _PEAK_BYTES_PER_PAIR[np.dtype(np.int32 if max(n, nnz) < np.iinfo(np.int32).max else np.int64)]
    per_row = nnz / max(n, 1)
    what = (f"the Jaccard distances of {n:,} rows (about {nnz / 1e6:,.1f} M stored entries, {per_row:,.0f} per row"
            + ("" if max_distance is None else f", max_distance={max_distance:g}") + ")")
    if max_distance is None or float(max_distance) >= 1.0:
        hint = ("pass max_distance (e.g. max_distance=0.6: only pairs a clustering at eps <= 0.6 reads are stored; "
                "cluster does this with its eps) or fewer rows")
    else:
        hint = "pass a smaller max_distance or fewer rows"
    logger.debug("min-sum: about %.0f stored pairs estimated (at most %.0f share a column)", pairs, bound)
    check_fits(pairs * per, what, hint)


def minsum_jaccard(vq_csr, n_threads: int, *, max_distance=None, block_rows: int | None = None):
    """Jaccard distance ``1 - m/(2-m)``, ``m(i,j) = sum_l min(V'[i,l], V'[j,l])``, each pair computed once.

    Parameters
    ----------
    vq_csr : scipy.sparse.csr_matrix, shape (N, N)
        The query-expanded weights ``V'``.
    n_threads : int
        Parallel chunks (numba threads are set by the caller).
    max_distance : float, default=None
        Keep only pairs whose float32 distance is <= float32(max_distance).
        None keeps every pair with ``m > 0``.
    block_rows : int, default=None
        Rows per call of the kernel; None does all rows in one call.

    Returns
    -------
    indptr, indices, data : CSR arrays of the stored pairs (int32 indices
        while they fit, float32 data). Unstored pairs have distance 1; the
        diagonal is stored as 0 for every non-empty row of ``V'``. Each pair
        is computed once and stored in both rows, so the matrix is exactly
        symmetric.

    Raises
    ------
    xmrank._memory.OutputTooLarge
        Before anything is allocated, where the stored pairs (estimated from
        a sample of rows, :func:`estimate_pairs`) would not fit in memory.
    """
    parts = prepare(vq_csr)
    n = parts[0]
    check_output_fits(parts, max_distance=max_distance, n_threads=n_threads)
    step = n if block_rows is None else max(1, int(block_rows))
    pieces = [minsum_rows(parts, lo, min(n, lo + step), max_distance=max_distance, n_threads=n_threads)
              for lo in range(0, n, step)]
    return assemble(n, pieces, np.diff(parts[1]) > 0)


def accumulate_rectangle(out, rows_csr, partners_csr, weight: float, n_threads: int = 1) -> None:
    """``out[i, j] += weight * (J(i, j) - 1)`` for every row ``i`` and partner ``j`` sharing a column.

    The query x gallery case of re-ranking: ``rows_csr`` holds the query rows
    of ``V'``, ``partners_csr`` its gallery rows; ``J = 1 - m/(2-m)`` as in
    :func:`minsum_jaccard`, by the same kernel. Pairs sharing no column
    (``J = 1``) leave ``out`` unchanged.

    Parameters
    ----------
    out : ndarray of float32, shape (n_rows, n_partners), C-contiguous
        Updated in place.
    rows_csr, partners_csr : scipy.sparse matrices with the same number of columns
    weight : float
    n_threads : int, default=1
        Parallel chunks (numba threads are set by the caller).
    """
    rows_csr = sp.csr_matrix(rows_csr)
    rows_csr.sort_indices()
    cols = sp.csc_matrix(partners_csr)
    cols.sort_indices()
    nq, ng = out.shape
    n_chunks = max(1, min(nq, 4 * n_threads))
    _minsum_rows(0, nq, ng, *_kernel_arrays(rows_csr, cols), False, _DENSE, 2.0, n_chunks, 0, *_no_pairs(n_chunks),
                 np.zeros(n_chunks, dtype=np.int64), out, float(weight))
