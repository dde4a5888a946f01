"""Clustering quality against ground-truth identities, with modality-aware pair recall.

Every pair count comes from contingency tables (counts per predicted
cluster x identity, and per cluster x identity x modality), so scoring is
O(N log N) and never enumerates pairs.

Noise (label -1) scoring
------------------------
scikit-learn's ARI/NMI read -1 as an ordinary label, i.e. they score the
clustering as if all noise rows had been put in *one big cluster*: every
same-identity pair of noise rows counts as a hit and every other pair of
noise rows as a false merge, so the score depends on how the discarded
rows happen to be spread over identities. DBSCAN means the opposite: a
noise row belongs with nobody (and the training pipelines give it no
pseudo label). xmrank therefore scores noise as **singletons** by default
(``noise="singletons"``): each noise row is a cluster of its own, paired
with nobody, so it adds no pair to the scores, right or wrong.
``noise="cluster"`` reproduces scikit-learn's reading,
for comparison with numbers computed that way. The two agree when there
is little noise.
"""

from __future__ import annotations

import numpy as np

from .._params import DEFAULTS as _D
from .._params import NOISE, PARAMS
from .._validation import InputError, check_cluster_labels, check_label_values

__all__ = ["cluster_scores", "NOISE_MODES"]

#: How label -1 is scored: each noise row alone (default) or all noise rows as one cluster (declared as
#: :data:`xmrank._params.NOISE`).
NOISE_MODES = NOISE


def _pairs(counts) -> int:
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _group_counts(*codes) -> np.ndarray:
    """Counts of each distinct tuple of codes (all non-negative int64 arrays of equal length)."""
    key = np.zeros(codes[0].shape[0], dtype=np.int64)
    for c in codes:
        key = key * (int(c.max()) + 1 if c.size else 1) + c
    return np.unique(key, return_counts=True)[1]


def _cross_pairs(*group_codes, modality):
    """Pairs within each group whose two rows have different modalities."""
    return _pairs(_group_counts(*group_codes)) - _pairs(_group_counts(*group_codes, modality))


def _check_pred(labels_pred, n):
    return check_cluster_labels(labels_pred, "labels_pred", n, what="row")


def cluster_scores(labels_true, labels_pred, *, modalities=None, noise: str = _D["noise"]) -> dict:
    """Score a clustering against identities: ARI, NMI, pairwise P/R/F, over-clustering, modality mixing.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        Ground-truth identity per row (ints or strings).
    labels_pred : array-like of int, shape (n_samples,)
        Predicted cluster per row, -1 for noise.
    modalities : array-like of shape (n_samples,), default=None
        Modality per row; adds the modality-mixing and cross-modal scores.
    noise : {"singletons", "cluster"}, default="singletons"
        How -1 rows are scored (see the module notes): each alone, or all
        together as one cluster as scikit-learn reads them.

    Returns
    -------
    scores : dict
        ``ari``, ``nmi``;
        ``pairwise_precision``, ``pairwise_recall``, ``pairwise_f1``: over
        unordered pairs of rows, "predicted" = same cluster, "true" = same
        identity;
        ``n_clusters`` (noise excluded), ``n_identities``,
        ``over_clustering_ratio`` (= n_clusters / n_identities);
        ``noise_share``; ``noise_scoring``;
        with modalities also ``mixed_modality_cluster_share`` (clusters
        holding more than one modality, over all clusters),
        ``cross_modal_pair_recall`` (same-identity pairs of different
        modalities that share a cluster, over all such pairs),
        ``intra_modal_pair_recall`` (the same for pairs of one modality),
        and the pair totals they divide by.
        A ratio with a zero denominator is NaN.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    noise = PARAMS["noise"](noise)
    if labels_true is None:
        raise InputError("labels_true is required: one identity label per row.")
    if labels_pred is None:
        raise InputError("labels_pred is required: one cluster label per row.")
    pred = _check_pred(labels_pred, None)
    n = pred.shape[0]
    if n == 0:
        raise InputError("labels_pred is empty: expected at least one row.")
    true = check_label_values(labels_true, "labels_true", n, what="row of labels_pred")
    true = np.unique(true, return_inverse=True)[1].reshape(-1).astype(np.int64)
    is_noise = pred < 0
    clustered_ids = np.unique(pred[~is_noise])
    # Scored labels: dense codes 0..K-1 for clusters, noise per `noise`.
    scored = np.empty(n, dtype=np.int64)
    scored[~is_noise] = np.searchsorted(clustered_ids, pred[~is_noise])
    k = clustered_ids.size
    scored[is_noise] = k + (np.arange(is_noise.sum()) if noise == "singletons" else 0)

    tp = _pairs(_group_counts(scored, true))
    pred_pairs = _pairs(_group_counts(scored))
    true_pairs = _pairs(_group_counts(true))
    precision = tp / pred_pairs if pred_pairs else float("nan")
    recall = tp / true_pairs if true_pairs else float("nan")
    if np.isnan(precision) or np.isnan(recall):
        f1 = float("nan")
    else:
        f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0
    n_ids = int(true.max()) + 1
    out = {
        "ari": float(adjusted_rand_score(true, scored)),
        "nmi": float(normalized_mutual_info_score(true, scored)),
        "pairwise_precision": float(precision),
        "pairwise_recall": float(recall),
        "pairwise_f1": float(f1),
        "n_clusters": int(k),
        "n_identities": n_ids,
        "over_clustering_ratio": k / n_ids,
        "noise_share": float(is_noise.mean()),
        "noise_scoring": noise,
    }
    if modalities is not None:
        mod = check_label_values(modalities, "modalities", n, what="row of labels_pred")
        mod = np.unique(mod, return_inverse=True)[1].reshape(-1).astype(np.int64)
        if k:
            n_mod = int(mod.max()) + 1
            cluster_modality = np.unique(scored[~is_noise] * n_mod + mod[~is_noise])
            modalities_per_cluster = np.bincount(cluster_modality // n_mod, minlength=k)
            out["mixed_modality_cluster_share"] = float((modalities_per_cluster > 1).mean())
        else:
            out["mixed_modality_cluster_share"] = float("nan")
        cross_total = _cross_pairs(true, modality=mod)
        intra_total = _pairs(_group_counts(true, mod))
        cross_hit = _cross_pairs(scored, true, modality=mod)
        intra_hit = _pairs(_group_counts(scored, true, mod))
        out["cross_modal_pair_recall"] = cross_hit / cross_total if cross_total else float("nan")
        out["intra_modal_pair_recall"] = intra_hit / intra_total if intra_total else float("nan")
        out["cross_modal_identity_pairs"] = int(cross_total)
        out["intra_modal_identity_pairs"] = int(intra_total)
    return out
