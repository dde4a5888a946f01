"""The Jaccard pipeline on a ``dask.distributed`` cluster.

Two stages dominate the cost, and both run as blocks of rows on the workers:

1. the kNN search: query blocks against a database scattered once to every
   worker (exact faiss/numpy, or a faiss IVF index built and calibrated on
   the client and shipped serialised);
2. the min-sum Jaccard: row blocks of :func:`xmrank.jaccard.blocks.minsum_rows`
   against ``V'`` (CSR and CSC arrays) scattered once to every worker.

The stages between them (reciprocal sets, weights, query expansion) are
O(N k) and run on the client with the same kernels as
:func:`xmrank.jaccard_distance`, so the result is the single-machine result.
Scheduling, data movement and fault tolerance are dask's.

Workers need xmrank (and faiss for the faiss engines) installed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from .._validation import check_features, check_int, check_labels, check_option, check_real

from ..knn.dask_engine import BLOCK_ENGINES, _blocks, _client, _gather, _n_threads, dask_knn, knn_search_blocks

logger = logging.getLogger("xmrank")

__all__ = ["jaccard_distance_dask", "knn_search_blocks", "dask_knn"]


# --- min-sum blocks -----------------------------------------------------------

@dataclass
class _Parts:
    """CSR + CSC arrays of V', shipped once to every worker (a wrapper so dask scatters it whole)."""

    arrays: tuple


def _minsum_block(parts, lo, hi, max_distance, n_threads):
    """Worker task: the upper-triangle pairs of rows ``lo <= i < hi``."""
    from ..jaccard import blocks

    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    rows, cols, vals = blocks.minsum_rows(parts.arrays, lo, hi, max_distance=max_distance, n_threads=n_threads)
    small = np.int32 if parts.arrays[0] < np.iinfo(np.int32).max else np.int64
    return rows.astype(small), cols.astype(small), vals


def jaccard_distance_dask(
    features,
    *,
    client=None,
    modalities=None,
    cameras=None,
    method: str = "auto",
    k1: int = 30,
    k2: int = 6,
    k1_intra: int = 5,
    k1_inter: int = 20,
    k2_intra: int = 2,
    k2_inter: int = 4,
    self_in_k1: bool = True,
    dense: bool = False,
    max_distance: float | None = None,
    knn: str = "auto",
    block_rows: int | None = None,
    threads_per_task: int = 1,
    progress: bool | None = None,
):
    """:func:`xmrank.jaccard_distance` with the kNN search and the Jaccard rows computed on a dask cluster.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    client : distributed.Client, default=None
        The cluster to use; None takes dask's current client.
    modalities, cameras, method, k1, k2, k1_intra, k1_inter, k2_intra, k2_inter, self_in_k1, dense, max_distance
        As in :func:`xmrank.jaccard_distance`; the result is the same matrix.
    knn : {"auto", "faiss", "numpy", "ann"}, default="auto"
        Engine each worker runs on its query block ("auto": exact faiss when
        installed). "ann" builds and calibrates the IVF index on the client
        and ships it to the workers.
    block_rows : int, default=None
        Rows per task (both stages); None makes about four tasks per worker thread.
    threads_per_task : int, default=1
        Threads of each min-sum task; the default suits workers that run one
        task per thread (dask's ``nthreads``).
    progress : bool, default=None
        Progress bars; None shows them only on a terminal.

    Returns
    -------
    distance : scipy.sparse.csr_matrix or ndarray of float32, shape (n_samples, n_samples)
        On the client. With large N pass ``max_distance`` (e.g. the DBSCAN
        ``eps``): it keeps the result small.

    Examples
    --------
    >>> from distributed import Client, LocalCluster                  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    >>> D = jaccard_distance_dask(X, client=client, modalities=m, max_distance=0.6)
    """
    from ..jaccard import blocks, kernels
    from ..jaccard.distance import _PLANNERS, METHODS

    X = check_features(features)
    n = X.shape[0]
    check_option(method, "method", METHODS)
    check_option(knn, "knn backend", BLOCK_ENGINES)
    mod_codes = cam_codes = None
    if modalities is not None:
        mod_codes, _ = check_labels(modalities, n, "modalities")
    if cameras is not None:
        cam_codes, _ = check_labels(cameras, n, "cameras")
    if method == "auto":
        method = "modality" if mod_codes is not None else ("camera" if cam_codes is not None else "vanilla")
    if max_distance is not None:
        max_distance = check_real(max_distance, "max_distance", low=0.0)
    if block_rows is not None:
        block_rows = check_int(block_rows, "block_rows", minimum=1)
    threads_per_task = check_int(threads_per_task, "threads_per_task", minimum=1)
    client = _client(client)

    t0 = time.perf_counter()
    params = dict(k1=k1, k2=k2, k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
                  self_in_k1=self_in_k1, knn="dask", device="cpu")
    with dask_knn(client, engine=knn, block_rows=block_rows, progress=progress):
        plan = _PLANNERS[method](X, mod_codes, cam_codes, params)
    t_knn = time.perf_counter()
    indptr, indices = kernels.expand_lists(*plan["sets"])
    ls, li = plan["known"]
    V = sp.csr_matrix((kernels.softmax_weights(X, indptr, indices, li, ls), indices, indptr), shape=(n, n))
    Q = plan["qe"]
    Vq = V if Q is None else (Q @ V).tocsr()
    del plan, indptr, indices, V, Q
    t_local = time.perf_counter()

    parts = client.scatter(_Parts(blocks.prepare(Vq)), broadcast=True, hash=False)
    nonempty = np.diff(Vq.indptr) > 0
    del Vq
    ranges = _blocks(n, block_rows, _n_threads(client))
    futures = [client.submit(_minsum_block, parts, lo, hi, max_distance, threads_per_task, pure=False)
               for lo, hi in ranges]
    pieces = _gather(client, futures, f"jaccard[{method}, dask]", progress)
    del futures, parts
    j_ptr, j_idx, j_val = blocks.assemble(n, pieces, nonempty)
    del pieces
    logger.info("jaccard_distance_dask(method=%r, n=%d): %.2fs (kNN %.2fs, local stages %.2fs, min-sum %.2fs), "
                "%d stored pairs", method, n, time.perf_counter() - t0, t_knn - t0, t_local - t_knn,
                time.perf_counter() - t_local, len(j_val))
    if dense:
        out = np.ones((n, n), dtype=np.float32)
        out[np.repeat(np.arange(n), np.diff(j_ptr)), j_idx] = j_val
        return out
    D = sp.csr_matrix((j_val, j_idx, j_ptr), shape=(n, n))
    D.has_sorted_indices = False
    return D
