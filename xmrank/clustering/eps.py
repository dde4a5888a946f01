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

class _Prepared:
    """A distance as CSR float64 with its diagonal stored (DBSCAN counts a row as its own neighbour),
    its off-diagonal part, and the symmetric similarity graph ``1 - D`` used for modularity."""

    def __init__(self, D):
        if sp.issparse(D):
            C = sp.coo_matrix(D)
            row, col, val = C.row, C.col, C.data.astype(np.float64)
        else:  # dense: entries >= 1 are as far as unstored pairs (every eps tried is < 1)
            A = np.asarray(D, dtype=np.float64)
            row, col = np.nonzero(A < 1.0)
            val = A[row, col]
        n = D.shape[0]
        off = row != col
        self.n = n
        # DBSCAN's graph: sklearn reads a sparse matrix's stored entries only, the diagonal included when stored
        self.graph = sp.csr_matrix((val, (row, col)), shape=(n, n))
        self.graph.sum_duplicates()
        self.offdiag = sp.csr_matrix((val[off], (row[off], col[off])), shape=(n, n))
        self.offdiag.sum_duplicates()
        # the silhouette's sums use (d - 1): a pair left out of a sum is at distance 1, as unstored pairs are
        self.minus_one = self.offdiag.copy()
        self.minus_one.data -= 1.0
        W = self.offdiag.copy()
        W.data = np.clip(1.0 - W.data, 0.0, None)
        W = ((W + W.T) * 0.5).tocsr()
        W.eliminate_zeros()
        self.W = W
        wc = W.tocoo()
        self._wrow, self._wcol, self._wval = wc.row, wc.col, wc.data
        self.degree = np.asarray(W.sum(axis=1)).ravel()
        self.total = float(self.degree.sum())
        coo = self.graph.tocoo()
        self._row, self._col, self._val = coo.row, coo.col, coo.data


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
    within = P._val <= eps
    r, c, v = P._row[within], P._col[within], P._val[within]
    core = np.bincount(r, minlength=n) >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels
    both = core[r] & core[c]
    G = sp.csr_matrix((np.ones(int(both.sum())), (r[both], c[both])), shape=(n, n))
    _, comp = connected_components(G, directed=False)
    core_rows = np.flatnonzero(core)
    _, labels[core_rows] = np.unique(comp[core_rows], return_inverse=True)
    border = ~core[r] & core[c]
    if border.any():
        br, bc, bv = r[border], c[border], v[border]
        order = np.lexsort((bv, br))
        br, bc = br[order], bc[order]
        first = np.ones(br.size, dtype=bool)
        first[1:] = br[1:] != br[:-1]
        labels[br[first]] = labels[bc[first]]
    return labels


def _indicator(labels, n):
    ok = labels >= 0
    k = int(labels.max()) + 1 if ok.any() else 0
    C = sp.csr_matrix((np.ones(int(ok.sum())), (np.flatnonzero(ok), labels[ok])), shape=(n, max(k, 1)))
    return C, k, ok


def _modularity(P: _Prepared, labels) -> float:
    """Newman's modularity of ``labels`` on the graph ``1 - D`` (noise rows are singletons)."""
    if P.total <= 0:
        return 0.0
    ok = labels >= 0
    lr, lc = labels[P._wrow], labels[P._wcol]
    inside = float(P._wval[(lr == lc) & (lr >= 0)].sum())
    cluster_degree = np.bincount(labels[ok], weights=P.degree[ok]) if ok.any() else np.zeros(0)
    expected = float((cluster_degree ** 2).sum() + (P.degree[~ok] ** 2).sum())
    return inside / P.total - expected / P.total ** 2


def _silhouette(P: _Prepared, labels) -> float:
    """Mean silhouette over all rows on the distance (unstored pairs at 1); noise rows and
    clusters of one row score 0, and so does a clustering with fewer than two clusters."""
    C, k, ok = _indicator(labels, P.n)
    if k < 2:
        return 0.0
    size = np.asarray(C.sum(axis=0)).ravel()
    T = (P.minus_one @ C).tocsr()  # sum over the stored pairs of (d - 1), per row and cluster (<= 0)
    rows = np.repeat(np.arange(P.n), np.diff(T.indptr))
    own = labels[rows] == T.indices
    # mean distance to cluster c: 1 + T[i, c] / |c| (own cluster: / (|c| - 1)); absent entries mean 1
    a = np.ones(P.n)
    own_size = np.maximum(size[T.indices[own]] - 1, 1)
    a[rows[own]] = 1.0 + T.data[own] / own_size
    b = np.ones(P.n)
    other = ~own
    if other.any():
        np.minimum.at(b, rows[other], 1.0 + T.data[other] / size[T.indices[other]])
    s = np.zeros(P.n)
    scored = ok.copy()
    scored[ok] &= size[labels[ok]] > 1
    top = np.maximum(a, b)
    fine = scored & (top > 0)
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
    return _eps_scores(_Prepared(_check_distance(distance)), min_samples, _check_grid(grid))


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


def auto_eps(distance, *, min_samples: int = 4, grid=None, return_scores: bool = False):
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

    Accuracy: the ARI at this eps against the identities, minus the best ARI
    of a 0.025-step sweep, is printed per data set by
    ``benchmarks/bench_eps.py`` (synthetic biased sets, the shipped CLIP
    image/caption pairs and a real two-view set built from scikit-learn's
    digits). Where a set has one clear clustering the gap is 0; on the real
    sets, whose best clustering sits just before clusters chain into one,
    auto lands at or one grid step below the best eps. The previous rule (a
    jump of the sorted k-distance curve) put every row of the real sets in
    one cluster.

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
    P = _Prepared(D)
    k = min(min_samples, P.n)
    can_be_core = int((np.bincount(P._row[P._val < 1.0], minlength=P.n) >= k).sum())
    if can_be_core < 4:
        warn_user(f"auto_eps: only {can_be_core} row(s) have {min_samples} neighbours closer than distance 1, too "
                  "few to read eps from; using eps=0.5.")
        return (0.5, None) if return_scores else 0.5
    scores = _eps_scores(P, min_samples, grid)
    score = np.where(np.isnan(scores["score"]), -np.inf, scores["score"])
    best = np.flatnonzero(score >= score.max() - 1e-9)
    i = int(best[len(best) // 2]) if _contiguous(best) else int(best[0])
    eps = float(scores["eps"][i])
    logger.info("auto_eps: eps=%.3f (modularity %.3f + silhouette %.3f; %d clusters, %.1f%% noise, largest "
                "cluster %.1f%% of rows)", eps, scores["modularity"][i], scores["silhouette"][i],
                scores["n_clusters"][i], 100 * scores["noise_share"][i], 100 * scores["largest_share"][i])
    return (eps, scores) if return_scores else eps


def _contiguous(idx) -> bool:
    return idx.size > 0 and int(idx[-1] - idx[0]) == idx.size - 1
