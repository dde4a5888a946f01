"""A short summary of a clustering: clusters, noise, modality mixing."""

from __future__ import annotations

import numpy as np

from .._validation import check_cluster_labels, check_labels

__all__ = ["cluster_summary"]


def cluster_summary(labels, modalities=None) -> dict:
    """Count clusters and noise, and the share of clusters that mix modalities.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Cluster labels, -1 for noise.
    modalities : array-like, shape (n,), default=None
        Modality label of each row (integers or strings, no missing values).

    Returns
    -------
    summary : dict
        ``n_clusters``, ``n_noise``, ``noise_share`` and, with modalities,
        ``mixed_share`` (clusters holding more than one modality, over all
        clusters) and ``n_mixed``.
    """
    labels = check_cluster_labels(labels, "labels")
    n = labels.shape[0]
    clustered = labels >= 0
    ids = np.unique(labels[clustered])
    out = {
        "n_samples": int(n),
        "n_clusters": int(ids.size),
        "n_noise": int((~clustered).sum()),
        "noise_share": float((~clustered).mean()) if n else 0.0,
    }
    if modalities is not None:
        mod_codes, _ = check_labels(modalities, n, "modalities")
        pairs = np.unique(np.stack([labels[clustered], mod_codes.reshape(-1)[clustered]]), axis=1)
        per_cluster = np.unique(pairs[0], return_counts=True)[1] if pairs.size else np.zeros(0)
        n_mixed = int((per_cluster > 1).sum())
        out["n_mixed"] = n_mixed
        out["mixed_share"] = n_mixed / ids.size if ids.size else 0.0
    return out
