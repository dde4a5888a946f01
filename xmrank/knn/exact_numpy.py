"""Exact inner-product search by blocked numpy matrix products.

Never holds more than ``block_rows x n_database`` similarities at once.
Ties are broken by the smaller database index.
"""

from __future__ import annotations

import numpy as np

from .._progress import block_progress

#: Upper bound on the similarity block held at once, in float32 entries.
_BLOCK_ENTRIES = 1 << 25


def search(queries: np.ndarray, database: np.ndarray, k: int):
    nq, nd = queries.shape[0], database.shape[0]
    sims_out = np.empty((nq, k), dtype=np.float32)
    idx_out = np.empty((nq, k), dtype=np.int64)
    rows = max(1, _BLOCK_ENTRIES // max(nd, 1))
    dbT = np.ascontiguousarray(database.T)
    n_blocks = -(-nq // rows)
    # a line per block (about every 30 s) when a progress report is on and stderr is no terminal
    with block_progress(total=n_blocks if n_blocks > 1 else None, desc="knn[numpy] blocks") as bar:
        for start in range(0, nq, rows):
            stop = min(nq, start + rows)
            block = queries[start:stop] @ dbT
            if k < nd:
                part = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(nd), (stop - start, nd)).copy()
            vals = np.take_along_axis(block, part, axis=1)
            order = np.lexsort((part, -vals), axis=1)
            idx_out[start:stop] = np.take_along_axis(part, order, axis=1)
            sims_out[start:stop] = np.take_along_axis(vals, order, axis=1)
            bar.update(1)
    return sims_out, idx_out
