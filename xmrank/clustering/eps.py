"""Data-driven choice of DBSCAN's ``eps`` on a Jaccard distance matrix.

:func:`auto_eps` clusters the matrix at every eps of a grid (a fast DBSCAN
on the sparse matrix, :func:`_dbscan_labels`) and keeps the eps whose
clustering scores best on a label-free criterion, the sum of two standard
internal indices computed from the matrix alone:

- the **modularity** of the clustering on the similarity graph ``1 - D``
  (stored pairs): high when the pairs inside clusters are far stronger than
  chance. It is zero for one all-holding cluster and for all noise.
- the **silhouette** on the distance ``D`` (unstored pairs at distance 1):
  high when each row is closer to its own cluster than to the nearest other.
  It is zero for one cluster and for noise rows.

Modularity alone merges neighbouring clusters (its resolution limit), the
silhouette alone prefers a few tight clusters and much noise; their sum is
right on both synthetic and real sets (see ``benchmarks/bench_eps.py``).
Every step costs O(stored pairs): no dense matrix is formed.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .._validation import InputError, check_int, warn_user
from .algorithms import _check_distance

logger = logging.getLogger(__name__)

__all__ = ["kth_neighbor_distance", "auto_eps", "eps_scores", "EPS_GRID"]

#: The eps values :func:`auto_eps` tries: 0.05 to 0.95 in steps of 0.025.
EPS_GRID = np.round(np.arange(0.05, 0.95 + 1e-9, 0.025), 3)


def kth_neighbor_distance(distance, k: int) -> np.ndarray:
    """Each row's ``k``-th smallest distance, the row itself included.

    With a sparse matrix, unstored entries count as distance 1 (the Jaccard
    distance of pairs that share no neighbour).
    """
    k = check_int(k, "k", minimum=1)
    D = _check_distance(distance)
    if sp.issparse(D):
        from sklearn.neighbors import sort_graph_by_row_values

        out = np.ones(D.shape[0], dtype=np.float64)
        if D.nnz == 0:
            return out
        D = sort_graph_by_row_values(D.astype(np.float64, copy=True), copy=False, warn_when_not_sorted=False)
        counts = np.diff(D.indptr)
        ok = counts >= k
        out[ok] = D.data[D.indptr[:-1][ok] + k - 1]
        return out
    D = np.asarray(D, dtype=np.float64)
    if k > D.shape[1]:
        raise InputError(f"k={k} exceeds the {D.shape[1]} columns of distance.")
    return np.partition(D, k - 1, axis=1)[:, k - 1]


# --- the pieces of the criterion, all O(stored pairs) -----------------------------------------

#: Rows whose silhouette is computed: all up to this many, else a fixed random sample of this many
#: (the mean over a uniform sample estimates the mean over all rows; its standard error is below 0.01).
SILHOUETTE_ROWS = 10_000


class _Prepared:
    """What every eps tried reads, computed once from the distance matrix.

    - the stored entries sorted by distance (DBSCAN's graph at eps is a prefix;
      sklearn reads a sparse matrix's stored entries only, the diagonal
      included when stored, so a row is its own neighbour);
    - the upper triangle of the symmetric similarity graph ``1 - D`` and its
      degrees (modularity);
    - the off-diagonal part minus 1 of the rows whose silhouette is computed.
    """

    def __init__(self, D, grid=None, seed=0):
        if sp.issparse(D):
            D = D.tocsr()  # (check_distance gives CSR, whose tocsr() summed any duplicates)
            row = np.repeat(np.arange(D.shape[0]), np.diff(D.indptr))
            col, val = D.indices, D.data.astype(np.float64)
        else:  # dense: entries >= 1 are as far as unstored pairs (every eps tried is < 1)
            A = np.asarray(D, dtype=np.float64)
            row, col = np.nonzero(A < 1.0)
            val = A[row, col]
        n = D.shape[0]
        self.n = n
        index = np.int32 if n < 2**31 - 1 else np.int64
        # entries grouped by the first grid eps that reaches them (a counting sort, O(stored pairs)):
        # DBSCAN's graph at grid[i] is then a prefix
        self.grid = EPS_GRID if grid is None else np.asarray(grid, dtype=np.float64)
        bins = np.searchsorted(self.grid, val, side="left").astype(np.uint16 if self.grid.size < 65535 else np.int64)
        order = np.argsort(bins, kind="stable")
        self._ends = np.cumsum(np.bincount(bins, minlength=self.grid.size + 1))
        self._row, self._col, self._val = row[order].astype(index), col[order].astype(index), val[order]
        off = row != col
        offdiag = sp.csr_matrix((val[off], (row[off], col[off])), shape=(n, n))
        W = offdiag.copy()
        W.data = np.clip(1.0 - W.data, 0.0, None)
        W = ((W + W.T) * 0.5).tocsr()
        W.eliminate_zeros()
        self.degree = np.asarray(W.sum(axis=1)).ravel()
        self.total = float(self.degree.sum())
        upper = sp.triu(W, k=1).tocoo()
        self._wrow, self._wcol, self._wval = upper.row.astype(index), upper.col.astype(index), upper.data
        # silhouette: sums of (d - 1) over stored pairs (a pair left out is at distance 1, as unstored pairs are)
        self.sil_rows = (np.arange(n) if n <= SILHOUETTE_ROWS else
                         np.sort(np.random.default_rng(seed).choice(n, SILHOUETTE_ROWS, replace=False)))
        minus_one = offdiag[self.sil_rows] if n > SILHOUETTE_ROWS else offdiag
        minus_one.data -= 1.0
        self.minus_one = minus_one

    def within(self, eps):
        """The stored entries at distance <= eps: ``(rows, cols, distances)`` (views for a grid eps)."""
        hit = np.flatnonzero(self.grid == eps)
        if hit.size:
            m = int(self._ends[hit[0]])
            return self._row[:m], self._col[:m], self._val[:m]
        keep = self._val <= eps
        return self._row[keep], self._col[keep], self._val[keep]


def _dbscan_labels(P: _Prepared, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN's clusters on the stored pairs within ``eps``, vectorised.

    Core rows (at least ``min_samples`` stored entries <= eps, self included
    when stored) are grouped by connected components exactly as DBSCAN
    groups them; a border row joins the cluster of its nearest core
    neighbour (scikit-learn takes the first cluster that reaches it, so a
    border row between two clusters may differ). Used to score eps values;
    the final labels come from :func:`xmrank.cluster_distance`.
    """
    from scipy.sparse.csgraph import connected_components

    n = P.n
    r, c, v = P.within(eps)
    core = np.bincount(r, minlength=n) >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels
    both = core[r] & core[c]
    G = sp.csr_matrix((np.ones(int(both.sum()), dtype=np.int8), (r[both], c[both])), shape=(n, n))
    _, comp = connected_components(G, directed=False)
    core_rows = np.flatnonzero(core)
    _, labels[core_rows] = np.unique(comp[core_rows], return_inverse=True)
    border = ~core[r] & core[c]
    if border.any():
        # a border row joins the cluster of its nearest core neighbour (the first one among equals)
        br, bc, bv = r[border], c[border], v[border]
        nearest = np.full(n, np.inf)
        np.minimum.at(nearest, br, bv)
        pos = np.flatnonzero(bv == nearest[br])
        first = np.full(n, br.size, dtype=np.int64)
        np.minimum.at(first, br[pos], pos)
        rows = np.flatnonzero(first < br.size)
        labels[rows] = labels[bc[first[rows]]]
    return labels


def _modularity(P: _Prepared, labels) -> float:
    """Newman's modularity of ``labels`` on the graph ``1 - D`` (noise rows are singletons)."""
    if P.total <= 0:
        return 0.0
    ok = labels >= 0
    lab = labels.astype(np.int32) if labels.size < 2**31 else labels
    lr = lab[P._wrow]
    same = (lr == lab[P._wcol]) & (lr >= 0)
    inside = 2.0 * float(P._wval[same].sum())  # each undirected edge once in the upper triangle
    cluster_degree = np.bincount(labels[ok], weights=P.degree[ok]) if ok.any() else np.zeros(0)
    expected = float((cluster_degree ** 2).sum() + (P.degree[~ok] ** 2).sum())
    return inside / P.total - expected / P.total ** 2


def _silhouette(P: _Prepared, labels) -> float:
    """Mean silhouette on the distance (unstored pairs at 1) over all rows (or :data:`SILHOUETTE_ROWS`
    of them); noise rows and clusters of one row score 0, and so does a clustering with fewer than two
    clusters."""
    ok = labels >= 0
    k = int(labels.max()) + 1 if ok.any() else 0
    if k < 2:
        return 0.0
    C = sp.csr_matrix((np.ones(int(ok.sum())), (np.flatnonzero(ok), labels[ok])), shape=(P.n, k))
    size = np.bincount(labels[ok], minlength=k).astype(np.float64)
    T = (P.minus_one @ C).tocsr()  # sum over the stored pairs of (d - 1), per row and cluster (<= 0)
    m = T.shape[0]
    own_label = labels[P.sil_rows]
    rows = np.repeat(np.arange(m), np.diff(T.indptr))
    own = own_label[rows] == T.indices
    # mean distance to cluster c: 1 + T[i, c] / |c| (own cluster: / (|c| - 1)); absent entries mean 1
    a = np.ones(m)
    a[rows[own]] = 1.0 + T.data[own] / np.maximum(size[T.indices[own]] - 1, 1)
    b = np.ones(m)
    other = ~own
    if other.any():
        np.minimum.at(b, rows[other], 1.0 + T.data[other] / size[T.indices[other]])
    scored = own_label >= 0
    scored[scored] &= size[own_label[scored]] > 1
    top = np.maximum(a, b)
    fine = scored & (top > 0)
    s = np.zeros(m)
    s[fine] = (b[fine] - a[fine]) / top[fine]
    return float(s.mean())


def eps_scores(distance, *, min_samples: int = 4, grid=None) -> dict:
    """The label-free criterion of :func:`auto_eps` at each eps of ``grid``.

    Parameters
    ----------
    distance : sparse or dense (n, n) Jaccard distance matrix
    min_samples : int, default=4
    grid : array-like of float in (0, 1), default=None
        The eps values tried, increasing; None uses :data:`EPS_GRID` (0.05 to 0.95, step 0.025).

    Returns
    -------
    scores : dict of ndarrays, one value per eps
        ``eps``, ``score`` (modularity + silhouette), ``modularity``,
        ``silhouette``, ``n_clusters``, ``noise_share`` and
        ``largest_share`` (rows of the largest cluster over all rows). Once
        one cluster holds 95% of the rows, larger eps values (which can only
        merge more) are not evaluated: their entries are NaN (-1 for
        ``n_clusters``).
    """
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    grid = _check_grid(grid)
    return _eps_scores(_Prepared(_check_distance(distance), grid), min_samples, grid)


def _check_grid(grid):
    if grid is None:
        return EPS_GRID
    try:
        grid = np.asarray(grid, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError("grid must be a list of eps values in (0, 1).") from None
    if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0) & (grid < 1)):
        raise InputError("grid must hold eps values in (0, 1).")
    return np.unique(grid)


def _eps_scores(P, min_samples, grid):
    out = {key: np.full(grid.size, np.nan) for key in ("score", "modularity", "silhouette", "noise_share",
                                                        "largest_share")}
    out["eps"] = grid.copy()
    out["n_clusters"] = np.full(grid.size, -1, dtype=np.int64)
    previous = None
    for i, eps in enumerate(grid):
        labels = _dbscan_labels(P, float(eps), min_samples)
        if previous is not None and np.array_equal(labels, previous):
            for key in ("modularity", "silhouette", "noise_share", "largest_share", "n_clusters"):
                out[key][i] = out[key][i - 1]
        else:
            ok = labels >= 0
            out["modularity"][i] = _modularity(P, labels)
            out["silhouette"][i] = _silhouette(P, labels)
            out["noise_share"][i] = 1.0 - ok.mean()
            out["largest_share"][i] = np.bincount(labels[ok]).max() / P.n if ok.any() else 0.0
            out["n_clusters"][i] = int(labels.max()) + 1 if ok.any() else 0
        previous = labels
        if out["largest_share"][i] >= 0.95:  # one cluster holds nearly everything: larger eps only merge more
            break
    out["score"] = out["modularity"] + out["silhouette"]
    return out


def auto_eps(distance, *, min_samples: int = 4, grid=None, return_scores: bool = False,
             giant_share: float | None = None, noise_share: float | None = None):
    """Pick DBSCAN's ``eps`` by maximising a label-free clustering quality.

    At each eps of ``grid`` the matrix is clustered (DBSCAN's core-point
    components) and scored by the **modularity** of the clustering on the
    similarity graph ``1 - D`` plus its **silhouette** on ``D`` (noise rows
    as singletons); the best-scoring eps is returned (the middle one when
    a run of neighbouring eps values ties, as on a plateau where the
    clustering does not change). Both indices are zero for one cluster
    holding every row and for all noise, so the choice stays away from both
    degenerate ends. It reads only the stored pairs: O(stored pairs) per eps
    tried.

    Accuracy, as the best ARI of a 0.025-step sweep minus the ARI at this
    eps (``benchmarks/bench_eps.py``, which prints it per data set):

    - real sets (the shipped CLIP image/caption pairs with the default
      settings and with settings for pairs; a two-view set of scikit-learn's
      digits, 10 classes, 2,000 rows, vanilla and modality-aware): 0.03 on
      average, 0.14 at most (the modality-aware distance on the digits, whose
      best clustering sits one step before clusters chain into one);
    - synthetic biased sets (gaps 0.5-1.5, vanilla and modality-aware): 0.03
      on average, 0.07 at most.

    The previous rule (a jump of the sorted k-distance curve) put all 1,000
    CLIP rows in one cluster and scored ARI 0.00 and 0.01 on the digits.

    Parameters
    ----------
    distance : sparse or dense (n, n) matrix
        A Jaccard distance (values in [0, 1]); for a sparse matrix unstored
        pairs are at distance 1.
    min_samples : int, default=4
        DBSCAN's core-point size, the one the clustering will use.
    grid : array-like of float in (0, 1), default=None
        The eps values tried; None: 0.05 to 0.95 in steps of 0.025.
    return_scores : bool, default=False
        Also return the scores of every eps tried (see :func:`eps_scores`).
    giant_share, noise_share : float, default=None
        Degenerate-clustering limits: an eps whose clustering puts more than
        ``giant_share`` of the rows in one cluster, or at least
        ``noise_share`` of them in noise, is chosen only when every eps is
        (then the choice is the unconstrained one). :func:`xmrank.cluster`
        passes the limits of its degenerate-clustering warning (0.5, 0.9),
        so that ``eps="auto"`` never picks a clustering the same call warns
        about while another eps gives one it would not. None: no limit.

    Returns
    -------
    eps : float
        In (0, 1). With fewer than four rows that can be core points it
        returns 0.5 and says so in a ``UserWarning``.
    scores : dict or None
        Only with ``return_scores=True`` (None with the 0.5 fallback).

    Raises
    ------
    xmrank.InputError
        For a malformed matrix, or a sparse one that stores no pair at all.
    """
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    D = _check_distance(distance)
    grid = _check_grid(grid)
    if sp.issparse(D) and D.nnz == 0:
        raise InputError("distance stores no pair (every distance is 1): auto_eps has nothing to choose eps from.")
    P = _Prepared(D, grid)
    k = min(min_samples, P.n)
    can_be_core = int((np.bincount(P._row[P._val < 1.0], minlength=P.n) >= k).sum())
    if can_be_core < 4:
        warn_user(f"auto_eps: only {can_be_core} row(s) have {min_samples} neighbours closer than distance 1, too "
                  "few to read eps from; using eps=0.5.")
        return (0.5, None) if return_scores else 0.5
    scores = _eps_scores(P, min_samples, grid)
    score = np.where(np.isnan(scores["score"]), -np.inf, scores["score"])
    allowed = np.isfinite(score)
    if giant_share is not None:
        allowed &= np.nan_to_num(scores["largest_share"], nan=1.0) <= giant_share
    if noise_share is not None:
        allowed &= np.nan_to_num(scores["noise_share"], nan=1.0) < noise_share
    if allowed.any() and not allowed[np.isfinite(score)].all():
        logger.info("auto_eps: %d eps value(s) give a degenerate clustering (largest cluster > %s or noise >= %s of "
                    "the rows) and are left out", int((np.isfinite(score) & ~allowed).sum()), giant_share, noise_share)
        score = np.where(allowed, score, -np.inf)
    best = np.flatnonzero(score >= score.max() - 1e-9)
    i = int(best[len(best) // 2]) if _contiguous(best) else int(best[0])
    eps = float(scores["eps"][i])
    logger.info("auto_eps: eps=%.3f (modularity %.3f + silhouette %.3f; %d clusters, %.1f%% noise, largest "
                "cluster %.1f%% of rows)", eps, scores["modularity"][i], scores["silhouette"][i],
                scores["n_clusters"][i], 100 * scores["noise_share"][i], 100 * scores["largest_share"][i])
    return (eps, scores) if return_scores else eps


def _contiguous(idx) -> bool:
    return idx.size > 0 and int(idx[-1] - idx[0]) == idx.size - 1
