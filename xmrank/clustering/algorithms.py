"""Density clustering of a precomputed (sparse) Jaccard distance: DBSCAN and HDBSCAN."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .._params import ALGORITHMS, PARAMS, parse_eps
from .._validation import InputError, check_distance, check_int

logger = logging.getLogger(__name__)

__all__ = ["cluster_distance", "ALGORITHMS"]


_check_distance = check_distance


def _all_within(D, eps: float, min_samples: int):
    """DBSCAN at ``eps >= 1`` on a sparse Jaccard matrix: every pair is a neighbour.

    Unstored pairs are at distance 1 and stored ones at most 1, so each row
    has all ``n`` rows (itself included) within ``eps``: one cluster when
    ``n >= min_samples``, else all noise, exactly as DBSCAN on the dense matrix.
    """
    if D.nnz and float(D.data.max()) > 1.0:
        raise InputError(
            f"eps={eps:g} >= 1 reads every unstored pair of a sparse distance as a neighbour (distance 1), "
            f"which needs stored distances <= 1; the largest is {float(D.data.max()):.3g}: pass a dense matrix."
        )
    n = D.shape[0]
    return np.zeros(n, dtype=np.int64) if n >= min_samples else np.full(n, -1, dtype=np.int64)


def _eps_graph(D: sp.csr_matrix, eps: float) -> sp.csr_matrix:
    """Keep stored entries <= eps, each row sorted by distance (what DBSCAN reads)."""
    from sklearn.neighbors import sort_graph_by_row_values

    keep = D.data <= eps
    running = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    indptr = running[D.indptr]
    # built from arrays, so explicit zeros (distance 0) stay stored
    G = sp.csr_matrix((D.data[keep], D.indices[keep], indptr), shape=D.shape)
    if G.nnz == 0:  # scikit-learn's sorting check fails on an empty graph
        return G
    return sort_graph_by_row_values(G, copy=False, warn_when_not_sorted=False)


def cluster_distance(distance, *, eps: float = 0.6, min_samples: int = 4, algorithm: str = "dbscan", min_cluster_size: int | None = None):
    """Cluster a precomputed distance matrix.

    Parameters
    ----------
    distance : scipy.sparse matrix or ndarray, shape (n, n)
        Sparse: only stored entries are neighbours (every unstored pair is
        "far"), as :func:`xmrank.jaccard_distance` returns it. Dense: every
        entry is a distance.
    eps : float, default=0.6
        DBSCAN radius (ignored by HDBSCAN), > 0; pairs at distance <= eps
        are neighbours. The papers use 0.6 on SYSU-MM01 and 0.3 on RegDB.
        Jaccard distances are at most 1, so ``eps >= 1`` makes every pair a
        neighbour, as scikit-learn's DBSCAN does on the dense matrix: one
        cluster (all noise when there are fewer than ``min_samples`` rows).
        A sparse matrix's unstored pairs count as distance 1 there.
    min_samples : int, default=4
        Neighbours (self included) that make a core point.
    algorithm : {"dbscan", "hdbscan"}, default="dbscan"
        ``"dbscan"``: scikit-learn's DBSCAN on the precomputed matrix.
        ``"hdbscan"``: the ``hdbscan`` package (``pip install 'xmrank[hdbscan]'``);
        it accepts the sparse matrix as is, whereas scikit-learn's HDBSCAN
        needs memory quadratic in n for sparse precomputed input.
    min_cluster_size : int, default=None
        HDBSCAN's smallest cluster; None uses ``min_samples``.

    Returns
    -------
    labels : ndarray of int64, shape (n,)
        Cluster index per row, -1 for noise.
    """
    D = _check_distance(distance)
    algorithm = PARAMS["algorithm"](algorithm)
    min_samples = PARAMS["min_samples"](min_samples)
    if algorithm == "dbscan":
        eps = parse_eps(eps)
        if eps == "auto":
            raise InputError("eps='auto' is chosen by xmrank.cluster (or xmrank.clustering.auto_eps); "
                             "cluster_distance needs a number > 0.")
    elif min_cluster_size is not None:
        min_cluster_size = check_int(min_cluster_size, "min_cluster_size", minimum=2)
    return density_labels(D, eps=eps, min_samples=min_samples, algorithm=algorithm,
                          min_cluster_size=min_cluster_size)


def density_labels(D, *, eps, min_samples, algorithm, min_cluster_size=None):
    """:func:`cluster_distance` on arguments already checked (``D`` CSR or a float ndarray)."""
    if algorithm == "dbscan":
        from sklearn.cluster import DBSCAN

        if sp.issparse(D) and eps >= 1.0:
            return _all_within(D, eps, min_samples)
        X = _eps_graph(D, eps) if sp.issparse(D) else D
        if sp.issparse(X) and X.nnz == 0:  # no row has a neighbour, not even itself: all noise, as DBSCAN reads it
            return np.full(D.shape[0], -1, dtype=np.int64)
        labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(X)
    else:
        try:
            import hdbscan
        except ImportError:
            raise InputError("algorithm='hdbscan' needs the hdbscan package: pip install 'xmrank[hdbscan]'.") from None
        mcs = min_samples if min_cluster_size is None else min_cluster_size
        if D.shape[0] < 2:  # a single row is no cluster
            return np.full(D.shape[0], -1, dtype=np.int64)
        labels = _hdbscan(hdbscan, D, min_samples=min_samples, min_cluster_size=max(mcs, 2))
    return np.asarray(labels, dtype=np.int64)


def _hdbscan(hdbscan, D, *, min_samples, min_cluster_size):
    """Run the hdbscan package on a dense or sparse precomputed distance.

    A sparse Jaccard matrix is clustered one connected component at a time
    (hdbscan refuses disconnected sparse graphs; components are joined only
    at distance 1, the top of the hierarchy, so they cannot share a cluster).
    Components smaller than ``min_cluster_size`` are noise. hdbscan reads
    stored zeros as missing, so they are nudged to 1e-12, and missing pairs
    inside a component are at ``max_dist=1.0``, as in the matrix.
    """
    if not sp.issparse(D):
        model = hdbscan.HDBSCAN(metric="precomputed", min_samples=min_samples, min_cluster_size=min_cluster_size)
        return np.asarray(model.fit_predict(np.asarray(D, dtype=np.float64)), dtype=np.int64)
    from scipy.sparse.csgraph import connected_components

    G = D.astype(np.float64).tocsr(copy=True)
    np.maximum(G.data, 1e-12, out=G.data)
    n_comp, comp = connected_components(G, directed=False)
    labels = np.full(G.shape[0], -1, dtype=np.int64)
    offset = 0
    for c in np.flatnonzero(np.bincount(comp, minlength=n_comp) >= max(min_cluster_size, min_samples + 1)):
        rows = np.flatnonzero(comp == c)
        model = hdbscan.HDBSCAN(metric="precomputed", min_samples=min_samples, min_cluster_size=min_cluster_size,
                                max_dist=1.0)
        part = np.asarray(model.fit_predict(G[rows][:, rows]), dtype=np.int64)
        keep = part >= 0
        labels[rows[keep]] = part[keep] + offset
        offset += int(part.max()) + 1 if keep.any() else 0
    return labels
