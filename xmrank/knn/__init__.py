"""Exact k-nearest-neighbour search by inner product.

:func:`knn_search` is the single entry point; the engines live in their own
modules and are chosen by :func:`xmrank.backend.resolve_knn`.
"""

from __future__ import annotations

import numpy as np

from ..backend import resolve_knn

__all__ = ["knn_search"]


def knn_search(queries: np.ndarray, database: np.ndarray, k: int, *, knn: str = "auto", device: str = "cpu"):
    """Top-``k`` rows of ``database`` by inner product for each query row.

    Parameters
    ----------
    queries : ndarray of float32, shape (n_queries, d)
    database : ndarray of float32, shape (n_database, d)
    k : int
        Number of neighbours, at most ``n_database``.
    knn : str, default="auto"
        Engine name, see :func:`xmrank.backend.resolve_knn`.
    device : str, default="cpu"

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
        Sorted in decreasing order along each row.
    indices : ndarray of int64, shape (n_queries, k)
        Row indices into ``database``.
    """
    engine = resolve_knn(knn, device)
    if k > database.shape[0]:
        raise ValueError(f"k={k} exceeds the {database.shape[0]} database rows")
    if engine == "faiss":
        from .exact_faiss import search
    else:
        from .exact_numpy import search
    return search(queries, database, k)
