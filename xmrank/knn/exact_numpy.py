"""Exact inner-product search by blocked numpy matrix products, re-scored exactly.

Never holds more than ``block_rows x n_database`` similarities at once. The
float32 products propose ``k + MARGIN`` candidates per row, which
:func:`xmrank.knn.rescore.exact_top_k` re-scores (float64 inner products
rounded to float32) and orders by score, decreasing, ties by the smaller
database index: the lists of ``knn="faiss"`` and ``knn="bf16"``. It is the
engine of installs without faiss (where faiss is installed, ``knn="faiss"``
proposes the candidates with ``faiss.knn`` instead of these products).
"""

from __future__ import annotations

import numpy as np

from .._progress import block_progress
from .rescore import MARGIN, exact_top_k

#: Upper bound on the similarity block held at once, in float32 entries.
_BLOCK_ENTRIES = 1 << 25


def search(queries: np.ndarray, database: np.ndarray, k: int, *, margin: int = MARGIN):
    Q = np.ascontiguousarray(queries, dtype=np.float32)
    Y = np.ascontiguousarray(database, dtype=np.float32)
    nd = Y.shape[0]
    rows = max(1, _BLOCK_ENTRIES // max(nd, 1))
    dbT = np.ascontiguousarray(Y.T)

    def candidates(which, kk):
        out_s = np.empty((which.size, kk), dtype=np.float32)
        out_i = np.empty((which.size, kk), dtype=np.int64)
        n_blocks = -(-which.size // rows)
        # a line per block (about every 30 s) when a progress report is on and stderr is no terminal
        with block_progress(total=n_blocks if n_blocks > 1 else None, desc="knn[numpy] blocks") as bar:
            for start in range(0, which.size, rows):
                stop = min(which.size, start + rows)
                block = Q[which[start:stop]] @ dbT
                part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
                out_i[start:stop] = part
                out_s[start:stop] = np.take_along_axis(block, part, axis=1)
                bar.update(1)
        return out_s, out_i

    return exact_top_k(Q, Y, k, candidates, margin=margin)
