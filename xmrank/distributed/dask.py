"""The Jaccard pipeline on a ``dask.distributed`` cluster: the dask kNN engine plus a dask min-sum executor.

Two stages dominate the cost, and both run as blocks of rows on the workers:

1. the kNN search: ``knn="dask"`` (:mod:`xmrank.knn.dask_engine`), query
   blocks against a database scattered once to every worker;
2. the min-sum Jaccard: :class:`DaskExecutor` runs row blocks of
   :func:`xmrank.jaccard.blocks.minsum_rows` against ``V'`` (CSR and CSC
   arrays) scattered once to every worker.

Everything else is :func:`xmrank.jaccard_distance` itself (the same checks,
plan and stages, on the client), so the result is the single-machine
result. Scheduling, data movement and fault tolerance are dask's.

Workers need xmrank (and faiss for the faiss engines) installed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numba
import numpy as np

from .._validation import InputError, check_int, check_n_jobs, check_option
from ..jaccard import blocks, jaccard_distance
from ..jaccard.stages import NumbaExecutor
from ..knn.dask_engine import BLOCK_ENGINES, _blocks, _client, _gather, _n_threads, dask_knn, knn_search_blocks

logger = logging.getLogger(__name__)

__all__ = ["jaccard_distance_dask", "DaskExecutor", "knn_search_blocks", "dask_knn"]


@dataclass
class _Parts:
    """CSR + CSC arrays of V', shipped once to every worker (a wrapper so dask scatters it whole)."""

    arrays: tuple


def _minsum_block(parts, lo, hi, max_distance, n_threads):
    """Worker task: the upper-triangle pairs of rows ``lo <= i < hi``."""
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    rows, cols, vals = blocks.minsum_rows(parts.arrays, lo, hi, max_distance=max_distance, n_threads=n_threads)
    small = np.int32 if parts.arrays[0] < np.iinfo(np.int32).max else np.int64
    return rows.astype(small), cols.astype(small), vals


class DaskExecutor(NumbaExecutor):
    """The pipeline stages on the client's CPU, with the min-sum rows computed as dask tasks.

    Parameters
    ----------
    client : distributed.Client
    block_rows : int, default=None
        Rows per task; None makes about four tasks per worker thread.
    threads_per_task : int, default=1
        Threads of each min-sum task.
    n_threads : int, default=1
        Threads of the stages that run on the client.
    progress : bool, default=None
        Progress bar of the tasks; None shows it only on a terminal.
    """

    name = "dask"

    def __init__(self, client, *, block_rows: int | None = None, threads_per_task: int = 1, n_threads: int = 1,
                 progress=None):
        super().__init__(n_threads)
        self.client = client
        self.block_rows = block_rows
        self.threads_per_task = threads_per_task
        self.progress = progress

    def minsum(self, Vq, max_distance):
        t0 = time.perf_counter()
        client = self.client
        parts = blocks.prepare(Vq)
        n = parts[0]
        nonempty = np.diff(parts[1]) > 0
        shipped = client.scatter(_Parts(parts), broadcast=True, hash=False)
        del parts
        ranges = _blocks(n, self.block_rows, _n_threads(client))
        futures = [client.submit(_minsum_block, shipped, lo, hi, max_distance, self.threads_per_task, pure=False)
                   for lo, hi in ranges]
        pieces = _gather(client, futures, "min-sum[dask]", self.progress)
        del futures, shipped
        out = blocks.assemble(n, pieces, nonempty)
        logger.debug("min-sum on dask: %d rows in %d tasks, %.2fs", n, len(ranges), time.perf_counter() - t0)
        return out


def jaccard_distance_dask(features, *, client=None, knn: str = "auto", block_rows: int | None = None,
                          threads_per_task: int = 1, progress: bool | None = None, **options):
    """:func:`xmrank.jaccard_distance` with the kNN search and the Jaccard rows computed on a dask cluster.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    client : distributed.Client, default=None
        The cluster to use; None takes dask's current client.
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
    **options
        Any other keyword argument of :func:`xmrank.jaccard_distance`
        (``modalities``, ``method``, ``k1``, ``max_distance``, ``n_jobs`` for
        the stages on the client, ...), with the same meaning; the result is
        the same matrix.

    Returns
    -------
    distance : scipy.sparse.csr_matrix or ndarray of float32, shape (n_samples, n_samples)
        On the client. With large N pass ``max_distance`` (e.g. the DBSCAN
        ``eps``): it keeps the result small.

    Examples
    --------
    >>> from distributed import Client, LocalCluster                  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
    >>> D = jaccard_distance_dask(X, client=client, modalities=m, max_distance=0.6)  # doctest: +SKIP
    """
    check_option(knn, "knn backend", BLOCK_ENGINES)
    if block_rows is not None:
        block_rows = check_int(block_rows, "block_rows", minimum=1)
    threads_per_task = check_int(threads_per_task, "threads_per_task", minimum=1)
    for name in ("device", "executor"):
        if name in options:
            raise InputError(f"jaccard_distance_dask runs on the cluster's CPUs; it takes no {name}= argument.")
    client = _client(client)
    executor = DaskExecutor(client, block_rows=block_rows, threads_per_task=threads_per_task,
                            n_threads=check_n_jobs(options.get("n_jobs", -1)), progress=progress)
    with dask_knn(client, knn=knn, block_rows=block_rows, progress=progress):
        return jaccard_distance(features, knn="dask", progress=progress, executor=executor, **options)
