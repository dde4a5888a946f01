"""Data-driven choice of DBSCAN's ``eps`` on a Jaccard distance matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_int

__all__ = ["kth_neighbor_distance", "auto_eps"]


def kth_neighbor_distance(distance, k: int) -> np.ndarray:
    """Each row's ``k``-th smallest distance, the row itself included.

    With a sparse matrix, unstored entries count as distance 1 (the Jaccard
    distance of pairs that share no neighbour).
    """
    k = check_int(k, "k", minimum=1)
    if sp.issparse(distance):
        from sklearn.neighbors import sort_graph_by_row_values

        D = sort_graph_by_row_values(distance.tocsr(copy=True), copy=False, warn_when_not_sorted=False)
        counts = np.diff(D.indptr)
        out = np.ones(D.shape[0], dtype=np.float64)
        ok = counts >= k
        out[ok] = D.data[D.indptr[:-1][ok] + k - 1]
        return out
    D = np.asarray(distance, dtype=np.float64)
    return np.partition(D, k - 1, axis=1)[:, k - 1]


def auto_eps(distance, *, min_samples: int = 4) -> float:
    """Pick ``eps`` at the knee of the sorted ``min_samples``-th neighbour distances.

    The classic DBSCAN heuristic (Ester et al., 1996) made automatic: the
    k-distances (k = ``min_samples``) are sorted, both axes scaled to [0, 1],
    and eps is the k-distance where the curve lies furthest below the chord
    from its first to its last point (the "Kneedle" knee). Rows whose
    k-distance is 1 (too few neighbours to ever be core points) are left out.

    Parameters
    ----------
    distance : sparse or dense (n, n) matrix
    min_samples : int, default=4

    Returns
    -------
    eps : float
        In (0, 1).
    """
    kd = np.sort(kth_neighbor_distance(distance, min_samples))
    kd = kd[kd < 1.0]
    if kd.size < 3 or kd[-1] <= kd[0]:
        return float(np.clip(kd.max() if kd.size else 0.5, 1e-3, 0.999))
    x = np.linspace(0.0, 1.0, kd.size)
    y = (kd - kd[0]) / (kd[-1] - kd[0])
    knee = int(np.argmax(x - y))
    return float(np.clip(kd[knee], 1e-3, 0.999))
