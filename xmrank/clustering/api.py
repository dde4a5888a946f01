"""Clustering pipelines of the paper: global, per-modality and subset clustering."""

from __future__ import annotations

import logging

import numpy as np

from .._validation import InputError, check_features, check_int, check_labels, check_option, check_real, check_seed, plain
from ..jaccard import jaccard_distance
from .algorithms import ALGORITHMS, cluster_distance
from .eps import auto_eps

logger = logging.getLogger("xmrank")

__all__ = ["cluster", "cluster_per_modality", "subset_split", "subset_cluster"]


def _check_eps(eps):
    """``"auto"`` or a number > 0 (``eps >= 1``: every pair is a neighbour, see :func:`cluster_distance`)."""
    if isinstance(eps, str):
        if eps != "auto":
            raise InputError(f"eps must be a positive number or 'auto'; got {plain(eps)}.")
        return eps
    return check_real(eps, "eps", low=0.0, low_open=True)


def _resolve_eps(eps, D, min_samples):
    if eps == "auto":
        value = auto_eps(D, min_samples=min_samples)
        logger.info("eps='auto' chose eps=%.3f", value)
        return value
    return eps


def cluster(
    features,
    *,
    modalities=None,
    cameras=None,
    method: str = "auto",
    eps=0.6,
    min_samples: int = 4,
    algorithm: str = "dbscan",
    k1: int = 30,
    k2: int = 6,
    k1_intra: int = 5,
    k1_inter: int = 20,
    k2_intra: int = 2,
    k2_inter: int = 4,
    knn: str = "auto",
    device: str = "cpu",
    n_jobs: int | None = None,
    progress: bool | None = None,
    return_distance: bool = False,
):
    """Jaccard distance, then density clustering: the papers' global clustering.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    modalities, cameras : array-like of shape (n_samples,), default=None
        Per-row labels, see :func:`xmrank.jaccard_distance`.
    method : str, default="auto"
        Jaccard method, see :func:`xmrank.jaccard_distance`.
    eps : float or "auto", default=0.6
        DBSCAN radius, > 0; "auto" picks it from the data
        (:func:`xmrank.clustering.auto_eps`). Jaccard distances are at most
        1, so ``eps >= 1`` makes every pair a neighbour, as scikit-learn's
        DBSCAN does on the dense matrix: one cluster (all noise with fewer
        than ``min_samples`` rows).
    min_samples : int, default=4
    algorithm : {"dbscan", "hdbscan"}, default="dbscan"
    k1, k2, k1_intra, k1_inter, k2_intra, k2_inter, knn, device, n_jobs, progress
        Passed to :func:`xmrank.jaccard_distance`; ``knn="ann"`` (approximate
        search) is the engine for hundreds of thousands of rows and more,
        ``device="cuda"`` runs the distance on the GPU.
    return_distance : bool, default=False
        Also return the sparse distance matrix. With DBSCAN and a numeric
        eps it stores only the pairs within eps (all DBSCAN reads).

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        -1 marks noise.
    distance : scipy.sparse.csr_matrix
        Only with ``return_distance=True``.
    """
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    algorithm = check_option(algorithm, "algorithm", ALGORITHMS)
    eps = _check_eps(eps)
    # DBSCAN at a fixed eps reads only pairs <= eps: store just those (same labels, far less memory)
    cut = None
    if algorithm == "dbscan" and eps != "auto":
        cut = eps
    D = jaccard_distance(
        features, modalities=modalities, cameras=cameras, method=method, k1=k1, k2=k2,
        k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
        max_distance=cut, knn=knn, device=device, n_jobs=n_jobs, progress=progress,
    )
    eps_value = _resolve_eps(eps, D, min_samples) if algorithm == "dbscan" else 0.6
    labels = cluster_distance(D, eps=eps_value, min_samples=min_samples, algorithm=algorithm)
    return (labels, D) if return_distance else labels


def cluster_per_modality(features, modalities, *, eps=0.6, min_samples: int = 4, algorithm: str = "dbscan",
                         k1: int = 30, k2: int = 6, knn: str = "auto", device: str = "cpu", n_jobs=None,
                         progress=None):
    """Cluster each modality on its own with vanilla Jaccard (the paper's stage 1).

    Parameters are those of :func:`cluster`.

    Labels are made unique across modalities: the clusters of the first
    modality (in sorted label order) come first, then the next modality's.

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        -1 marks noise.
    """
    X = check_features(features)
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, X.shape[0], "modalities")
    return _per_modality(X, codes, classes, eps=eps, min_samples=min_samples, algorithm=algorithm, k1=k1, k2=k2,
                         knn=knn, device=device, n_jobs=n_jobs, progress=progress)


def _per_modality(X, codes, classes, *, eps, min_samples, algorithm, k1, k2, knn, device, n_jobs, progress):
    k1 = check_int(k1, "k1", minimum=1)
    min_samples = check_int(min_samples, "min_samples", minimum=1)
    algorithm = check_option(algorithm, "algorithm", ALGORITHMS)
    eps = _check_eps(eps)
    labels = np.full(X.shape[0], -1, dtype=np.int64)
    offset = 0
    for g in range(classes.size):
        rows = np.flatnonzero(codes == g)
        if rows.size <= k1:
            raise InputError(
                f"k1={k1} must be smaller than the number of rows of modality {plain(classes[g])} ({rows.size})."
            )
        sub = cluster(X[rows], method="vanilla", eps=eps, min_samples=min_samples, algorithm=algorithm,
                      k1=k1, k2=k2, knn=knn, device=device, n_jobs=n_jobs, progress=progress)
        keep = sub >= 0
        labels[rows[keep]] = sub[keep] + offset
        offset += int(sub.max()) + 1 if keep.any() else 0
    return labels


def subset_split(n_rows: int, *, ratio: float = 0.5, seed=None):
    """Randomly partition ``range(n_rows)`` into ``round(1/ratio)`` subsets (BMIL's subset clustering).

    Parameters
    ----------
    n_rows : int
    ratio : float, default=0.5
        Share of rows in each subset; 0.5 gives two halves.
    seed : int or numpy Generator, default=None
        A non-negative integer of at most 64 bits, a Generator, or None.

    Returns
    -------
    subsets : list of ndarray of int64
        Sorted indices; together a partition of ``range(n_rows)``.
    """
    n_rows = check_int(n_rows, "n_rows", minimum=1)
    ratio = check_real(ratio, "ratio", low=0.0, high=1.0, low_open=True)
    parts = max(1, int(round(1.0 / ratio)))
    rng = np.random.default_rng(check_seed(seed))
    try:
        perm = rng.permutation(n_rows)
    except (ValueError, MemoryError):
        raise InputError(f"n_rows={n_rows} is too large to split in memory.") from None
    return [np.sort(p) for p in np.array_split(perm, parts)]


def subset_cluster(features, modalities, *, subset_modality=None, ratio: float = 0.5, seed=None, eps=0.6,
                   min_samples: int = 4, algorithm: str = "dbscan", k1: int = 30, k2: int = 6, knn: str = "auto",
                   device: str = "cpu", n_jobs=None, progress=None):
    """Per-modality clustering where one modality is clustered on a random subset only.

    The rows of ``subset_modality`` (default: the largest modality) are split
    with :func:`subset_split`; only subset 0 is clustered, the rest get -1.
    The other modalities are clustered whole. This is BMIL's stage-1 remedy
    for over-clustering the larger modality.

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
    subsets : list of ndarray of int64
        Row indices (into ``features``) of each subset of ``subset_modality``;
        the paper clusters ``subsets[1]`` plus every other modality's rows
        globally in stage 2.
    """
    X = check_features(features)
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, X.shape[0], "modalities")
    ratio = check_real(ratio, "ratio", low=0.0, high=1.0, low_open=True)
    seed = check_seed(seed)
    if subset_modality is None:
        g = int(np.argmax(np.bincount(codes)))
    else:
        g = _find_class(classes, subset_modality)
    rows = np.flatnonzero(codes == g)
    subsets = [rows[s] for s in subset_split(rows.size, ratio=ratio, seed=seed)]
    keep = np.ones(X.shape[0], dtype=bool)
    keep[rows] = False
    keep[subsets[0]] = True
    kept = np.flatnonzero(keep)
    labels = np.full(X.shape[0], -1, dtype=np.int64)
    kept_codes, kept_classes = codes[kept], classes
    present = np.unique(kept_codes)  # a modality can vanish only if its rows were all subset away: none can
    labels[kept] = _per_modality(X[kept], np.searchsorted(present, kept_codes), kept_classes[present], eps=eps,
                                 min_samples=min_samples, algorithm=algorithm, k1=k1, k2=k2, knn=knn, device=device,
                                 n_jobs=n_jobs, progress=progress)
    return labels, subsets


def _find_class(classes, value):
    """Index of ``value`` among the sorted labels ``classes``, or an InputError listing them."""
    listed = ", ".join(plain(c) for c in classes.tolist())
    if np.ndim(value) != 0 or isinstance(value, (dict, set, list, tuple)):
        raise InputError(f"subset_modality must be one modality label; got {plain(value)}.")
    if isinstance(value, np.generic):
        value = value.item()
    for g, c in enumerate(classes.tolist()):
        if type(c) is type(value) or (isinstance(c, int) and isinstance(value, (int, float)) and not isinstance(value, bool)):
            if c == value:
                return g
    raise InputError(f"subset_modality={plain(value)} is not among the modalities ({listed}).")
