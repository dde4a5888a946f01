"""Exact inner-product search: faiss ``IndexFlatIP`` candidates on the CPU, re-scored exactly.

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
    import faiss

    Q = np.ascontiguousarray(queries, dtype=np.float32)
    Y = np.ascontiguousarray(database, dtype=np.float32)
    index = faiss.IndexFlatIP(Y.shape[1])
    index.add(Y)

    def candidates(rows, kk):
        return index.search(Q[rows] if rows.size < Q.shape[0] else Q, kk)

    return exact_top_k(Q, Y, k, candidates, margin=margin)
