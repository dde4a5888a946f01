"""Min-sum Jaccard over a range of rows, each unordered pair computed once.

The same quantity as :func:`xmrank.jaccard.kernels.minsum_jaccard`,
``J(i, j) = 1 - m/(2 - m)`` with ``m(i, j) = sum_l min(V'[i, l], V'[j, l])``,
organised for large N and for distributed row blocks:

- row ``i`` accumulates only partners ``j > i`` (``m`` is symmetric), which
  halves the work; :func:`assemble` mirrors the pairs afterwards;
- with ``max_distance`` below 1 a single pass computes and stores the pairs
  (per-chunk buffers, re-run only if a buffer overflows), instead of a count
  pass followed by a write pass;
- :func:`minsum_rows` handles any row range ``[lo, hi)`` against the whole
  matrix, so a cluster can compute the blocks independently
  (:mod:`xmrank.distributed.dask`).

Memory per thread is O(N) scratch; nothing is N x N.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp

from .._jit import njit
from . import kernels

__all__ = ["prepare", "minsum_rows", "assemble", "minsum_jaccard"]

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


@njit(**_PARALLEL)
def _upper_pairs(lo, hi, n, r_ptr, r_idx, r_val, c_ptr, c_idx, c_val, limit, n_chunks, cap,
                 out_row, out_col, out_val, need, count_only):
    """Pairs ``(i, j > i)`` of rows ``lo <= i < hi`` with distance <= limit.

    Chunk ``ch`` takes rows ``lo + ch, lo + ch + n_chunks, ...`` (strided, so
    the heavier low rows spread over all threads) and writes at most ``cap``
    pairs into row ``ch`` of the out arrays; ``need[ch]`` is the number it
    found, which exceeds ``cap`` when the buffer overflowed. ``count_only``
    (for ``limit >= 1``, where every pair sharing a column is kept) only
    counts. ``c_idx`` must be sorted within each column.
    """
    for ch in nb.prange(n_chunks):
        acc = np.zeros(n, dtype=np.float64)
        seen = np.zeros(n, dtype=np.bool_)
        touched = np.empty(n, dtype=np.int64)
        stored = 0
        for i in range(lo + ch, hi, n_chunks):
            m = 0
            for p in range(r_ptr[i], r_ptr[i + 1]):
                col = r_idx[p]
                a = r_val[p]
                q_lo = c_ptr[col]
                q_hi = c_ptr[col + 1]
                q0 = q_lo + np.searchsorted(c_idx[q_lo:q_hi], i, side="right")
                for q in range(q0, q_hi):
                    j = c_idx[q]
                    b = c_val[q]
                    fresh = not seen[j]
                    seen[j] = True
                    touched[m] = j
                    m += fresh
                    if not count_only:
                        acc[j] += a if a < b else b
            if count_only:
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
                if np.float32(v) <= limit:  # the float32 value is what is stored and compared with eps
                    if stored < cap:
                        out_row[ch, stored] = i
                        out_col[ch, stored] = j
                        out_val[ch, stored] = v
                    stored += 1
        need[ch] = stored


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
    n = vq_csr.shape[0]
    csc = vq_csr.tocsc()
    csc.sort_indices()
    # float32 weights are widened exactly inside the kernel: no float64 copies needed
    return (n, vq_csr.indptr, vq_csr.indices, vq_csr.data, csc.indptr, csc.indices, csc.data)


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
        rounding), like ``kernels.minsum_jaccard``.
    n_threads : int, default=1
        Parallel chunks (numba threads are set by the caller).

    Returns
    -------
    rows, cols : ndarray of int64
    vals : ndarray of float32
        The upper-triangle pairs of the range, diagonal excluded.
    """
    n = parts[0]
    limit = 2.0 if max_distance is None else float(np.float32(max_distance))
    n_chunks = max(1, min(hi - lo, 4 * n_threads))
    rows_per_chunk = (hi - lo + n_chunks - 1) // n_chunks
    cap = max(256, 32 * rows_per_chunk)
    if limit >= 1.0:  # every pair that shares a column is stored: count them first
        need = np.zeros(n_chunks, dtype=np.int64)
        empty_i = np.empty((n_chunks, 0), dtype=np.int64)
        _upper_pairs(lo, hi, n, *parts[1:], limit, n_chunks, 0, empty_i, empty_i,
                     np.empty((n_chunks, 0), dtype=np.float32), need, True)
        cap = int(need.max(initial=0))
    while True:
        out_row = np.empty((n_chunks, cap), dtype=np.int64)
        out_col = np.empty((n_chunks, cap), dtype=np.int64)
        out_val = np.empty((n_chunks, cap), dtype=np.float32)
        need = np.zeros(n_chunks, dtype=np.int64)
        _upper_pairs(lo, hi, n, *parts[1:], limit, n_chunks, cap, out_row, out_col, out_val, need, False)
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
        diagonal (as ``kernels.minsum_jaccard`` stores it).

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


def minsum_jaccard(vq_csr, n_threads: int, *, max_distance=None, block_rows: int | None = None):
    """Drop-in for :func:`xmrank.jaccard.kernels.minsum_jaccard`, each pair computed once.

    With ``max_distance < 1`` the result is the same matrix, to the bit, in
    about 40% of the time (N=50,000: 10.8 s against 27.9 s on 2 cores).
    Without it (or at >= 1) every pair that shares a column is stored, and
    the call goes to ``kernels.minsum_jaccard``, whose count-then-write
    passes need no pair buffers.

    Parameters
    ----------
    vq_csr : scipy.sparse.csr_matrix, shape (N, N)
    n_threads : int
    max_distance : float, default=None
    block_rows : int, default=None
        Rows per call of the kernel; None does all rows in one call.

    Returns
    -------
    indptr, indices, data : CSR arrays of the stored pairs, symmetric, with
        the diagonal stored as 0 for every non-empty row of ``V'``.
    """
    if max_distance is None or max_distance >= 1.0:
        # every pair sharing a column is stored (hundreds to thousands per row): the
        # count-then-write kernel, which needs no pair buffers, is faster there
        return kernels.minsum_jaccard(vq_csr, n_threads, max_distance=max_distance)
    vq_csr = sp.csr_matrix(vq_csr)
    parts = prepare(vq_csr)
    n = parts[0]
    step = n if block_rows is None else max(1, int(block_rows))
    pieces = [minsum_rows(parts, lo, min(n, lo + step), max_distance=max_distance, n_threads=n_threads)
              for lo in range(0, n, step)]
    return assemble(n, pieces, np.diff(vq_csr.indptr) > 0)
