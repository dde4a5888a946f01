"""Exact inner-product search: faiss brute-force (``faiss.knn``) candidates on the CPU, re-scored exactly.

faiss' float32 scores depend on its thread count and BLAS blocking, and it
breaks ties by the larger index, so its own lists are not reproducible for
rows closer than its rounding (about ``d * 2**-24 |x| |y|``). Here faiss
only proposes ``k + MARGIN`` candidates per row; they are re-scored and
ordered by :func:`xmrank.knn.rescore.exact_top_k` (float64 inner products
rounded to float32, decreasing, ties by the smaller index: the lists of
``knn="numpy"`` and ``knn="bf16"``), and a row whose candidates cannot be
proven to hold its top ``k`` under faiss' error bound is searched again
with more.
"""

from __future__ import annotations

import numpy as np

from .rescore import MARGIN, exact_top_k


def search(queries: np.ndarray, database: np.ndarray, k: int, *, margin: int = MARGIN):
    """Exact top-``k`` by inner product (:func:`xmrank.knn.rescore.exact_top_k`'s rule) with faiss candidates.

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
    indices : ndarray of int64, shape (n_queries, k)
    """
    import faiss

    Q = np.ascontiguousarray(queries, dtype=np.float32)
    Y = np.ascontiguousarray(database, dtype=np.float32)

    def candidates(rows, kk):  # no index: faiss searches Y in place
        return faiss.knn(Q[rows] if rows.size < Q.shape[0] else Q, Y, kk, metric=faiss.METRIC_INNER_PRODUCT)

    return exact_top_k(Q, Y, k, candidates, margin=margin)
