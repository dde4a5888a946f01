"""k-reciprocal re-ranking from precomputed distance matrices, sparse inside.

The re-ranking literature passes three distance matrices, query x gallery,
query x query and gallery x gallery (torchreid's ``re_ranking(q_g_dist,
q_q_dist, g_g_dist)``). Together they are one (n_query + n_gallery)² matrix
``D``; this module never builds it. :class:`DistanceBlocks` reads ``D`` block
by block of rows to find each row's neighbour list and looks single entries
up where a weight needs one: it is a *neighbour source*
(:mod:`xmrank.jaccard.neighbors`), so the planners of
:mod:`xmrank.jaccard.plan` build the lists, sets and expansion from it as
they do from features, and :func:`xmrank.jaccard.stages.run_stages` runs the
weights, expansion and min-sum, the min-sum on the query x gallery pairs
only (:class:`xmrank.jaccard.stages.QueryGalleryExecutor`), written into the
output. Memory: the inputs, the output, and O((n_query + n_gallery) · k) for
the lists, sets and weights.

Two flavours share the machinery:

- ``zhong``: Zhong et al.'s script as torchreid ships it (``compat.re_ranking``):
  squared distances, each row divided by its maximum, ``k1 + 1`` forward
  columns, expansion with ``round(k1 / 2) + 1`` columns, weights
  ``exp(-d²/max)``, query expansion over each row's first ``k2`` list columns
  (its lists are found in the same pass over ``D`` as the original distance,
  then :func:`run_stages` runs the rest).
- the neighbour rules of :func:`xmrank.jaccard_distance` (vanilla,
  modality-aware, camera-aware; the planners of :mod:`xmrank.jaccard.plan`)
  with weights ``exp(-d²)``: for Euclidean distances between L2-normalised
  rows ``d² = 2 - 2 x·y``, so the result is the one :func:`xmrank.rerank`
  computes from the features.
"""

from __future__ import annotations

import logging

import numba as nb
import numpy as np

from .._jit import njit
from .._validation import InputError, _to_numpy, plain
from ..jaccard import kernels
from ..jaccard import query_expansion as qe
from ..jaccard.plan import JaccardPlan, build_plan
from ..jaccard.stages import QueryGalleryExecutor, run_stages

logger = logging.getLogger(__name__)

__all__ = ["DistanceBlocks", "check_blocks", "select", "zhong_rerank", "rules_rerank", "gnn_lists",
           "original_from_blocks"]

#: Entries of a block of rows of D held at once (float64: 32 MB).
_BLOCK_ENTRIES = 1 << 22
_PARALLEL = dict(parallel=True, cache=True, nogil=True)


# --- input ----------------------------------------------------------------------------------

def _as_matrix(value, name):
    if value is None:
        raise InputError(f"{name} is required: a 2-D array of distances.")
    if type(value).__module__.startswith("scipy.sparse"):
        raise InputError(f"{name} must be a dense array; convert a sparse matrix with .toarray().")
    A = _to_numpy(value, name)
    if A.dtype == object or A.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold real numbers; got an array of dtype {A.dtype}.")
    if A.ndim != 2:
        raise InputError(f"{name} must be a 2-D array; got shape {A.shape}.")
    if A.shape[0] < 1 or A.shape[1] < 1:
        raise InputError(f"{name} must not be empty; got shape {A.shape[0]}x{A.shape[1]}.")
    if A.dtype.kind != "f":
        A = A.astype(np.float64)
    elif A.dtype.itemsize < 4:
        A = A.astype(np.float32)
    return A


#: Negative distances within this share of the largest distance are rounding (``1 - cos`` is -2.4e-7 on the
#: diagonal in float32) and read as 0; below it they are refused.
ROUNDING = 1e-5


def _scan(A, name):
    """NaN/inf entries, block by block (no temporary of A's size); returns A's smallest and largest entries and
    where the smallest is."""
    rows = max(1, _BLOCK_ENTRIES // A.shape[1])
    low, high, where = np.inf, -np.inf, None
    for lo in range(0, A.shape[0], rows):
        block = A[lo:lo + rows]
        finite = np.isfinite(block)
        if not finite.all():
            r, c = np.argwhere(~finite)[0]
            total = sum(int((~np.isfinite(A[s:s + rows])).sum()) for s in range(0, A.shape[0], rows))
            raise InputError(f"{name} contains {total} NaN or infinite value(s), the first at [{lo + r}, {c}].")
        b_low = block.min()
        if b_low < low:
            r, c = np.unravel_index(int(np.argmin(block)), block.shape)
            low, where = b_low, (lo + int(r), int(c))
        high = max(high, block.max())
    return low, high, where


def _non_negative(blocks, names):
    """The blocks with entries within rounding of zero (>= -ROUNDING x the largest distance) set to 0 (a copy
    only where one is negative); a clearly negative distance is refused."""
    scans = [_scan(A, name) for A, name in zip(blocks, names)]
    largest = max(max(high, 0.0) for _, high, _ in scans)
    out = []
    for A, name, (low, _, where) in zip(blocks, names, scans):
        if low < 0:
            if low < -ROUNDING * largest:
                raise InputError(f"{name} must hold non-negative distances; {name}[{where[0]}, {where[1]}] = "
                                 f"{plain(A[where])} (only values within {ROUNDING:g} x the largest distance of "
                                 "zero are read as 0).")
            A = np.maximum(A, 0)
        out.append(A)
    return out


def check_blocks(q_g_dist, q_q_dist, g_g_dist, names=("q_g_dist", "q_q_dist", "g_g_dist")) -> DistanceBlocks:
    """The three distance blocks, checked: dense, 2-D, shapes that fit together, finite, non-negative.

    Negative entries within rounding of zero (at least ``-ROUNDING`` times
    the largest distance of the three blocks, as ``1 - cos`` gives in
    float32) are read as 0; clearly negative ones are refused.
    """
    qg = _as_matrix(q_g_dist, names[0])
    qq = _as_matrix(q_q_dist, names[1])
    gg = _as_matrix(g_g_dist, names[2])
    nq, ng = qg.shape
    if qq.shape[0] != qq.shape[1]:
        raise InputError(f"{names[1]} must be square (n_query x n_query); got {qq.shape[0]}x{qq.shape[1]}.")
    if gg.shape[0] != gg.shape[1]:
        raise InputError(f"{names[2]} must be square (n_gallery x n_gallery); got {gg.shape[0]}x{gg.shape[1]}.")
    if qq.shape[0] != nq or gg.shape[0] != ng:
        raise InputError(
            f"the shapes disagree: {names[0]} is {nq}x{ng}, so {names[1]} must be {nq}x{nq} and {names[2]} "
            f"{ng}x{ng}; got {qq.shape[0]}x{qq.shape[1]} and {gg.shape[0]}x{gg.shape[1]}."
        )
    qg, qq, gg = _non_negative((qg, qq, gg), names)
    return DistanceBlocks(qg, qq, gg)


class DistanceBlocks:
    """The (n_query + n_gallery)² matrix ``D = [[q_q, q_g], [q_g.T, g_g]]``, never assembled: a neighbour source.

    Row ``i`` of ``D`` is ``[q_q[i], q_g[i]]`` for a query and
    ``[q_g[:, g], g_g[g]]`` for gallery item ``g = i - n_query``.

    As a neighbour source (:class:`xmrank.jaccard.neighbors.NeighbourSource`)
    the rows are ranked by ``float32(D²)``, ascending, ties by column
    (scores ``−float32(D²)``), and the weights are
    ``softmax_j(−float32(D[i, j]²) / scale[i])`` with ``scale`` 1 (the
    neighbour rules) or each row's largest ``D²`` (torchreid's script,
    :meth:`with_scale`).
    """

    def __init__(self, qg, qq, gg, scale=None):
        self.qg, self.qq, self.gg = qg, qq, gg
        self.nq, self.ng = qg.shape
        self.n = self.nq + self.ng
        self.dtype = np.result_type(qg.dtype, qq.dtype, gg.dtype)
        self.scale = scale

    def transposed(self) -> DistanceBlocks:
        """``D.T``: the same blocks with ``q_q`` and ``g_g`` transposed (views)."""
        return DistanceBlocks(self.qg, self.qq.T, self.gg.T)

    def with_scale(self, scale) -> DistanceBlocks:
        """The same blocks whose weights divide each row's ``D²`` by ``scale[row]``."""
        return DistanceBlocks(self.qg, self.qq, self.gg, scale=np.ascontiguousarray(scale, dtype=np.float32))

    def rows_of(self, ids) -> np.ndarray:
        """Rows ``ids`` of ``D`` as a new (len(ids), n) array."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((ids.size, self.n), dtype=self.dtype)
        q = ids < self.nq
        if q.any():
            r = ids[q]
            out[q, :self.nq] = self.qq[r]
            out[q, self.nq:] = self.qg[r]
        if not q.all():
            g = ids[~q] - self.nq
            out[~q, :self.nq] = self.qg[:, g].T
            out[~q, self.nq:] = self.gg[g]
        return out

    def row_chunks(self, ids=None):
        """``(ids_chunk, rows)`` over ``ids`` (default: every row), a few million entries at a time."""
        ids = np.arange(self.n) if ids is None else np.asarray(ids, dtype=np.int64)
        step = max(1, _BLOCK_ENTRIES // self.n)
        for lo in range(0, ids.size, step):
            chunk = ids[lo:lo + step]
            yield chunk, self.rows_of(chunk)

    # --- the neighbour source -------------------------------------------------------------

    def ranked(self, k: int, *, rows=None, cols=None, k_read: int = 1):
        """``(−float32(D²), indices)`` of the ``k`` nearest of ``cols`` to each of ``rows`` (:func:`select`)."""
        d2, idx = select(self, k, rows=rows, cols=cols)
        return np.negative(d2, out=d2), idx

    def ranked_groups(self, codes, n_groups: int, k: int, *, k_read: int = 1) -> list:
        """For each group ``g``: :meth:`ranked` over the columns of group ``g``, for every row."""
        return [self.ranked(k, cols=np.flatnonzero(codes == g)) for g in range(n_groups)]

    def softmax_weights(self, indptr, indices, rank=None, scores=None):
        """``V[i, j] = softmax_{j in E_i}(−float32(D[i, j]²) / scale[i])`` over each CSR row (entries looked up)."""
        scale = np.ones(self.n, np.float32) if self.scale is None else self.scale
        return _set_weights(self.qq, self.qg, self.gg, self.nq, scale, indptr, indices)


def squared32(M) -> np.ndarray:
    """``float32(M²)`` (for float32 input the float32 product, correctly rounded; float64 squared then cast)."""
    return np.square(M).astype(np.float32, copy=False)


def _smallest(vals, k):
    """Column indices of the ``k`` smallest entries of each row, ordered by (value, column)."""
    m = vals.shape[1]
    if k < m:
        part = np.argpartition(vals, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(m), vals.shape).copy()
    part.sort(axis=1)
    order = np.argsort(np.take_along_axis(vals, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def select(blocks: DistanceBlocks, k: int, *, rows=None, cols=None):
    """The ``k`` nearest columns (of ``cols``, default all) of each row (of ``rows``, default all).

    Returns
    -------
    d2 : ndarray of float32, shape (len(rows), k)
        ``float32(D²)`` of the selected entries, ascending.
    idx : ndarray of int64, shape (len(rows), k)
        Their column indices into ``D``.
    """
    n_rows = blocks.n if rows is None else len(rows)
    d2 = np.empty((n_rows, k), dtype=np.float32)
    idx = np.empty((n_rows, k), dtype=np.int64)
    pos = 0
    for chunk, M in blocks.row_chunks(rows):
        if cols is not None:
            M = M[:, cols]
        sq = squared32(M)
        local = _smallest(sq, k)
        d2[pos:pos + len(chunk)] = np.take_along_axis(sq, local, axis=1)
        idx[pos:pos + len(chunk)] = local if cols is None else np.asarray(cols)[local]
        pos += len(chunk)
    return d2, idx


# --- compiled kernels -----------------------------------------------------------------------

@njit(inline="always", cache=True)
def _lookup(qq, qg, gg, nq, i, j):
    if i < nq:
        if j < nq:
            return np.float64(qq[i, j])
        return np.float64(qg[i, j - nq])
    g = i - nq
    if j < nq:
        return np.float64(qg[j, g])
    return np.float64(gg[g, j - nq])


@njit(**_PARALLEL)
def _set_weights(qq, qg, gg, nq, scale, indptr, indices):
    """``V[i, j] = softmax_{j in E_i}(-float32(D[i, j]²) / scale[i])`` over each CSR row."""
    n = indptr.shape[0] - 1
    data = np.empty(indices.shape[0], dtype=np.float32)
    for i in nb.prange(n):
        lo, hi = indptr[i], indptr[i + 1]
        if hi == lo:
            continue
        a = np.empty(hi - lo, dtype=np.float64)
        low = np.inf
        for p in range(lo, hi):
            d = _lookup(qq, qg, gg, nq, i, indices[p])
            v = np.float64(np.float32(np.float32(d * d) / scale[i]))
            a[p - lo] = v
            if v < low:
                low = v
        total = 0.0
        for p in range(hi - lo):
            e = np.exp(low - a[p])
            a[p] = e
            total += e
        for p in range(hi - lo):
            data[lo + p] = np.float32(a[p] / total)
    return data


@njit(**_PARALLEL)
def _gather_similarities(qq, qg, gg, nq, rank):
    """``1 − D[i, rank[i, j]]² / 2``: the inner product of unit rows from their Euclidean distance."""
    n, k = rank.shape
    out = np.empty((n, k), dtype=np.float32)
    for i in nb.prange(n):
        for j in range(k):
            d = _lookup(qq, qg, gg, nq, i, rank[i, j])
            out[i, j] = np.float32(1.0 - d * d / 2.0)
    return out


def gnn_lists(blocks: DistanceBlocks, request):
    """The neighbour lists of ``request``'s rule on the blocks and their similarities ``1 − d²/2``.

    For :func:`xmrank.rerank` with ``algorithm="gnn"`` on distances; ``request`` is a checked
    :class:`xmrank.jaccard.plan.PlanRequest`. The lists are the plan's (:func:`xmrank.jaccard.plan.build_plan`).
    """
    rank = np.ascontiguousarray(build_plan(blocks, request).rank)
    return _gather_similarities(blocks.qq, blocks.qg, blocks.gg, blocks.nq, rank), rank


# --- Zhong et al. (torchreid) ---------------------------------------------------------------

def zhong_rerank(blocks: DistanceBlocks, k1: int, k2: int, lambda_value: float) -> np.ndarray:
    """torchreid's ``re_ranking`` on the blocks; see :func:`xmrank.compat.re_ranking`.

    ``blocks`` must already be the matrix whose *rows* torchreid uses: it
    divides each column of the assembled matrix by its maximum and transposes,
    so the caller passes :meth:`DistanceBlocks.transposed`.
    """
    n, nq = blocks.n, blocks.nq
    _check_output_fits(nq, blocks.ng)
    width = max(k1 + 1, k2)
    rank = np.empty((n, width), dtype=np.int64)
    scale = np.empty(n, dtype=np.float32)
    out = np.empty((nq, blocks.ng), dtype=np.float32)
    lam = np.float32(lambda_value)
    pos = 0
    for chunk, M in blocks.row_chunks():
        sq = squared32(M)
        top = sq.max(axis=1)
        if not (top > 0).all():
            r = int(chunk[np.argmin(top > 0)])
            raise InputError(f"every distance in row {r} of the assembled (query + gallery) matrix is 0; "
                             "re-ranking divides each row by its largest distance.")
        A = sq / top[:, None]
        rank[pos:pos + len(chunk)] = _smallest(A, width)
        scale[pos:pos + len(chunk)] = top
        q = chunk < nq
        if q.any():  # the output starts as λ · original + (1 − λ) · 1 (the Jaccard part added below)
            out[chunk[q]] = A[q, nq:] * lam + (np.float32(1.0) - lam)
        pos += len(chunk)
    if lambda_value == 1.0:
        return out
    plan = JaccardPlan(method="vanilla", rank=rank, sims=np.zeros(rank.shape, np.float32),
                       reciprocal=kernels.reciprocal_mask(rank, k1),
                       half_reciprocal=kernels.reciprocal_mask(rank, int(np.around(k1 / 2.0))),
                       expansion=qe.mean_of_lists(n, [rank[:, :k2]]) if k2 > 1 else None)
    return run_stages(blocks.with_scale(scale), plan, QueryGalleryExecutor(out, 1.0 - lambda_value,
                                                                           nb.get_num_threads()))


# --- xmrank's neighbour rules on distances ---------------------------------------------------

def rules_rerank(blocks: DistanceBlocks, request, *, lambda_value, normalize, n_threads: int = 1) -> np.ndarray:
    """``(1 − λ) · Jaccard + λ · original`` on the query x gallery block, neighbour rules of ``request.method``.

    The plan is :func:`xmrank.jaccard.plan.build_plan` on the blocks (the
    planners of every method), the rest :func:`xmrank.jaccard.stages.run_stages`
    with the query x gallery min-sum only.

    Parameters
    ----------
    blocks : DistanceBlocks
    request : PlanRequest
        Checked (see :func:`xmrank.rerank`); ``method`` is resolved (no "auto").
    lambda_value : float
    normalize : {"gallery", "union"}
    n_threads : int, default=1
        Parallel chunks of the kernels (numba's thread count is set by the caller).
    """
    _check_output_fits(blocks.nq, blocks.ng)
    out = original_from_blocks(blocks, normalize=normalize, scale=lambda_value, shift=1.0 - lambda_value)
    if lambda_value == 1.0:
        return out
    plan = build_plan(blocks, request)
    return run_stages(blocks, plan, QueryGalleryExecutor(out, 1.0 - lambda_value, n_threads))


def _check_output_fits(nq: int, ng: int) -> None:
    """Refuse, before allocating, a dense re-ranked result that would not fit in memory (as from features)."""
    from .._memory import check_fits

    check_fits(4.0 * nq * ng, f"the dense {nq:,} x {ng:,} float32 re-ranked distance matrix",
               "re-rank fewer queries at a time (the result is one row per query)")


def original_from_blocks(blocks: DistanceBlocks, *, normalize="gallery", scale=1.0, shift=0.0) -> np.ndarray:
    """``scale · q_g² / max + shift``, the max over each query's gallery row (or its q_q row too: "union")."""
    nq, ng = blocks.nq, blocks.ng
    out = np.empty((nq, ng), dtype=np.float32)
    step = max(1, _BLOCK_ENTRIES // ng)
    for lo in range(0, nq, step):
        sq = squared32(blocks.qg[lo:lo + step])
        top = sq.max(axis=1)
        if normalize == "union":
            top = np.maximum(top, squared32(blocks.qq[lo:lo + step]).max(axis=1))
        f = np.where(top > 0, np.float32(scale) / np.where(top > 0, top, 1), 0).astype(np.float32)
        out[lo:lo + step] = sq * f[:, None] + np.float32(shift)
    return out
