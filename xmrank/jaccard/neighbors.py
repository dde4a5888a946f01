"""Neighbour lists (global, modality-balanced, camera-split) and the *neighbour sources* they are read from.

Each list function returns ``(scores, indices)`` arrays with one row per
input row, sorted nearest first (decreasing score), with indices into the
full row set. The Jaccard methods differ only in which of these lists they
build (:mod:`xmrank.jaccard.plan`).

Neighbour sources
-----------------
The planners never read features or distances themselves: they ask a
*neighbour source* (:class:`NeighbourSource`), an object with

- ``n``: the number of rows;
- ``ranked(k, *, rows=None, cols=None, k_read=1)``: ``(scores, indices)``,
  each ``(len(rows), k)``: the ``k`` nearest of ``cols`` (default every
  row) to each of ``rows`` (default every row), nearest first, ``indices``
  into the full row set and ``scores`` larger for nearer rows, ties in
  the source's own order. ``k_read``: leading columns the Jaccard distance
  reads whether reciprocal or not (for the calibration of ``knn="ann"``);
- ``ranked_groups(codes, n_groups, k, *, k_read=1)``: for each group ``g``,
  ``ranked(k, cols=rows of group g)`` for every row (searched together where
  the engine can);
- ``softmax_weights(indptr, indices, rank, scores)``: the weights stage,
  ``V[i, j] = softmax_{j in E_i}(-d²(i, j))`` over CSR sets ``E_i`` (the
  scores of the plan's lists are reused where the source can).

Three sources implement it:

- :class:`FeatureNeighbours`: kNN over features (scores: inner products;
  any engine of :func:`xmrank.knn.knn_search`, CPU or GPU; ``d² = 2 − 2 x·y``);
- :class:`xmrank.retrieval._distances.DistanceBlocks`: the blocks of a
  precomputed (query + gallery)² distance matrix, read a block of rows at a
  time (scores: ``−float32(d²)``; ``d²`` divided by a per-row scale, 1
  except in torchreid's script).

- :class:`SharedNeighbours`: any source whose searches are kept and served
  again as prefixes (the nearest ``k`` of a search at ``k_max >= k`` are its
  first ``k`` columns): the Jaccard distances of several list lengths
  (``cluster(k1="auto")`` tries four) share one search, at the longest.

So the four planners (vanilla, modality, camera, modality-camera) are
written once, and re-ranking from precomputed distances runs the same
planners and the same stages (:func:`xmrank.jaccard.stages.run_stages`) as
everything else.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..backend import resolve_device, resolve_knn, to_device
from ..knn import knn_search

__all__ = ["NeighbourSource", "FeatureNeighbours", "SharedNeighbours", "as_source", "global_lists", "per_group_lists", "merge_lists",
           "camera_lists"]


@runtime_checkable
class NeighbourSource(Protocol):
    """What the planners and the weights stage read rows through (see the module docstring)."""

    n: int

    def ranked(self, k: int, *, rows=None, cols=None, k_read: int = 1):
        """``(scores, indices)``, each ``(len(rows), k)``: the ``k`` nearest of ``cols`` to each of ``rows``."""

    def ranked_groups(self, codes, n_groups: int, k: int, *, k_read: int = 1) -> list:
        """For each group: ``ranked(k, cols=np.flatnonzero(codes == g))``, a list of ``(scores, indices)``."""

    def softmax_weights(self, indptr, indices, rank, scores):
        """The float32 weights ``V`` on the CSR structure ``(indptr, indices)``."""


class FeatureNeighbours:
    """The neighbour source over a feature matrix: kNN search by inner product.

    Parameters
    ----------
    X : array of float32, shape (n_samples, n_features)
        Checked features (numpy, or the device's array type).
    knn : str, default="auto"
        Engine of :func:`xmrank.knn.knn_search`.
    device : str, default="cpu"
        Resolved device of the search.
    """

    def __init__(self, X, *, knn: str = "auto", device: str = "cpu"):
        self.X = X
        self.knn = knn
        self.device = device

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    def ranked(self, k: int, *, rows=None, cols=None, k_read: int = 1):
        """``(inner products, indices)`` of the ``k`` nearest of ``cols`` to each of ``rows``.

        Every row against every row: :func:`global_lists` (the calibrated
        search of ``knn="ann"``); otherwise one :func:`xmrank.knn.knn_search`.
        """
        if rows is None and cols is None:
            return global_lists(self.X, k, knn=self.knn, device=self.device, k_read=k_read)
        X = self.X
        queries = X if rows is None else X[rows]
        sims, local = knn_search(queries, X if cols is None else X[cols], k, knn=self.knn, device=self.device)
        return sims, (local if cols is None else np.asarray(cols)[local])

    def ranked_groups(self, codes, n_groups: int, k: int, *, k_read: int = 1) -> list:
        """:func:`per_group_lists` of the features."""
        return per_group_lists(self.X, codes, n_groups, k, knn=self.knn, device=self.device, k_read=k_read)

    def softmax_weights(self, indptr, indices, rank, scores):
        """:func:`xmrank.jaccard.kernels.softmax_weights` on a host copy of the features (``d² = 2 − 2 x·y``)."""
        from .kernels import softmax_weights

        return softmax_weights(to_device(self.X, "cpu"), indptr, indices, rank, scores)


class SharedNeighbours:
    """A neighbour source that searches once per kind of list and serves shorter lists as prefixes.

    The first ``ranked(k, cols=...)`` (every row as a query) or
    ``ranked_groups(codes, n_groups, k)`` of a kind searches ``source`` and
    keeps the lists; a later call of the same kind with ``k`` no longer than
    the kept lists returns their first ``k`` columns, with no search. For an
    exact engine that is the search at ``k`` itself (up to the order of
    exactly tied scores). A longer request searches again and keeps the
    longer lists, so the longest request should come first
    (``cluster(k1="auto")`` computes its candidates longest first).
    ``searches`` counts the searches made. Calls with ``rows`` are passed
    through (CA-Jaccard's per-camera lists; ``k1="auto"`` does not apply to
    it).

    With ``knn="ann"`` the calibration reads the longest list's
    ``k_read``: the shorter lists are prefixes of that calibrated search,
    not each calibrated on its own.

    Parameters
    ----------
    source : NeighbourSource
        Usually a :class:`FeatureNeighbours`.
    """

    def __init__(self, source):
        self.source = source
        self._kept = {}
        self.searches = 0

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.source.n)

    def _served(self, key, k, search):
        kept = self._kept.get(key)
        if kept is None or kept[0] < k:
            self.searches += 1
            kept = (k, search())
            self._kept[key] = kept
        return kept[1]

    def ranked(self, k: int, *, rows=None, cols=None, k_read: int = 1):
        """The source's ``ranked``, served as a prefix of the longest kept search of these ``cols``."""
        if rows is not None:
            return self.source.ranked(k, rows=rows, cols=cols, k_read=k_read)
        key = ("ranked", None if cols is None else np.asarray(cols).tobytes())
        sims, idx = self._served(key, k, lambda: self.source.ranked(k, cols=cols, k_read=k_read))
        return _prefix(sims, k), _prefix(idx, k)

    def ranked_groups(self, codes, n_groups: int, k: int, *, k_read: int = 1) -> list:
        """The source's ``ranked_groups``, each group's lists served as prefixes of the longest kept search."""
        key = ("groups", int(n_groups), np.asarray(codes).tobytes())
        lists = self._served(key, k, lambda: self.source.ranked_groups(codes, n_groups, k, k_read=k_read))
        return [(_prefix(s, k), _prefix(i, k)) for s, i in lists]

    def softmax_weights(self, indptr, indices, rank, scores):
        """The source's weights stage."""
        return self.source.softmax_weights(indptr, indices, rank, scores)


def _prefix(a, k):
    """The first ``k`` columns of ``a``, C-contiguous (the array itself where it has ``k``)."""
    return a if a.shape[1] == k else np.ascontiguousarray(a[:, :k])


def as_source(X, *, knn: str = "auto", device: str = "cpu"):
    """``X`` itself where it is a neighbour source, else :class:`FeatureNeighbours` over the features ``X``."""
    if isinstance(X, NeighbourSource):
        return X
    return FeatureNeighbours(X, knn=knn, device=device)


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


def camera_lists(source, codes: np.ndarray, n_groups: int, k_intra: int, k_inter: int):
    """Same-camera and other-camera neighbour lists (CA-Jaccard's CKRNN lists) of a neighbour source.

    Parameters
    ----------
    source : NeighbourSource
    codes : ndarray of int, shape (n,)
        Camera codes ``0..n_groups-1``.
    n_groups : int
    k_intra, k_inter : int

    Returns
    -------
    intra : (scores, indices), each (N, k_intra)
        Neighbours among rows of the same camera (self first for unit rows).
    inter : (scores, indices), each (N, k_inter)
        Neighbours among rows of every other camera.
    """
    n = source.n
    intra_s = np.empty((n, k_intra), np.float32)
    intra_i = np.empty((n, k_intra), np.int64)
    inter_s = np.empty((n, k_inter), np.float32)
    inter_i = np.empty((n, k_inter), np.int64)
    for g in range(n_groups):
        rows = np.flatnonzero(codes == g)
        others = np.flatnonzero(codes != g)
        intra_s[rows], intra_i[rows] = source.ranked(k_intra, rows=rows, cols=rows)
        inter_s[rows], inter_i[rows] = source.ranked(k_inter, rows=rows, cols=others)
    return (intra_s, intra_i), (inter_s, inter_i)
