"""Neighbour lists: global, modality-balanced and camera-split.

Each function returns ``(similarities, indices)`` arrays with one row per
input row, sorted by decreasing similarity, with indices into the full row
set. The Jaccard methods differ only in which of these lists they build.
"""

from __future__ import annotations

import numpy as np

from ..backend import resolve_device, resolve_knn
from ..knn import knn_search

__all__ = ["global_lists", "per_group_lists", "merge_lists", "camera_lists"]


def _reciprocal_ann(knn: str, device: str):
    """The calibrated group search of :mod:`xmrank.knn.ann_lists` for these lists, or None.

    ``knn="ann"`` on the CPU runs it here; ``knn="dask"`` inside
    ``dask_knn(knn="ann")`` calibrates here and sends the searches to the
    cluster. Other engines search list by list.
    """
    if resolve_device(device) != "cpu":
        return None
    engine = resolve_knn(knn, device)  # raises where faiss is missing
    if engine == "ann":
        from ..knn.ann_lists import search_groups

        return search_groups
    if engine == "dask":
        from ..knn import dask_engine

        if dask_engine.current_engine() == "ann":
            from functools import partial

            from ..knn.ann_lists import search_groups

            return partial(search_groups, search_index=dask_engine.index_search_blocks,
                           search_exact=dask_engine.exact_search_blocks, exact_engine=resolve_knn("auto", "cpu"))
    return None


def global_lists(X: np.ndarray, k: int, *, knn: str = "auto", device: str = "cpu", k_read: int = 1):
    """The ``k`` most similar rows of ``X`` to each row (self included).

    ``k_read``: leading columns read whether reciprocal or not (query
    expansion), for the calibration of ``knn="ann"``.
    """
    search_groups = _reciprocal_ann(knn, device)
    if search_groups is not None:
        return search_groups(X, [np.arange(X.shape[0])], k, k_read=k_read)[0]
    return knn_search(X, X, k, knn=knn, device=device)


def per_group_lists(X: np.ndarray, codes: np.ndarray, n_groups: int, k: int, *, knn="auto", device="cpu",
                    k_read: int = 1):
    """For each group ``g``: the ``k`` most similar rows *of group g* to every row.

    With ``knn="ann"`` on the CPU the lists are searched together by
    :func:`xmrank.knn.ann_lists.search_groups`, calibrated on the reciprocal
    pairs and the first ``k_read`` columns (what the Jaccard distance reads).

    Returns
    -------
    lists : list of (similarities, indices), one pair per group, each (N, k).
    """
    search_groups = _reciprocal_ann(knn, device)
    if search_groups is not None:
        groups = [np.flatnonzero(codes == g) for g in range(n_groups)]
        return search_groups(X, groups, k, k_read=k_read)
    out = []
    for g in range(n_groups):
        members = np.flatnonzero(codes == g)
        sims, local = knn_search(X, X[members], k, knn=knn, device=device)
        out.append((sims, members[local]))
    return out


def merge_lists(lists):
    """Concatenate per-group lists and sort each row by decreasing similarity.

    Ties keep the earlier group first (a stable sort).
    """
    sims = np.concatenate([s for s, _ in lists], axis=1)
    idx = np.concatenate([i for _, i in lists], axis=1)
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(idx, order, axis=1)


def camera_lists(X: np.ndarray, codes: np.ndarray, n_groups: int, k_intra: int, k_inter: int, *, knn="auto", device="cpu"):
    """Same-camera and other-camera neighbour lists (CA-Jaccard's CKRNN lists).

    Returns
    -------
    intra : (similarities, indices), each (N, k_intra)
        Neighbours among rows of the same camera (self first for unit rows).
    inter : (similarities, indices), each (N, k_inter)
        Neighbours among rows of every other camera.
    """
    n = X.shape[0]
    intra_s = np.empty((n, k_intra), np.float32)
    intra_i = np.empty((n, k_intra), np.int64)
    inter_s = np.empty((n, k_inter), np.float32)
    inter_i = np.empty((n, k_inter), np.int64)
    for g in range(n_groups):
        rows = np.flatnonzero(codes == g)
        others = np.flatnonzero(codes != g)
        s, i = knn_search(X[rows], X[rows], k_intra, knn=knn, device=device)
        intra_s[rows], intra_i[rows] = s, rows[i]
        s, i = knn_search(X[rows], X[others], k_inter, knn=knn, device=device)
        inter_s[rows], inter_i[rows] = s, others[i]
    return (intra_s, intra_i), (inter_s, inter_i)
