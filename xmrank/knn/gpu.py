"""Exact and approximate inner-product search on a CUDA GPU.

Engines (chosen by :func:`xmrank.backend.resolve_knn`):

- ``"faiss-gpu"``: faiss' brute-force ``knn_gpu`` (no index is built);
- ``"ann-gpu"``: faiss ``GpuIndexIVFFlat`` with the CPU engine's calibration
  (:mod:`xmrank.knn.ann`), cells and ``nprobe`` chosen the same way;
- ``"cupy"``: :func:`blocked_topk` with ``xp=cupy``, blocked matrix products
  and a partial sort.

:func:`blocked_topk` is written for any array module and is tested with numpy;
only :func:`search`'s device glue needs a GPU. faiss' GPU resources (its
memory pools and streams) are made once per device and process
(:func:`gpu_resources`) and kept across calls.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["blocked_topk", "search", "gpu_resources"]

_RESOURCES: dict = {}
_RESOURCES_LOCK = threading.Lock()

#: Similarities held at once by :func:`blocked_topk`, in entries.
BLOCK_ENTRIES = 1 << 27


def blocked_topk(queries, database, k: int, *, xp=np, block_entries: int = BLOCK_ENTRIES):
    """Exact top-``k`` by inner product with blocked matrix products, in array module ``xp``.

    Ties are broken by the smaller database index, as in
    :mod:`xmrank.knn.exact_numpy`.

    Returns
    -------
    similarities : xp array of float32, shape (n_queries, k)
    indices : xp array of int64, shape (n_queries, k)
    """
    nq, nd = queries.shape[0], database.shape[0]
    sims_out = xp.empty((nq, k), dtype=np.float32)
    idx_out = xp.empty((nq, k), dtype=np.int64)
    rows = max(1, block_entries // max(nd, 1))
    dbT = xp.ascontiguousarray(database.T)
    for start in range(0, nq, rows):
        stop = min(nq, start + rows)
        block = queries[start:stop] @ dbT
        if k < nd:
            # the k-th largest value t: every column above it, and the first (by index) of those equal to it
            t = -xp.partition(-block, k - 1, axis=1)[:, k - 1:k]
            above = block > t
            tied = block == t
            room = k - above.sum(axis=1, keepdims=True)
            keep = above | (tied & (xp.cumsum(tied, axis=1, dtype=np.int32) <= room))
            part = xp.nonzero(keep)[1].reshape(stop - start, k)
        else:
            part = xp.broadcast_to(xp.arange(nd), (stop - start, nd)).copy()
        local = xp.arange(stop - start)[:, None]
        vals = block[local, part]
        # order by (-similarity, index): sort by index, then stably by similarity
        by_index = xp.argsort(part, axis=1)
        part = part[local, by_index]
        vals = vals[local, by_index]
        by_sim = _stable_argsort_rows(-vals, xp)
        idx_out[start:stop] = part[local, by_sim]
        sims_out[start:stop] = vals[local, by_sim]
    return sims_out, idx_out


def _stable_argsort_rows(a, xp):
    return np.argsort(a, axis=1, kind="stable") if xp is np else xp.argsort(a, axis=1)


def search(queries, database, k: int, *, engine: str):
    """Search on the GPU; returns host numpy arrays ``(similarities, indices)``."""
    import cupy

    from ..backend import to_device

    q = cupy.ascontiguousarray(to_device(queries, "cuda"), dtype=cupy.float32)
    db = cupy.ascontiguousarray(to_device(database, "cuda"), dtype=cupy.float32)
    if engine == "cupy":
        sims, idx = blocked_topk(q, db, k, xp=cupy)
        return cupy.asnumpy(sims), cupy.asnumpy(idx)
    import faiss

    gpu = cupy.cuda.runtime.getDevice()  # cupy's current GPU: the one device="cuda:N" names
    res = gpu_resources(gpu)
    qh, dbh = cupy.asnumpy(q), cupy.asnumpy(db)  # faiss' python API takes host arrays
    if engine == "faiss-gpu":
        # on the current CUDA device (faiss' device=-1), which is cupy's: device= is not in every faiss release
        sims, idx = faiss.knn_gpu(res, qh, dbh, k, metric=faiss.METRIC_INNER_PRODUCT)
        return sims, idx.astype(np.int64, copy=False)
    from . import ann

    return ann.search(qh, dbh, k, place=lambda cpu_index: faiss.index_cpu_to_gpu(res, gpu, cpu_index))


def gpu_resources(device: int):
    """The faiss ``StandardGpuResources`` of GPU ``device``: made on first use, then kept for the process.

    Making one allocates its scratch memory and streams (tens of ms and
    hundreds of MB); every search on that GPU shares it. Thread-safe.
    """
    import faiss

    with _RESOURCES_LOCK:
        res = _RESOURCES.get(device)
        if res is None:
            res = _RESOURCES[device] = faiss.StandardGpuResources()
            logger.debug("faiss GPU resources made for GPU %d", device)
    return res
