"""Exact inner-product search with faiss ``IndexFlatIP`` on the CPU."""

from __future__ import annotations

import numpy as np


def search(queries: np.ndarray, database: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatIP(database.shape[1])
    index.add(np.ascontiguousarray(database, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return sims, idx.astype(np.int64, copy=False)
