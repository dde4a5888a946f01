"""Data-driven choice of DBSCAN's ``eps`` on a Jaccard distance matrix."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import InputError, check_int, warn_user
from .algorithms import _check_distance

__all__ = ["kth_neighbor_distance", "auto_eps"]


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


def auto_eps(distance, *, min_samples: int = 4) -> float:
    """Pick ``eps`` from the sorted ``min_samples``-th neighbour distances.

    Within a cluster, each row's k-th neighbour (k = ``min_samples``) is
    close; at a cluster's edge it jumps to the next cluster. The sorted
    k-distances therefore rise slowly, then jump. eps is the value after the
    largest jump in the upper half of the curve, but never below the curve's
    95th percentile (so at least 95% of the rows that can be core points
    are). Rows whose k-distance is 1 (too few neighbours ever to be core
    points) are left out.

    On xmrank's synthetic sweeps (modality gaps 0.5-1.5, 4-16 rows per
    identity and modality, vanilla and modality-aware) and the golden sets,
    the ARI at this eps is on average 0.06 below the best ARI of a 0.025-step
    eps sweep (see ``benchmarks/bench_eps.py``); the classic knee of the
    curve loses 0.34, a plain 95th percentile 0.12.

    Parameters
    ----------
    distance : sparse or dense (n, n) matrix
    min_samples : int, default=4

    Returns
    -------
    eps : float
        In (0, 1). With fewer than four rows that can be core points it
        returns 0.5 and says so in a ``UserWarning``.

    Raises
    ------
    xmrank.InputError
        For a malformed matrix, or a sparse one that stores no pair at all.
    """
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    D = _check_distance(distance)
    if sp.issparse(D) and D.nnz == 0:
        raise InputError("distance stores no pair (every distance is 1): auto_eps has nothing to choose eps from.")
    kd = np.sort(kth_neighbor_distance(D, min(min_samples, D.shape[0])))
    kd = kd[kd < 1.0]
    if kd.size < 4:
        warn_user(f"auto_eps: only {kd.size} row(s) have {min_samples} neighbours closer than distance 1, too few "
                  "to read eps from; using eps=0.5.")
        return 0.5
    floor = float(np.quantile(kd, 0.95))
    upper = kd[kd >= np.quantile(kd, 0.5)]
    eps = floor
    if upper.size > 1:
        jump = upper[int(np.argmax(np.diff(upper))) + 1]
        if floor < jump < 0.9:
            eps = float(jump)
    return float(np.clip(eps, 1e-3, 0.999))
