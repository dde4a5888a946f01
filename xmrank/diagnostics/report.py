"""``diagnose``: every modality-bias diagnostic of a feature set in one JSON-ready dict."""

from __future__ import annotations

import logging
import math

import numpy as np

from .._params import DEFAULTS as _D
from .._params import PARAMS, parse_eps
from .._progress import progress_bar
from ..backend import resolve_knn
from .._validation import InputError, check_features, check_int, check_labels, check_option, plain
from .._validation import is_auto as _is_auto
from .._params import METHODS
from ..jaccard import jaccard_distance
from .distances import histogram_summary, jaccard_histogram, original_histogram
from .neighbors import neighbor_makeup
from .scores import cluster_scores

logger = logging.getLogger(__name__)

__all__ = ["diagnose", "DIAGNOSE_METHODS"]

#: Jaccard methods ``diagnose`` can compare: every method of :data:`xmrank.jaccard.METHODS` but "auto".
DIAGNOSE_METHODS = tuple(m for m in METHODS if m != "auto")
#: Methods that need cameras.
_CAMERA_METHODS = ("camera", "modality-camera")


def _json_ready(obj):
    """numpy scalars/arrays to Python, NaN/inf to None, recursively."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _check_methods(methods, has_cameras):
    if methods is None:
        return ("vanilla", "modality-qe", "modality") + (("camera",) if has_cameras else ())
    if isinstance(methods, str):
        methods = (methods,)
    try:
        methods = tuple(methods)
    except TypeError:
        raise InputError(f"methods must be a method name or a list of them; got {plain(methods)}.") from None
    if not methods:
        raise InputError("methods must name at least one Jaccard method.")
    for m in methods:
        check_option(m, "method", DIAGNOSE_METHODS)
    for m in methods:
        if m in _CAMERA_METHODS and not has_cameras:
            raise InputError(f"method {m!r} needs cameras: one camera label per row.")
    return methods


def diagnose(
    features,
    modalities,
    *,
    labels=None,
    cameras=None,
    k1: int = _D["k1"],
    k2: int = _D["k2"],
    eps=_D["eps"],
    min_samples: int = _D["min_samples"],
    methods=None,
    noise: str = _D["noise"],
    bins: int = _D["bins"],
    max_pairs: int = _D["max_pairs"],
    knn: str = _D["knn"],
    seed=_D["seed"],
    progress: bool | None = _D["progress"],
    n_jobs: int | None = _D["n_jobs"],
) -> dict:
    """Measure the modality bias of ``features`` and how each Jaccard method copes with it.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Embeddings (L2-normalised rows).
    modalities : array-like of shape (n_samples,)
        Modality label per row, at least two distinct values.
    labels : array-like of shape (n_samples,), default=None
        Ground-truth identity per row. When given, each method's distance is
        clustered with DBSCAN and scored (:func:`cluster_scores`).
    cameras : array-like of shape (n_samples,), default=None
        Camera label per row; adds the camera-aware Jaccard (CA-Jaccard).
    k1, k2 : int or "auto", default=30, 6
        Neighbour-list and query-expansion lengths of every method, and
        ``k1`` of the neighbour make-up. "auto": chosen for each method as
        :func:`xmrank.cluster` chooses them (``report["chosen"]``, by
        method, with the measurements; the make-up is then read at k1=30,
        capped to what the rows allow).
    eps : float or "auto", default=0.6
        DBSCAN radius for the clustering scores, > 0 (``eps >= 1``: every
        pair is a neighbour, see :func:`xmrank.cluster_distance`); "auto"
        picks it per method with :func:`xmrank.clustering.auto_eps`.
    min_samples : int, default=4
        DBSCAN's core-point size.
    methods : sequence of str, default=None
        Jaccard methods to compare, from :data:`DIAGNOSE_METHODS` ("vanilla",
        "modality", "modality-qe", "camera", "modality-camera"; the last two
        need cameras); None takes "vanilla", "modality-qe" and "modality",
        plus "camera" when cameras are given.
    noise : {"singletons", "cluster"}, default="singletons"
        How DBSCAN noise is scored, see :mod:`xmrank.diagnostics.scores`.
    bins : int, default=50
        Histogram bins.
    max_pairs : int, default=2_000_000
        The original-distance histogram uses every pair up to this many,
        else a random sample of this many pairs.
    knn : str, default="auto"
        Exact kNN engine.
    seed : int, default=0
        Seed of the pair sample (non-negative, at most 64 bits).
    progress : bool, default=None
        Progress bars; None shows them only on a terminal.
    n_jobs : int or None, default=-1
        Threads of the Jaccard distances, with scikit-learn's meaning: -1
        all cores, -k all but k - 1, None one, a positive number that many.

    Returns
    -------
    report : dict
        JSON-ready (NaN written as None):

        - ``n_samples``, ``n_features``, ``modality_counts``, ``parameters``;
        - ``neighbor_makeup``: :func:`neighbor_makeup` (plain ``knn`` vs
          ``modality``-aware lists);
        - ``distances``: per distance ("original" and each method),
          ``intra_modality_mean``, ``inter_modality_mean``,
          ``inter_minus_intra``, ``histogram_overlap`` and pair counts;
        - ``histograms``: per distance, ``edges``, ``intra`` and ``inter``
          counts (for :func:`xmrank.diagnostics.plot_diagnosis`);
        - ``clustering`` (with ``labels``): per method, the ``eps`` used and
          :func:`cluster_scores`.
    """
    X = check_features(features)
    n = X.shape[0]
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, n, "modalities")
    if classes.size < 2:
        raise InputError("modalities holds a single modality; diagnose needs at least two.")
    ids = None if labels is None else check_labels(labels, n, "labels")[0]
    cams = None if cameras is None else check_labels(cameras, n, "cameras")[0]
    k1, k2 = PARAMS["k1"](k1), PARAMS["k2"](k2)
    k1_auto, k2_auto = _is_auto(k1), _is_auto(k2)
    if not k1_auto:
        k1 = check_int(k1, "k1", minimum=classes.size)  # a list per modality: at least one row of each
        if k1 >= n:
            raise InputError(f"k1={k1} must be smaller than the number of rows ({n}).")
    eps = parse_eps(eps)
    min_samples = PARAMS["min_samples"](min_samples)
    methods = _check_methods(methods, cams is not None)
    noise, bins, max_pairs = PARAMS["noise"](noise), PARAMS["bins"](bins), PARAMS["max_pairs"](max_pairs)
    seed = PARAMS["seed"](seed)
    resolve_knn(knn)
    progress = PARAMS["progress"](progress)
    n_jobs = PARAMS["n_jobs"](n_jobs)

    report = {
        "n_samples": n,
        "n_features": int(X.shape[1]),
        "modality_counts": {str(c): int(s) for c, s in zip(classes, np.bincount(codes))},
        "parameters": {"k1": k1, "k2": k2, "eps": eps, "min_samples": min_samples,
                       "methods": list(methods), "noise": noise},
    }
    with progress_bar(total=2 + len(methods), desc="diagnose", show=progress) as bar:
        makeup_k1 = k1 if not k1_auto else _fallback_k1(n, codes)
        report["neighbor_makeup"] = neighbor_makeup(X, codes, k1=makeup_k1, labels=ids, knn=knn)
        bar.stage("neighbour make-up")
        hists = {"original": original_histogram(X, codes, bins=bins, max_pairs=max_pairs, seed=seed)}
        bar.stage("original distances")
        clustering = {}
        chosen = {}
        for method in methods:
            logger.info("diagnose: %s Jaccard", method)
            if k1_auto or k2_auto:
                # the lengths "auto" chooses for this method, as xmrank.cluster chooses them (its distance kept whole)
                pred, D, info = _auto_clustering(X, codes, cams, method, k1, k2, eps, min_samples, knn, n_jobs,
                                                 progress)
                chosen[method] = info["chosen"]
            else:
                D = jaccard_distance(X, modalities=codes, cameras=cams, method=method, k1=k1, k2=k2,
                                     knn=knn, n_jobs=n_jobs, progress=progress)
            hists[method] = jaccard_histogram(D, codes, bins=bins)
            if ids is not None:
                if k1_auto or k2_auto:
                    clustering[method] = {"eps": float(info["eps"]), "k1": info["k1"], "k2": info["k2"],
                                          **cluster_scores(ids, pred, modalities=codes, noise=noise)}
                else:
                    clustering[method] = _cluster_and_score(D, ids, codes, eps, min_samples, noise)
            del D
            bar.stage(f"{method} Jaccard")
    report["distances"] = {name: histogram_summary(h) for name, h in hists.items()}
    report["histograms"] = {name: {k: h[k] for k in ("edges", "intra", "inter")} for name, h in hists.items()}
    if ids is not None:
        report["clustering"] = clustering
    if chosen:
        report["chosen"] = chosen
        report["neighbor_makeup"]["k1_note"] = f"k1='auto': the make-up is read at k1={makeup_k1}"
    return _json_ready(report)


def _fallback_k1(n, codes):
    from ..clustering.auto import fallback_k1

    return fallback_k1(n, "modality", codes)


def _auto_clustering(X, codes, cams, method, k1, k2, eps, min_samples, knn, n_jobs, progress):
    """``xmrank.cluster``'s choice of the "auto" lengths for ``method``: ``(labels, distance, info)``."""
    from ..clustering.api import _cluster

    return _cluster(X, modalities=codes, cameras=cams, method=method, eps=eps, min_samples=min_samples,
                    algorithm="dbscan", k1=k1, k2=k2, k1_intra=_D["k1_intra"], k1_inter=_D["k1_inter"],
                    k2_intra=_D["k2_intra"], k2_inter=_D["k2_inter"], knn=knn, device="cpu", n_jobs=n_jobs,
                    progress=progress, full_distance=True)


def _cluster_and_score(D, ids, codes, eps, min_samples, noise):
    from ..clustering import auto_eps, cluster_distance
    from ..clustering.api import GIANT_SHARE, NOISE_SHARE

    eps_used = (auto_eps(D, min_samples=min_samples, giant_share=GIANT_SHARE, noise_share=NOISE_SHARE)
                if eps == "auto" else eps)
    pred = cluster_distance(D, eps=eps_used, min_samples=min_samples)
    return {"eps": float(eps_used), **cluster_scores(ids, pred, modalities=codes, noise=noise)}
