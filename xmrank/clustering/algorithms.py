"""Density clustering of a precomputed (sparse) Jaccard distance: DBSCAN and HDBSCAN."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .._validation import InputError, check_int, check_option, check_real

logger = logging.getLogger("xmrank")

__all__ = ["cluster_distance", "ALGORITHMS"]

ALGORITHMS = ("dbscan", "hdbscan")


def _check_distance(distance):
    if sp.issparse(distance):
        D = distance.tocsr()
    else:
        D = np.asarray(distance)
        if D.dtype == object or not np.issubdtype(D.dtype, np.number):
            raise InputError(f"distance must be a numeric matrix; got dtype {D.dtype}.")
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise InputError(f"distance must be a square (n, n) matrix; got shape {'x'.join(map(str, D.shape))}.")
    data = D.data if sp.issparse(D) else D
    if not np.isfinite(data).all():
        raise InputError("distance contains NaN or infinite values.")
    if data.size and data.min() < 0:
        raise InputError(f"distance must be non-negative; its smallest entry is {data.min():.3g}.")
    return D


def _eps_graph(D: sp.csr_matrix, eps: float) -> sp.csr_matrix:
    """Keep stored entries <= eps, each row sorted by distance (what DBSCAN reads)."""
    from sklearn.neighbors import sort_graph_by_row_values

    keep = D.data <= eps
    running = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    indptr = running[D.indptr]
    # built from arrays, so explicit zeros (distance 0) stay stored
    G = sp.csr_matrix((D.data[keep], D.indices[keep], indptr), shape=D.shape)
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
        DBSCAN radius (ignored by HDBSCAN). The papers use 0.6 on SYSU-MM01
        and 0.3 on RegDB.
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
    check_option(algorithm, "algorithm", ALGORITHMS)
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    if algorithm == "dbscan":
        eps = check_real(eps, "eps", low=0.0, low_open=True)
        from sklearn.cluster import DBSCAN

        X = _eps_graph(D, eps) if sp.issparse(D) else D
        labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(X)
    else:
        try:
            import hdbscan
        except ImportError:
            raise InputError("algorithm='hdbscan' needs the hdbscan package: pip install 'xmrank[hdbscan]'.") from None
        mcs = min_samples if min_cluster_size is None else check_int(min_cluster_size, "min_cluster_size", minimum=2)
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
