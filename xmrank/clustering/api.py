"""Clustering pipelines of the paper: global, per-modality and subset clustering."""

from __future__ import annotations

import logging
from numbers import Integral

import numpy as np

from .._params import DEFAULTS as _D
from .._params import PARAMS, check_params
from .._validation import InputError, check_features, check_int, check_labels, plain, warn_user
from .._progress import progress_bar
from ..jaccard import jaccard_distance
from .algorithms import density_labels
from .auto import (K1_CANDIDATES, K1_FALLBACK, auto_k2, choose_k1, fallback_k1, feasible_k1, is_auto,
                   shared_source, source_distance)
from .eps import auto_eps

logger = logging.getLogger(__name__)

__all__ = ["cluster", "cluster_per_modality", "subset_split", "subset_cluster"]

#: A clustering is reported as degenerate when one cluster holds more than this share of the rows ...
GIANT_SHARE = 0.5
#: ... or when at least this share of the rows is noise.
NOISE_SHARE = 0.9


def _check_clustering(eps, min_samples, algorithm, n_jobs):
    """The clustering's own parameters, checked once (the Jaccard ones are :func:`xmrank.jaccard_distance`'s)."""
    return check_params(min_samples=min_samples, algorithm=algorithm, eps=eps, n_jobs=n_jobs).values()


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False; got {plain(value)}.")
    return bool(value)


def degenerate_message(labels, *, eps=None, min_samples=4, algorithm="dbscan", eps_auto=False, where="",
                       suggestion=None):
    """The warning text for a degenerate clustering, or None when it is not degenerate.

    Degenerate: one cluster holds more than half of the rows (:data:`GIANT_SHARE`),
    or at least 90% of the rows are noise (:data:`NOISE_SHARE`). The text says
    what to change: with ``suggestion`` (from :func:`suggest_fix`, a setting
    checked not to degenerate) its concrete values, else the direction.
    """
    labels = np.asarray(labels)
    n = labels.size
    if n < 2:
        return None
    ok = labels >= 0
    noise = 1.0 - ok.mean()
    largest = np.bincount(labels[ok]).max() / n if ok.any() else 0.0
    setting = (f"eps={eps:.3g}{' (chosen by eps=auto)' if eps_auto else ''}, min_samples={min_samples}"
               if algorithm == "dbscan" and eps is not None else f"algorithm={algorithm}, min_samples={min_samples}")
    giant = largest > GIANT_SHARE and n >= 2 * min_samples
    if not giant and noise < NOISE_SHARE:
        return None
    what = (f"one cluster holds {largest:.0%} of the {n} rows" if giant else f"{noise:.0%} of the {n} rows are noise")
    if suggestion is not None:
        checked = (f"(checked: largest cluster {suggestion['largest_share']:.0%}, noise {suggestion['noise_share']:.0%}"
                   f", {suggestion['n_clusters']} clusters)")
        if "k1" in suggestion:
            fix = (f"k1={suggestion['previous_k1']} is longer than the identities can fill (k1='auto' prefers "
                   f"k1={suggestion['k1']} on these rows): use k1={suggestion['k1']}, k2={suggestion['k2']}, "
                   f"eps={suggestion['eps']:.3g} {checked}")
        else:
            fix = f"{'lower' if giant else 'raise'} eps to {suggestion['eps']:.3g} {checked}"
        return f"{where}degenerate clustering: {what} ({setting}); {fix}."
    if giant:
        if algorithm == "dbscan":
            # eps >= 1 joins every pair: the suggestion stays below 1 (and prints as a short number)
            lower = max(min(eps - 0.1, 0.9), 0.05) if eps is not None else None
            fix = ("lower eps" + (f" (try {lower:.2f}; or pass a number instead of 'auto')" if eps_auto
                                  else f" (try {lower:.2f})" if eps is not None else "")
                   + " or raise min_samples")
        else:
            fix = "raise min_samples"
        return (f"{where}degenerate clustering: {what} ({setting}); "
                f"{fix}. With identity labels, `xmrank diagnose --ids` scores each setting.")
    if algorithm == "dbscan":
        fix = ("raise eps" + (" (or pass a number instead of 'auto')" if eps_auto else "")
               + f", or lower min_samples: a core row needs {min_samples} rows (itself included) within eps")
    else:
        fix = f"lower min_samples: a cluster needs at least {min_samples} rows"
    return f"{where}degenerate clustering: {what} ({setting}); {fix}."


def _shares(labels):
    n = labels.size
    ok = labels >= 0
    largest = float(np.bincount(labels[ok]).max() / n) if ok.any() else 0.0
    return largest, float(1.0 - ok.mean()), int(labels.max()) + 1 if ok.any() else 0


def _degenerate(labels, min_samples) -> bool:
    largest, noise, _ = _shares(labels)
    return (largest > GIANT_SHARE and labels.size >= 2 * min_samples) or noise >= NOISE_SHARE


def suggest_fix(labels, info, run):
    """A setting checked not to degenerate, for the warning of a degenerate DBSCAN clustering.

    - **k1**, for a giant cluster, when the list is longer than the
      identities can fill: the choice of ``k1="auto"`` among this ``k1`` and
      the shorter candidates of :data:`~xmrank.clustering.auto.K1_CANDIDATES`
      (each clustered with ``eps="auto"``, compared on the mean of their
      distances) is a shorter one. The suggestion is that ``k1``, its ``k2``
      and its eps.
    - **eps** otherwise: among the eps of :data:`~xmrank.clustering.eps.EPS_GRID`
      below the current one (a giant cluster) or above it (noise) whose
      clustering at this ``k1`` is not degenerate, the one of the best
      label-free quality (the criterion of :func:`~xmrank.clustering.auto_eps`).

    Each suggestion is clustered as :func:`cluster` clusters it and kept only
    when that clustering is not degenerate; the check costs one more
    distance (eps), or one per candidate ``k1``.

    Parameters
    ----------
    labels : ndarray
        The degenerate labels.
    info : dict
        Their ``info`` (method, k1, k2, eps, min_samples).
    run : callable
        ``run(k1, k2, eps, cut) -> (labels, distance, info)``, the clustering of :func:`cluster`.

    Returns
    -------
    suggestion : dict or None
        ``eps`` (and ``k1``, ``k2``, ``previous_k1`` when k1 is to change),
        ``largest_share``, ``noise_share``, ``n_clusters`` of the checked
        clustering; None when nothing found avoids degeneracy.
    """
    from .eps import EPS_GRID, _eps_scores, _Prepared

    if info.get("algorithm") != "dbscan" or info.get("eps") is None:
        return None
    ms, eps = info["min_samples"], float(info["eps"])
    largest, _, _ = _shares(labels)
    giant = largest > GIANT_SHARE
    k1 = info.get("k1")
    if giant and isinstance(k1, (int, np.integer)) and info["method"] != "camera":
        shorter = [c for c in K1_CANDIDATES if c < k1]
        if shorter:
            try:
                best, (sub, _, sub_info), _ = choose_k1(lambda k, store, *_: run(k, "auto", "auto", False, store),
                                                        shorter + [int(k1)],
                                                        n_rows=labels.size, giant_share=GIANT_SHARE,
                                                        noise_share=NOISE_SHARE, quiet=True)
            except InputError:
                best = k1
            if best < k1:
                checked = density_labels(run(best, sub_info["k2"], sub_info["eps"], True)[1], eps=sub_info["eps"],
                                         min_samples=ms, algorithm="dbscan")
                if not _degenerate(checked, ms):
                    big, noise, n_clusters = _shares(checked)
                    return {"k1": int(best), "k2": int(sub_info["k2"]), "eps": float(sub_info["eps"]),
                            "previous_k1": int(k1), "largest_share": big, "noise_share": noise,
                            "n_clusters": n_clusters}
    _, D, _ = run(info["k1"], info["k2"], eps, False)
    P = _Prepared(D)
    grid = EPS_GRID[EPS_GRID < eps] if giant else EPS_GRID[EPS_GRID > eps]
    if grid.size:
        scores = _eps_scores(P, ms, grid)
        fine = ((scores["largest_share"] <= GIANT_SHARE) & (scores["noise_share"] < NOISE_SHARE)
                & np.isfinite(scores["score"]))
        # the best label-free quality (auto_eps's criterion) among the radii that do not degenerate
        for i in np.flatnonzero(fine)[np.argsort(-scores["score"][fine], kind="stable")]:
            checked = density_labels(D, eps=float(grid[i]), min_samples=ms, algorithm="dbscan")
            if not _degenerate(checked, ms):
                big, noise, k = _shares(checked)
                return {"eps": float(grid[i]), "largest_share": big, "noise_share": noise, "n_clusters": k}
    return None


def _warn_degenerate(labels, info, where="", run=None):
    suggestion = None
    if run is not None and _degenerate(labels, info["min_samples"]):
        suggestion = suggest_fix(labels, info, run)
        info["suggestion"] = suggestion
    text = degenerate_message(labels, eps=info.get("eps"), min_samples=info["min_samples"],
                              algorithm=info["algorithm"], eps_auto=info.get("eps_requested") == "auto", where=where,
                              suggestion=suggestion)
    if text is not None:
        warn_user(text)
    return text


def cluster(
    features,
    *,
    modalities=None,
    cameras=None,
    method: str = _D["method"],
    eps=_D["eps"],
    min_samples: int = _D["min_samples"],
    algorithm: str = _D["algorithm"],
    k1: int = _D["k1"],
    k2: int = _D["k2"],
    k1_intra: int = _D["k1_intra"],
    k1_inter: int = _D["k1_inter"],
    k2_intra: int = _D["k2_intra"],
    k2_inter: int = _D["k2_inter"],
    knn: str = _D["knn"],
    device: str = _D["device"],
    n_jobs: int | None = _D["n_jobs"],
    progress: bool | None = _D["progress"],
    return_distance: bool = False,
    return_info: bool = False,
):
    """Jaccard distance, then density clustering: the papers' global clustering.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    modalities, cameras : array-like of shape (n_samples,), default=None
        Per-row labels, see :func:`xmrank.jaccard_distance`.
    method : str, default="auto"
        Jaccard method, see :func:`xmrank.jaccard_distance`; "auto" measures
        the modality bias of the features once (modality-aware only where
        plain kNN lists stay in their modality).
    eps : float or "auto", default=0.6
        DBSCAN radius, > 0; "auto" picks it from the data by maximising a
        label-free clustering quality (:func:`xmrank.clustering.auto_eps`;
        the eps chosen is in the ``info`` of ``return_info=True`` and logged).
        Jaccard distances are at most 1, so ``eps >= 1`` makes every pair a
        neighbour, as scikit-learn's DBSCAN does on the dense matrix: one
        cluster (all noise with fewer than ``min_samples`` rows).
    min_samples : int, default=4
    algorithm : {"dbscan", "hdbscan"}, default="dbscan"
    k1 : int or "auto", default=30
        Neighbour-list length. "auto" clusters at each of k1 = 5, 10, 20,
        30 that the rows allow (each with its own ``k2="auto"`` and eps) and
        keeps the clustering of the best modularity + silhouette, all read
        on the mean of the candidates' Jaccard distances; degenerate
        candidates are left out (:mod:`xmrank.clustering.auto`). The
        candidates share one neighbour search (at the longest list); each
        adds its Jaccard stages and eps scan. Where their full distances
        would not fit in memory, each stores only the pairs within 0.95 (the
        largest eps tried; ``chosen["k1"]["measurement"]["max_distance"]``);
        what still does not fit raises :class:`xmrank.OutputTooLarge` before
        allocating. With too few rows for any candidate: 30, capped to what
        the rows allow, with a warning.
    k2 : int or "auto", default=6
        Query-expansion length; "auto" is ``ceil(k1 / 5)`` (the published
        30 / 6), at most ``k1 // M`` per modality.
    k1_intra, k1_inter, k2_intra, k2_inter, knn, device, progress
        Passed to :func:`xmrank.jaccard_distance`; ``knn="ann"`` (approximate
        search) is the engine for hundreds of thousands of rows and more,
        ``device="cuda"`` (or ``"cuda:1"``, a GPU by index) runs the distance
        on the GPU.
    n_jobs : int or None, default=-1
        Threads, with scikit-learn's meaning: -1 all cores, -k all but
        k - 1, None one (or the ``n_jobs`` of an enclosing
        ``joblib.parallel_config``), a positive number that many.
    return_distance : bool, default=False
        Also return the sparse distance matrix. With DBSCAN and a numeric
        eps it stores only the pairs within eps (all DBSCAN reads).
    return_info : bool, default=False
        Also return a dict of everything needed to rerun the clustering:
        ``method`` (resolved, never "auto"), ``eps`` (the eps used, the one
        chosen with ``eps="auto"``; None for HDBSCAN), ``eps_requested``,
        ``min_samples``, ``algorithm``, ``k1``, ``k2`` (and CA-Jaccard's
        lengths with ``method="camera"``), ``knn`` (the engine ``knn``
        resolves to for this size) and ``knn_requested``, ``device``,
        ``n_rows``, ``n_stored_pairs``, ``warning`` (the degenerate-clustering
        warning, or None; ``suggestion``, the checked fix it names); with
        ``eps="auto"`` also ``auto_eps`` (the criterion at the chosen eps);
        ``method_requested``, ``k1_requested``, ``k2_requested``; and
        ``chosen``: for each "auto" argument (``method``, ``k1``, ``k2``,
        ``eps``) ``{"value", "reason", "measurement"}`` (the modality bias;
        every k1 candidate's eps, score, clusters, noise and largest share;
        the eps criterion), empty when every argument is explicit.

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        -1 marks noise.
    distance : scipy.sparse.csr_matrix
        Only with ``return_distance=True``.
    info : dict
        Only with ``return_info=True`` (after ``distance`` when both are asked).

    Warns
    -----
    UserWarning
        When the clustering is degenerate: one cluster holds more than half
        of the rows, or at least 90% of the rows are noise. The message says
        which setting to change.
    """
    return_distance = _check_flag(return_distance, "return_distance")
    return_info = _check_flag(return_info, "return_info")
    min_samples, algorithm, eps, n_jobs = _check_clustering(eps, min_samples, algorithm, n_jobs)
    labels, D, info = _cluster(
        features, modalities=modalities, cameras=cameras, method=method, eps=eps, min_samples=min_samples,
        algorithm=algorithm, k1=k1, k2=k2, k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra,
        k2_inter=k2_inter, knn=knn, device=device, n_jobs=n_jobs, progress=progress)
    info["warning"] = _warn_degenerate(labels, info, run=_runner(
        features, modalities=modalities, cameras=cameras, method=info["method"], min_samples=min_samples,
        algorithm=algorithm, k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter, knn=knn,
        device=device, n_jobs=n_jobs, progress=False, n_modalities=_n_modalities(info)))
    out = (labels,) + ((D,) if return_distance else ()) + ((info,) if return_info else ())
    return out[0] if len(out) == 1 else out


def _cluster(features, *, modalities, cameras, method, eps, min_samples, algorithm, k1, k2, k1_intra, k1_inter,
             k2_intra, k2_inter, knn, device, n_jobs, progress, full_distance=False):
    """:func:`cluster` on checked clustering parameters, without the degenerate-clustering warning.

    Resolves ``method="auto"`` (by the modality bias of the features),
    ``k1="auto"`` (:func:`xmrank.clustering.auto.choose_k1`) and
    ``k2="auto"`` (:func:`xmrank.clustering.auto.auto_k2`); every choice and
    its measurement is in ``info["chosen"]``. Returns ``(labels, distance,
    info)``; ``n_jobs`` is a number of threads. ``full_distance=True`` keeps
    every pair below 1 in the distance, even for a numeric eps.
    """
    from ..backend import resolve_device
    from ..jaccard.plan import check_features_on, resolve_method

    for value, name in ((k1, "k1"), (k2, "k2")):
        if isinstance(value, str) and not is_auto(value):
            raise InputError(f"{name} must be an integer or 'auto'; got {plain(value)}.")
    chosen = {}
    codes = None
    requested = {"method": method, "k1": k1, "k2": k2}
    if method == "auto" or is_auto(k1) or is_auto(k2):
        dev = resolve_device(device)
        features = check_features_on(features, dev)
        n = features.shape[0]
        if modalities is not None:
            codes, _ = check_labels(modalities, n, "modalities")
        if cameras is not None:
            check_labels(cameras, n, "cameras")
        if method == "auto":
            method, record = resolve_method(features, codes, cameras=cameras is not None, knn=knn, device=dev)
            if record is not None:
                chosen["method"] = record
    uses_k = method not in ("camera",)
    if codes is None and modalities is not None and method in ("modality", "modality-qe", "modality-camera"):
        codes, _ = check_labels(modalities, int(np.shape(features)[0]), "modalities")
    M = int(codes.max()) + 1 if codes is not None else 1

    def run(k1_value, k2_value=k2, cut=not full_distance, store=None, source=None, fallback=None):
        k2_used = auto_k2(k1_value, method, M) if is_auto(k2_value) else k2_value
        return _cluster_at(features, modalities=modalities, cameras=cameras, method=method, eps=eps,
                           min_samples=min_samples, algorithm=algorithm, k1=k1_value, k2=k2_used, k1_intra=k1_intra,
                           k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter, knn=knn, device=device,
                           n_jobs=n_jobs, progress=progress, cut=cut, store=store, source=source,
                           fallback=fallback)

    if is_auto(k1) and uses_k:
        n = features.shape[0]
        given_k2 = k2 if isinstance(k2, Integral) and not isinstance(k2, bool) else None
        candidates = feasible_k1(K1_CANDIDATES, n, method, codes if M > 1 else None, k2=given_k2)
        if not candidates and feasible_k1(K1_CANDIDATES, n, method, codes if M > 1 else None):
            raise InputError(f"k2={given_k2} is longer than the list of every k1 that k1='auto' can try on these rows "
                             f"(k1 in {list(K1_CANDIDATES)}{', k1 // ' + str(M) + ' per modality' if M > 1 else ''}): "
                             "pass a smaller k2, or k2='auto'.")
        if candidates:
            # one search, at the longest candidate's lists, serves every candidate (their prefixes)
            shared = shared_source(features, knn=knn, device=device) if len(candidates) > 1 else None
            k1, (labels, D, info), chosen["k1"] = choose_k1(
                lambda k, store, fallback=None: run(k, cut=False, store=store, source=shared, fallback=fallback),
                candidates, n_rows=n,
                giant_share=GIANT_SHARE, noise_share=NOISE_SHARE)
            if shared is not None:
                chosen["k1"]["measurement"]["searches"] = shared.searches
        else:
            k1 = fallback_k1(n, method, codes if M > 1 else None)
            warn_user(f"k1='auto': {n} rows are too few to try any of {list(K1_CANDIDATES)}; using k1={k1} "
                      f"(the default {K1_FALLBACK}, capped to what the rows allow).")
            chosen["k1"] = {"value": k1, "reason": "too few rows to choose: the default, capped", "measurement": None}
            labels, D, info = run(k1)
    else:
        if is_auto(k1):  # CA-Jaccard reads k1_intra/k1_inter: k1 is not used
            k1 = K1_FALLBACK
            chosen["k1"] = {"value": None, "reason": f"method={method!r} does not use k1", "measurement": None}
        labels, D, info = run(k1)
    if is_auto(k2) and uses_k:
        chosen["k2"] = {"value": info["k2"], "reason": "ceil(k1 / 5) as in the published k1=30, k2=6"
                        + (f", per modality, at most k1 // {M}" if method in ("modality", "modality-camera") else ""),
                        "measurement": {"k1": int(k1)}}
    if eps == "auto" and algorithm == "dbscan":
        chosen["eps"] = {"value": info["eps"],
                         "reason": "best modularity + silhouette over eps 0.05-0.95 (auto_eps), among the eps whose "
                                   "clustering is not degenerate where there are any",
                         "measurement": info.get("auto_eps")}
    info["method_requested"] = requested["method"]
    info["k1_requested"], info["k2_requested"] = requested["k1"], requested["k2"]
    info["chosen"] = chosen
    info["n_modalities"] = M
    return labels, D, info


def _n_modalities(info):
    return int(info.get("n_modalities", 1))


def _runner(features, *, n_modalities, **settings):
    """``run(k1, k2, eps, cut)``: :func:`_cluster_at` at these settings ("auto" k2 and eps resolved)."""
    def run(k1, k2, eps, cut, store=None):
        k2 = auto_k2(k1, settings["method"], n_modalities) if is_auto(k2) else k2
        return _cluster_at(features, k1=k1, k2=k2, eps=eps, cut=cut, store=store, **settings)

    return run


def _cluster_at(features, *, modalities, cameras, method, eps, min_samples, algorithm, k1, k2, k1_intra, k1_inter,
                k2_intra, k2_inter, knn, device, n_jobs, progress, cut=True, store=None, source=None,
                fallback=None):
    """One clustering at explicit ``method``, ``k1`` and ``k2``: ``(labels, distance, info)``.

    ``cut=False`` keeps every pair below 1 in the distance even for a numeric eps, or, with
    ``store``, the pairs within ``store``. ``source``: a shared neighbour source
    (:func:`xmrank.clustering.auto.shared_source`) the lists are read from instead of a search;
    ``fallback``: with it, the pairs within ``fallback`` where every pair below 1 would not fit.
    """
    from ..backend import resolve_knn

    # DBSCAN at a fixed eps reads only pairs <= eps: store just those (same labels, far less memory)
    cut_at = store
    if cut and algorithm == "dbscan" and eps != "auto":
        cut_at = eps
    arguments = dict(modalities=modalities, cameras=cameras, method=method, k1=k1, k2=k2, k1_intra=k1_intra,
                     k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter, max_distance=cut_at, knn=knn,
                     device=device, n_jobs=n_jobs, progress=progress)
    D = (jaccard_distance(features, **arguments) if source is None
         else source_distance(source, features, fallback=fallback, **arguments))
    resolved = method
    info = {"method": resolved, "algorithm": algorithm, "eps": None, "eps_requested": eps,
            "min_samples": min_samples, "k1": k1, "k2": k2}
    if resolved in ("camera", "modality-camera"):
        info.update(k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter)
    info.update(knn=_engine(resolve_knn, knn, device, features, D.shape[0]), knn_requested=knn, device=device,
                n_rows=int(D.shape[0]), n_stored_pairs=int(D.nnz))
    if algorithm == "dbscan":
        if eps == "auto":
            _check_scan_fits(D)
            with progress_bar(total=1, desc="eps=auto", show=progress) as bar:
                value, scores = auto_eps(D, min_samples=min_samples, return_scores=True, giant_share=GIANT_SHARE,
                                         noise_share=NOISE_SHARE)
                bar.stage(f"chose eps={value:.3f}")
            logger.info("eps='auto' chose eps=%.3f", value)
            if scores is not None:
                i = int(np.flatnonzero(scores["eps"] == value)[0])
                info["auto_eps"] = {k: float(scores[k][i]) for k in ("score", "modularity", "silhouette")}
        else:
            value = eps
        info["eps"] = float(value)
        labels = density_labels(D, eps=value, min_samples=min_samples, algorithm=algorithm)
    else:
        labels = density_labels(D, eps=None, min_samples=min_samples, algorithm=algorithm)
    return labels, D, info


def _check_scan_fits(D):
    """Refuse, before it allocates, an eps scan (:func:`auto_eps`) of ``D`` that would not fit in memory."""
    from .._memory import check_fits
    from .auto import SCORE_BYTES_PER_ENTRY

    check_fits(float(D.nnz) * SCORE_BYTES_PER_ENTRY,
               f"eps='auto''s scan of the Jaccard distance ({D.nnz / 1e6:,.1f} M stored entries)",
               "pass a number for eps: cluster then stores only the pairs within it (max_distance=eps)")


def _engine(resolve_knn, knn, device, features, n):
    """The kNN engine ``knn`` resolves to for an all-rows search of ``features`` (what "auto" picked)."""
    shape = np.shape(features)
    try:
        return resolve_knn(knn, device, shape=(n, n, int(shape[-1]) if len(shape) == 2 else 1))
    except TypeError:  # a resolve_knn without the shape argument
        return resolve_knn(knn, device)


def cluster_per_modality(features, modalities, *, eps=_D["eps"], min_samples: int = _D["min_samples"],
                         algorithm: str = _D["algorithm"], k1: int = _D["k1"], k2: int = _D["k2"],
                         knn: str = _D["knn"], device: str = _D["device"], n_jobs=_D["n_jobs"],
                         progress=_D["progress"], return_info: bool = False):
    """Cluster each modality on its own with vanilla Jaccard (the paper's stage 1).

    Parameters are those of :func:`cluster`.

    Labels are made unique across modalities: the clusters of the first
    modality (in sorted label order) come first, then the next modality's.

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        -1 marks noise.
    info : dict
        Only with ``return_info=True``: as :func:`cluster`'s, with ``eps`` a
        dict of the eps used per modality (its label as a string) and
        ``per_modality`` the info of each modality's clustering.

    Warns
    -----
    UserWarning
        For each modality whose clustering is degenerate (see :func:`cluster`).
    """
    return_info = _check_flag(return_info, "return_info")
    X = check_features(features)
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, X.shape[0], "modalities")
    labels, info = _per_modality(X, codes, classes, eps=eps, min_samples=min_samples, algorithm=algorithm, k1=k1,
                                 k2=k2, knn=knn, device=device, n_jobs=n_jobs, progress=progress)
    return (labels, info) if return_info else labels


def _per_modality(X, codes, classes, *, eps, min_samples, algorithm, k1, k2, knn, device, n_jobs, progress):
    k1 = PARAMS["k1"](k1)  # read here: each modality must have more rows than k1 ("auto": chosen per modality)
    min_samples, algorithm, eps, n_jobs = _check_clustering(eps, min_samples, algorithm, n_jobs)
    labels = np.full(X.shape[0], -1, dtype=np.int64)
    offset = 0
    per = {}
    for g in range(classes.size):
        rows = np.flatnonzero(codes == g)
        if not is_auto(k1) and rows.size <= k1:
            raise InputError(
                f"k1={k1} must be smaller than the number of rows of modality {plain(classes[g])} ({rows.size})."
            )
        sub, _, info = _cluster(X[rows], modalities=None, cameras=None, method="vanilla", eps=eps,
                                min_samples=min_samples, algorithm=algorithm, k1=k1, k2=k2, k1_intra=5, k1_inter=20,
                                k2_intra=2, k2_inter=4, knn=knn, device=device, n_jobs=n_jobs, progress=progress)
        info["warning"] = _warn_degenerate(sub, info, where=f"modality {plain(classes[g])}: ")
        per[str(classes[g].item() if hasattr(classes[g], "item") else classes[g])] = info
        keep = sub >= 0
        labels[rows[keep]] = sub[keep] + offset
        offset += int(sub.max()) + 1 if keep.any() else 0
    first = next(iter(per.values()))
    info = {key: first[key] for key in ("method", "algorithm", "eps_requested", "min_samples", "k1", "k2", "knn",
                                        "knn_requested", "device")}
    info["eps"] = {m: i["eps"] for m, i in per.items()} if eps == "auto" else first["eps"]
    info["n_rows"] = int(X.shape[0])
    info["n_stored_pairs"] = int(sum(i["n_stored_pairs"] for i in per.values()))
    info["per_modality"] = per
    return labels, info


def subset_split(n_rows: int, *, ratio: float = _D["ratio"], seed=None, min_size: int = 1):
    """Randomly partition ``range(n_rows)`` into ``round(1/ratio)`` subsets (BMIL's subset clustering).

    Parameters
    ----------
    n_rows : int
    ratio : float, default=0.5
        Share of rows in each subset; 0.5 gives two halves.
    seed : int or numpy Generator, default=None
        A non-negative integer of at most 64 bits, a Generator, or None.
    min_size : int, default=1
        The fewest rows a subset may hold: a ratio that gives smaller subsets
        (more parts than ``n_rows // min_size``) is refused before anything
        is allocated.

    Returns
    -------
    subsets : list of ndarray of int64
        Sorted indices; together a partition of ``range(n_rows)``.

    Raises
    ------
    xmrank.InputError
        For a ratio whose subsets would hold fewer than ``min_size`` rows.
    """
    n_rows = check_int(n_rows, "n_rows", minimum=1)
    ratio = PARAMS["ratio"](ratio)
    min_size = check_int(min_size, "min_size", minimum=1)
    # bounded by the rows before anything is allocated: a ratio of 1e-9 would ask for 1e9 parts
    if n_rows * ratio < min_size - 0.5 or round(1.0 / ratio) > n_rows // min_size:
        raise InputError(f"ratio={plain(ratio)} splits {n_rows} rows into subsets of fewer than {min_size} "
                         f"row(s); the smallest ratio for {n_rows} rows is {min_size / n_rows:.3g}.")
    parts = max(1, int(round(1.0 / ratio)))
    rng = np.random.default_rng(PARAMS["seed"](seed))
    try:
        perm = rng.permutation(n_rows)
    except (ValueError, MemoryError):
        raise InputError(f"n_rows={n_rows} is too large to split in memory.") from None
    return [np.sort(p) for p in np.array_split(perm, parts)]


def subset_cluster(features, modalities, *, subset_modality=None, ratio: float = _D["ratio"], seed=None,
                   eps=_D["eps"], min_samples: int = _D["min_samples"], algorithm: str = _D["algorithm"],
                   k1: int = _D["k1"], k2: int = _D["k2"], knn: str = _D["knn"], device: str = _D["device"],
                   n_jobs=_D["n_jobs"], progress=_D["progress"], return_info: bool = False):
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
    info : dict
        Only with ``return_info=True``: as :func:`cluster_per_modality`'s,
        plus ``subset_modality``, ``ratio`` and ``seed``.
    """
    return_info = _check_flag(return_info, "return_info")
    X = check_features(features)
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, X.shape[0], "modalities")
    ratio, seed = PARAMS["ratio"](ratio), PARAMS["seed"](seed)
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
    labels[kept], info = _per_modality(X[kept], np.searchsorted(present, kept_codes), kept_classes[present], eps=eps,
                                       min_samples=min_samples, algorithm=algorithm, k1=k1, k2=k2, knn=knn,
                                       device=device, n_jobs=n_jobs, progress=progress)
    if return_info:
        subset_label = classes[g].item() if hasattr(classes[g], "item") else classes[g]
        info.update(subset_modality=subset_label, ratio=ratio, seed=seed)
        return labels, subsets, info
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
