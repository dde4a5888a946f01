"""Neighbour make-up: how many of a row's k1 neighbours are of another modality.

Plain kNN lists on cross-modal embeddings are almost entirely of the row's
own modality (the bias the modality-aware Jaccard distance corrects); the
modality-aware lists take ``k1 // M`` neighbours from each of the ``M``
modalities. The lists measured here are exactly the ones
:func:`xmrank.jaccard_distance` builds for ``method="vanilla"`` and
``method="modality"``.
"""

from __future__ import annotations

import numpy as np

from ..jaccard import neighbors
from .._validation import InputError, check_features, check_int, check_labels

__all__ = ["neighbor_lists", "cross_modal_share", "neighbor_makeup", "LIST_KINDS"]

#: Neighbour-list kinds: plain global kNN, and modality-balanced lists.
LIST_KINDS = ("knn", "modality")


def neighbor_lists(X: np.ndarray, codes: np.ndarray, k1: int, *, kind: str, knn: str = "auto"):
    """The neighbour indices (N, width) that the Jaccard ``kind`` builds, self included.

    ``kind="knn"``: the ``k1`` most similar rows; ``kind="modality"``: the
    ``k1 // M`` most similar rows of each of the ``M`` modalities, merged.
    ``X`` and ``codes`` must already be validated (float32, codes 0..M-1).
    """
    if kind == "knn":
        return neighbors.global_lists(X, k1, knn=knn)[1]
    n_mod = int(codes.max()) + 1
    lists = neighbors.per_group_lists(X, codes, n_mod, k1 // n_mod, knn=knn)
    return neighbors.merge_lists(lists)[1]


def cross_modal_share(indices: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row, the share of its neighbours (itself excluded) whose modality differs from its own.

    Parameters
    ----------
    indices : ndarray of int, shape (N, k)
        Neighbour lists, one row per item (``indices[i]`` may contain ``i``).
    codes : ndarray of int, shape (N,)
        Modality code per row.

    Returns
    -------
    share : ndarray of float64, shape (N,)
        NaN for a row whose list holds only itself.
    """
    rows = np.arange(indices.shape[0])[:, None]
    others = indices != rows
    cross = (codes[indices] != codes[:, None]) & others
    n_others = others.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_others > 0, cross.sum(axis=1) / np.maximum(n_others, 1), np.nan)


def _summary(share, codes, classes, same_id=None, bins=10):
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = {
        "cross_modal_share_mean": float(np.nanmean(share)),
        "cross_modal_share_median": float(np.nanmedian(share)),
        "rows_without_cross_modal_neighbour": float(np.mean(share == 0)),
        "cross_modal_share_by_modality": {
            str(c): float(np.nanmean(share[codes == g])) for g, c in enumerate(classes)
        },
        "cross_modal_share_histogram": {
            "edges": edges.tolist(),
            "counts": np.histogram(share[~np.isnan(share)], bins=edges)[0].tolist(),
        },
    }
    if same_id is not None:
        out["same_identity_share_mean"] = float(np.nanmean(same_id))
    return out


def neighbor_makeup(features, modalities, *, k1: int = 30, labels=None, knn: str = "auto", return_rows: bool = False):
    """Share of cross-modal rows among each row's ``k1`` neighbours, for plain and modality-aware lists.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Embeddings (L2-normalised rows, as for :func:`xmrank.jaccard_distance`).
    modalities : array-like of shape (n_samples,)
        Modality label per row; at least two distinct values.
    k1 : int, default=30
        List length, as ``k1`` of :func:`xmrank.jaccard_distance`.
    labels : array-like of shape (n_samples,), default=None
        Identity per row; adds ``same_identity_share_mean``, the share of
        neighbours (self excluded) of the row's own identity.
    knn : str, default="auto"
        Exact kNN engine, see :func:`xmrank.backend.resolve_knn`.
    return_rows : bool, default=False
        Also return the per-row shares.

    Returns
    -------
    makeup : dict
        ``{"knn": {...}, "modality": {...}, "uniform_cross_modal_share": float}``;
        each list kind holds ``cross_modal_share_mean`` / ``_median``, the
        share of rows with no cross-modal neighbour, the mean per modality
        and ``cross_modal_share_histogram`` (10 bins over [0, 1]). ``uniform_cross_modal_share`` is the share expected if
        neighbours were drawn at random (the other modalities' share of the
        other rows), the reference for an unbiased embedding.
    rows : dict of ndarray, shape (n_samples,)
        Per-row cross-modal share of each list kind (only with ``return_rows``).

    Notes
    -----
    The row itself is left out of every share; with two modalities the
    modality-aware lists therefore score ``(k1/2) / (k1 - 1)``, slightly
    above 0.5, by construction.
    """
    X = check_features(features)
    n = X.shape[0]
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, n, "modalities")
    if classes.size < 2:
        raise InputError("modalities holds a single modality; the neighbour make-up needs at least two.")
    ids = None if labels is None else check_labels(labels, n, "labels")[0]
    sizes = np.bincount(codes)
    k1 = check_int(k1, "k1", minimum=classes.size)
    if k1 > n:
        raise InputError(f"k1={k1} must not exceed the number of rows ({n}).")
    if k1 // classes.size > sizes.min():
        raise InputError(
            f"k1={k1} asks each modality for {k1 // classes.size} neighbours, but the smallest has {sizes.min()} rows."
        )
    out = {"k1": k1, "uniform_cross_modal_share": float(np.mean((n - sizes[codes]) / (n - 1)))}
    rows = {}
    for kind in LIST_KINDS:
        idx = neighbor_lists(X, codes, k1, kind=kind, knn=knn)
        share = cross_modal_share(idx, codes)
        same_id = cross_modal_share(idx, ids) if ids is not None else None
        if same_id is not None:
            same_id = 1.0 - same_id
        out[kind] = _summary(share, codes, classes, same_id)
        rows[kind] = share
    return (out, rows) if return_rows else out
