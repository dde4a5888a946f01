"""Whole pipelines: per-modality clustering + matching (:func:`associate`), refined global clustering
(:func:`cluster_refined`)."""

from __future__ import annotations

import numpy as np

from .._params import DEFAULTS as _D
from .._params import PARAMS, check_params
from .._validation import InputError, check_features, check_labels, check_option, plain
from .matching import ASSOCIATIONS, match_clusters
from .refinement import refine_labels

__all__ = ["associate", "cluster_refined"]


def _three_radii(D, eps, gap, min_samples):
    """Labels at eps - gap, eps, eps + gap of one distance (DBSCAN); eps may be "auto"."""
    from ..clustering import auto_eps, cluster_distance

    if eps == "auto":
        eps = auto_eps(D, min_samples=min_samples)
    if eps - gap <= 0:
        raise InputError(
            f"eps_gap={gap:g} must be smaller than eps ({eps:.3g}): the tight radius eps - eps_gap must be > 0.")
    return [cluster_distance(D, eps=e, min_samples=min_samples) for e in (eps - gap, eps, eps + gap)], float(eps)


def cluster_refined(features, *, modalities=None, cameras=None, method: str = _D["method"], eps=_D["eps"],
                    eps_gap: float = _D["eps_gap"], min_samples: int = _D["min_samples"], k1: int = _D["k1"],
                    k2: int = _D["k2"], knn: str = _D["knn"], device: str = _D["device"], n_jobs=_D["n_jobs"],
                    progress=_D["progress"], min_independence=None, min_compactness=None,
                    return_scores: bool = False, **jaccard):
    """:func:`xmrank.cluster` (DBSCAN), refined by :func:`~xmrank.association.refine_labels`.

    The Jaccard distance is computed once (stored up to ``eps + eps_gap``)
    and clustered at ``eps - eps_gap``, ``eps`` and ``eps + eps_gap``
    (``eps="auto"``: around the eps :func:`xmrank.clustering.auto_eps` picks).
    Other keyword arguments (``k1_intra`` ...) go to :func:`xmrank.jaccard_distance`;
    ``n_jobs`` has scikit-learn's meaning (-1: all cores, None: one).

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        -1 marks noise (DBSCAN's and the refinement's).
    scores : dict
        Only with ``return_scores``: those of :func:`refine_labels`, plus
        ``eps`` (the radius used, the one chosen with ``eps="auto"``) and ``eps_gap``.
    """
    from ..jaccard import jaccard_distance

    eps, gap, min_samples, n_jobs = check_params(eps=eps, eps_gap=eps_gap, min_samples=min_samples,
                                                 n_jobs=n_jobs).values()
    D = jaccard_distance(features, modalities=modalities, cameras=cameras, method=method, k1=k1, k2=k2,
                         max_distance=None if eps == "auto" else eps + gap, knn=knn, device=device, n_jobs=n_jobs,
                         progress=progress, **jaccard)
    (tight, normal, loose), used = _three_radii(D, eps, gap, min_samples)
    out = refine_labels(normal, tight, loose, min_independence=min_independence, min_compactness=min_compactness,
                        return_scores=return_scores)
    if return_scores:
        out[1].update(eps=used, eps_gap=gap)
    return out


def associate(features, modalities, *, method: str = "hungarian", eps=_D["eps"], min_samples: int = _D["min_samples"],
              algorithm: str = _D["algorithm"], k1: int = _D["k1"], k2: int = _D["k2"], knn: str = _D["knn"],
              device: str = _D["device"], n_jobs=_D["n_jobs"], progress=_D["progress"], anchor=None,
              min_similarity=None, min_share: float = 0.5, reg: float = 0.1, refine: bool = False,
              eps_gap: float = _D["eps_gap"], min_independence=None, min_compactness=None,
              return_info: bool = False):
    """Cluster each modality alone, then join the clusters across modalities: the association baselines.

    :func:`xmrank.cluster_per_modality` (vanilla Jaccard + DBSCAN per
    modality), then :func:`~xmrank.association.match_clusters`. With
    ``refine=True`` each modality is also clustered at ``eps - eps_gap`` and
    ``eps + eps_gap`` (on the same distance), each of the three is matched,
    and :func:`~xmrank.association.refine_labels` keeps the stable part.

    Parameters
    ----------
    features, modalities
        As :func:`xmrank.cluster_per_modality`.
    method : {"hungarian", "ot", "ot-instance"}, default="hungarian"
    eps, min_samples, algorithm, k1, k2, knn, device, n_jobs, progress
        The per-modality clustering, see :func:`xmrank.cluster` (``n_jobs``
        with scikit-learn's meaning: -1 all cores, None one).
    anchor, min_similarity, min_share, reg
        The matching, see :func:`~xmrank.association.match_clusters`.
    refine : bool, default=False
        Needs ``algorithm="dbscan"`` (HDBSCAN has no radius).
    eps_gap, min_independence, min_compactness
        The refinement, see :func:`~xmrank.association.refine_labels`.
    return_info : bool, default=False
        Also return the matching's info (with ``refine``, plus the
        refinement's ``n_dropped_clusters`` and ``n_dropped_rows``, ``eps``
        (with ``eps="auto"``: the radius chosen per modality) and ``eps_gap``).

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        0..K-1, -1 for noise: the form of :func:`xmrank.cluster`.
    info : dict
        Only with ``return_info``.
    """
    from ..clustering import cluster_per_modality
    from ..jaccard import jaccard_distance

    method = check_option(method, "method", ASSOCIATIONS)
    match = dict(method=method, anchor=anchor, min_similarity=min_similarity, min_share=min_share, reg=reg,
                 return_info=True)
    if not refine:
        per = cluster_per_modality(features, modalities, eps=eps, min_samples=min_samples, algorithm=algorithm,
                                   k1=k1, k2=k2, knn=knn, device=device, n_jobs=n_jobs, progress=progress)
        labels, info = match_clusters(features, per, modalities, **match)
        return (labels, info) if return_info else labels

    algorithm = PARAMS["algorithm"](algorithm)
    if algorithm != "dbscan":
        raise InputError("refine needs algorithm='dbscan': the refinement compares clusterings at three radii.")
    X = check_features(features)
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, X.shape[0], "modalities")
    eps, gap, k1, min_samples, n_jobs = check_params(eps=eps, eps_gap=eps_gap, k1=k1, min_samples=min_samples,
                                                     n_jobs=n_jobs).values()
    three = [np.full(X.shape[0], -1, dtype=np.int64) for _ in range(3)]
    offsets = [0, 0, 0]
    used = {}
    for g in range(classes.size):
        rows = np.flatnonzero(codes == g)
        if rows.size <= k1:
            raise InputError(
                f"k1={k1} must be smaller than the number of rows of modality {plain(classes[g])} ({rows.size})."
            )
        D = jaccard_distance(X[rows], method="vanilla", k1=k1, k2=k2, max_distance=None if eps == "auto" else eps + gap,
                             knn=knn, device=device, n_jobs=n_jobs, progress=progress)
        subs, used[str(classes[g].item() if hasattr(classes[g], "item") else classes[g])] = _three_radii(
            D, eps, gap, min_samples)
        for t, sub in enumerate(subs):
            ok = sub >= 0
            three[t][rows[ok]] = sub[ok] + offsets[t]
            offsets[t] += int(sub.max()) + 1 if ok.any() else 0
    tight, (normal, info), loose = (
        match_clusters(X, three[0], modalities, **{**match, "return_info": False}),
        match_clusters(X, three[1], modalities, **match),
        match_clusters(X, three[2], modalities, **{**match, "return_info": False}),
    )
    labels, scores = refine_labels(normal, tight, loose, min_independence=min_independence,
                                   min_compactness=min_compactness, return_scores=True)
    info.update(n_dropped_clusters=scores["n_dropped_clusters"], n_dropped_rows=scores["n_dropped_rows"],
                eps=used if eps == "auto" else eps, eps_gap=gap)
    return (labels, info) if return_info else labels
