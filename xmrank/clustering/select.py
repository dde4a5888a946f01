"""``select_clustering``: choose method, ``k1`` and ``eps`` on labelled data, by cross-validation over identities."""

from __future__ import annotations

import logging

import numpy as np

from .._folds import identity_folds
from .._params import CLUSTER_GRID, PARAMS, parse_eps
from .._params import DEFAULTS as _D
from .._validation import InputError, check_features, check_label_values, check_labels, plain
from ..jaccard import jaccard_distance
from .algorithms import density_labels
from .auto import auto_k2, is_auto
from .api import GIANT_SHARE, NOISE_SHARE
from .eps import auto_eps

logger = logging.getLogger(__name__)

__all__ = ["select_clustering", "SELECT_EPS", "SELECT_K1S"]

#: The eps values :func:`select_clustering` tries by default (:data:`xmrank._params.CLUSTER_GRID`): 0.1 to 0.9
#: in steps of 0.05, and "auto".
SELECT_EPS = CLUSTER_GRID["eps"]
#: The ``k1`` values it tries by default.
SELECT_K1S = CLUSTER_GRID["k1s"]


def _ari_singletons(truth, labels) -> float:
    """ARI with every noise row (-1) its own cluster (DBSCAN's noise belongs with nobody)."""
    from sklearn.metrics import adjusted_rand_score

    labels = np.asarray(labels).copy()
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return float(adjusted_rand_score(truth, labels))


def select_clustering(features, ids, *, modalities=None, cameras=None, methods=None, k1s=SELECT_K1S,
                      eps=SELECT_EPS, n_splits: int = _D["n_splits"], seed=_D["seed"],
                      min_samples: int = _D["min_samples"], knn: str = _D["knn"], n_jobs=_D["n_jobs"],
                      return_table: bool = False):
    """Choose the clustering's method, ``k1`` and ``eps`` on labelled (training) data.

    A grid method x ``k1`` x ``eps`` is scored by cross-validation over
    identities: the identities are dealt into ``n_splits`` folds, and each
    split clusters the rows of all identities but one fold's (so every
    split is a different set of identities, of the size of most of the
    data), scoring the adjusted Rand index against ``ids`` (noise rows as
    singletons). The setting of the best mean ARI is returned as keyword
    arguments of :func:`xmrank.cluster`, to apply to the unlabelled (test)
    rows: ``xmrank.cluster(X_test, modalities=m_test, **chosen)``. Select on
    the labelled data only, never on the rows you will report.

    Each (split, method, ``k1``) Jaccard distance is computed once, with
    every pair below 1 stored, and every eps is read from it.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Labelled rows (L2-normalised, as for :func:`xmrank.cluster`).
    ids : array-like of shape (n_samples,)
        Identity of each row; at least two identities (and ``n_splits``).
    modalities, cameras : array-like of shape (n_samples,), default=None
        As for :func:`xmrank.cluster`.
    methods : sequence of str, default=None
        Jaccard methods tried; None: ``("vanilla", "modality")`` with two
        or more modalities, else ``("vanilla",)``.
    k1s : sequence of int, default=(5, 10, 20, 30)
        ``k1`` values tried (each with ``k2 = ceil(k1 / 5)``, as
        ``k2="auto"``); values a split's rows cannot hold are skipped.
    eps : sequence of float or "auto", default=0.1 to 0.9 by 0.05, and "auto"
        DBSCAN radii tried; "auto" is :func:`xmrank.clustering.auto_eps`.
    n_splits : int, default=3
        Identity folds, >= 2 (at most the number of identities).
    seed : int, default=0
        Seed of the identity folds.
    min_samples : int, default=4
        DBSCAN's core-point size, fixed (returned in ``chosen``).
    knn : str, default="auto"
        kNN engine (:func:`xmrank.jaccard_distance`).
    n_jobs : int or None, default=-1
        Threads of the Jaccard distance.
    return_table : bool, default=False
        Also return the table of every setting.

    Returns
    -------
    chosen : dict
        ``method``, ``k1``, ``k2``, ``eps`` (a number, or "auto" when that
        scored best) and ``min_samples``: keyword arguments of
        :func:`xmrank.cluster` and :class:`xmrank.XMCluster`.
    table : list of dict
        Only with ``return_table=True``: one entry per setting, best first:
        ``method``, ``k1``, ``k2``, ``eps``, ``ari_mean``, ``ari_std``,
        ``largest_share_mean``, ``noise_share_mean``,
        ``degenerate_splits`` (splits where its clustering degenerates: one
        cluster above half of the rows, or 90 % noise) and ``n_splits``
        (the splits where the setting could run).

    Raises
    ------
    xmrank.InputError
        ``ids`` (or ``modalities``/``cameras``) of the wrong length, a single
        identity, fewer identities than ``n_splits``, an empty or invalid
        grid, or no setting that any split can run.

    Examples
    --------
    >>> import xmrank
    >>> from xmrank.datasets import make_biased
    >>> X, ids, mods, _ = make_biased(n_ids=40, per_id=8, gap=1.5, seed=0)
    >>> chosen = xmrank.select_clustering(X, ids, modalities=mods, k1s=(10, 20), eps=(0.5, 0.6))
    >>> sorted(chosen)
    ['eps', 'k1', 'k2', 'method', 'min_samples']
    """
    X = check_features(features)
    n = X.shape[0]
    id_codes, id_names = _check_ids(ids, n)
    n_ids = id_names.size
    if n_ids < 2:
        raise InputError(f"ids holds a single identity ({plain(id_names[0])}); select_clustering scores a clustering "
                         "against identities and needs at least two.")
    n_splits = PARAMS["n_splits"](n_splits)
    if n_splits < 2:  # each split leaves one fold out: one fold would leave nothing
        raise InputError(f"n_splits must be >= 2 to cluster all identities but one fold's; got {n_splits}.")
    if n_splits > n_ids:
        raise InputError(f"n_splits={n_splits} exceeds the {n_ids} identities of ids; use at most {n_ids}.")
    mod_codes = None
    if modalities is not None:
        mod_codes, _ = check_labels(modalities, n, "modalities")
    if cameras is not None:
        check_labels(cameras, n, "cameras")
    if methods is None:
        methods = ("vanilla", "modality") if mod_codes is not None and mod_codes.max() >= 1 else ("vanilla",)
    methods = [PARAMS["method"](m) for m in ([methods] if isinstance(methods, str) else methods)]
    if not methods or "auto" in methods:
        raise InputError("methods must list explicit Jaccard methods (vanilla, modality, ...), not 'auto'.")
    k1s = _grid(k1s, "k1s", lambda v: PARAMS["k1"].number.check(v, "k1s"))
    eps_values = _grid(eps, "eps", lambda v: parse_eps(v, "eps"))
    min_samples = PARAMS["min_samples"](min_samples)
    fold = identity_folds(id_codes, n_ids, n_splits, seed)
    splits = [np.flatnonzero(fold != f) for f in range(n_splits)]  # each split: every identity but one fold's
    scores = {}
    for s, rows in enumerate(splits):
        truth = id_codes[rows]
        sub_mod = mod_codes[rows] if mod_codes is not None else None
        sub_cam = np.asarray(cameras)[rows] if cameras is not None else None
        for method in methods:
            M = int(sub_mod.max()) + 1 if sub_mod is not None and method in ("modality", "modality-camera") else 1
            for k1 in k1s:
                k2 = auto_k2(k1, method, M)
                try:
                    D = jaccard_distance(X[rows], modalities=sub_mod, cameras=sub_cam, method=method, k1=k1, k2=k2,
                                         knn=knn, n_jobs=n_jobs, progress=False)
                except InputError as exc:
                    logger.info("select_clustering: split %d, method=%s, k1=%d skipped: %s", s, method, k1, exc)
                    continue
                for e in eps_values:
                    value = (auto_eps(D, min_samples=min_samples, giant_share=GIANT_SHARE, noise_share=NOISE_SHARE)
                             if is_auto(e) else e)
                    labels = density_labels(D, eps=value, min_samples=min_samples, algorithm="dbscan")
                    ok = labels >= 0
                    largest = float(np.bincount(labels[ok]).max() / labels.size) if ok.any() else 0.0
                    noise = float(1.0 - ok.mean())
                    degenerate = float(largest > GIANT_SHARE or noise >= NOISE_SHARE)
                    scores.setdefault((method, k1, k2, e), []).append(
                        (_ari_singletons(truth, labels), largest, noise, degenerate))
    if not scores:
        raise InputError("select_clustering: no setting of the grid fits the splits' rows (k1 too large for them?).")
    full = max(len(v) for v in scores.values())
    table = []
    for (method, k1, k2, e), vals in scores.items():
        a = np.array(vals)
        table.append({"method": method, "k1": int(k1), "k2": int(k2), "eps": e,
                      "ari_mean": round(float(a[:, 0].mean()), 4), "ari_std": round(float(a[:, 0].std()), 4),
                      "largest_share_mean": round(float(a[:, 1].mean()), 4),
                      "noise_share_mean": round(float(a[:, 2].mean()), 4),
                      "degenerate_splits": int(a[:, 3].sum()), "n_splits": int(len(vals))})
    # ranked after the others: a setting that could not run on every split, or whose clustering of a split
    # degenerates (a giant cluster or nearly all noise, as xmrank.cluster warns; it may score well on a few
    # identities and collapse on the next set)
    table.sort(key=lambda r: (r["n_splits"] < full, r["degenerate_splits"] > 0, -r["ari_mean"], r["ari_std"]))
    best = table[0]
    chosen = {"method": best["method"], "k1": best["k1"], "k2": best["k2"], "eps": best["eps"],
              "min_samples": min_samples}
    logger.info("select_clustering chose %s: ARI %.3f +- %.3f over %d identity splits (%d settings tried)", chosen,
                best["ari_mean"], best["ari_std"], best["n_splits"], len(table))
    return (chosen, table) if return_table else chosen


def _check_ids(ids, n):
    if ids is None:
        raise InputError("ids is required: one identity label per row of features.")
    try:
        length = len(ids)
    except TypeError:
        raise InputError(f"ids must be an array of one identity label per row; got {plain(ids)}.") from None
    if length != n:
        raise InputError(f"ids has {length} labels but features has {n} rows; give one identity per row.")
    check_label_values(ids, "ids", n)
    return check_labels(ids, n, "ids")


def _grid(values, name, check):
    if isinstance(values, (str, bytes)) or np.isscalar(values):
        values = [values]
    try:
        values = list(values)
    except TypeError:
        raise InputError(f"{name} must be a list of values; got {plain(values)}.") from None
    if not values:
        raise InputError(f"{name} must hold at least one value.")
    out = []
    for v in values:
        v = check(v)
        if v not in out:
            out.append(v)
    return out
