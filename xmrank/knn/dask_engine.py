"""``knn="dask"``: the exact or approximate top-k search in query blocks on a ``dask.distributed`` cluster.

The database is scattered once to every worker; each worker searches its
query blocks with exact faiss/numpy, or with a faiss IVF index built and
calibrated on the client and shipped serialised. :func:`dask_knn` routes the
searches of a ``with`` block to a client. The Jaccard stages on a cluster
(:func:`xmrank.distributed.jaccard_distance_dask`) build on this engine.

Workers need xmrank (and faiss for the faiss engines) installed.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import time
import uuid
from dataclasses import dataclass

import numpy as np

from .._progress import progress_bar
from .._validation import InputError, check_option

logger = logging.getLogger(__name__)

__all__ = ["knn_search_blocks", "index_search_blocks", "exact_search_blocks", "current_engine", "dask_knn", "BLOCK_ENGINES"]

#: Engines a worker may run for one block of queries.
BLOCK_ENGINES = ("auto", "faiss", "numpy", "ann")


@dataclass
class _Options:
    client: object
    knn: str = "auto"
    block_rows: int | None = None
    progress: bool | None = None


_OPTIONS: contextvars.ContextVar = contextvars.ContextVar("xmrank_dask_options", default=None)


@contextlib.contextmanager
def dask_knn(client=None, *, knn: str = "auto", block_rows: int | None = None, progress=None):
    """Route ``knn="dask"`` searches in this block to ``client``, each block searched with ``knn``.

    ``knn`` names the engine as ``knn=`` does everywhere else: "auto",
    "faiss", "numpy" (exact) or "ann" (the calibrated approximate search).

    Examples
    --------
    >>> with dask_knn(client, knn="ann"):                      # doctest: +SKIP
    ...     D = xmrank.jaccard_distance(X, modalities=m, knn="dask")
    """
    check_option(knn, "knn", BLOCK_ENGINES)
    token = _OPTIONS.set(_Options(_client(client), knn, block_rows, progress))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def _client(client):
    if client is not None:
        return client
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        raise InputError(
            "knn='dask' needs a dask.distributed Client: create one first (Client(address) or "
            "Client(LocalCluster())) or pass client= to jaccard_distance_dask."
        ) from None


def _n_threads(client) -> int:
    """Worker threads in the cluster (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def _blocks(n: int, block_rows: int | None, n_threads: int):
    """Row ranges: about four blocks per worker thread unless ``block_rows`` is given."""
    if block_rows is None:
        block_rows = max(256, math.ceil(n / (4 * n_threads)))
    step = max(1, int(block_rows))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def _gather(client, futures, desc, show):
    """Results of ``futures`` in submission order, with a progress bar as they complete."""
    from distributed import as_completed

    with client.as_current(), progress_bar(total=len(futures), desc=desc, show=show) as bar:
        for _ in as_completed(futures):
            bar.update(1)
    return client.gather(futures)


# --- kNN blocks ---------------------------------------------------------------

def _exact_block(queries, database, k, engine):
    """Worker task: exact top-k of one query block."""
    if engine == "faiss":
        from .exact_faiss import search
    else:
        from .exact_numpy import search
    return search(queries, database, k)


_INDEX_CACHE: dict = {}


def _ann_block(queries, index_bytes, key, nprobe, k):
    """Worker task: search one query block in a serialised faiss index (deserialised once per worker)."""
    import faiss

    index = _INDEX_CACHE.get(key)
    if index is None:
        _INDEX_CACHE.clear()  # keep one index per worker process
        index = _INDEX_CACHE[key] = faiss.deserialize_index(index_bytes)
    index.nprobe = nprobe
    from .ann import search_index

    return search_index(index, queries, k)


def current_engine():
    """The per-block engine of the enclosing :func:`dask_knn` block, or None outside one."""
    opts = _OPTIONS.get()
    return None if opts is None else opts.knn


def _scatter_queries(client, queries, opts):
    ranges = _blocks(queries.shape[0], opts.block_rows, _n_threads(client))
    return ranges, client.scatter([queries[lo:hi] for lo, hi in ranges], hash=False)


def _concat(parts):
    sims = np.concatenate([p[0] for p in parts])
    idx = np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)
    return sims, idx


def index_search_blocks(index, queries, k: int):
    """``index.search`` in query blocks on the current client (the index serialised once per worker).

    Returns faiss' ``(similarities, indices)``, -1 where the probed cells held fewer than ``k`` rows.
    """
    import faiss

    opts = _OPTIONS.get() or _Options(_client(None))
    client = opts.client
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    ranges, q_futures = _scatter_queries(client, queries, opts)
    blob = client.scatter(faiss.serialize_index(index), broadcast=True, hash=False)
    key = uuid.uuid4().hex
    futures = [client.submit(_ann_block, q, blob, key, index.nprobe, k, pure=False) for q in q_futures]
    return _concat(_gather(client, futures, "knn[dask]", opts.progress))


def exact_search_blocks(queries, database, k: int, engine: str | None = None):
    """Exact top-``k`` in query blocks on the current client (``engine``: "faiss" or "numpy", None resolves)."""
    from ..backend import resolve_knn

    opts = _OPTIONS.get() or _Options(_client(None))
    client = opts.client
    engine = engine or resolve_knn("auto" if opts.knn == "ann" else opts.knn)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    database = np.ascontiguousarray(database, dtype=np.float32)
    ranges, q_futures = _scatter_queries(client, queries, opts)
    db = client.scatter(database, broadcast=True, hash=False)
    futures = [client.submit(_exact_block, q, db, k, engine, pure=False) for q in q_futures]
    return _concat(_gather(client, futures, "knn[dask]", opts.progress))


def knn_search_blocks(queries, database, k: int):
    """``knn="dask"``: the top-``k`` search in query blocks on the current client.

    Uses the options of the enclosing :func:`dask_knn` block, else the
    default client with exact search.

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
    indices : ndarray of int64, shape (n_queries, k)
    """
    opts = _OPTIONS.get() or _Options(_client(None))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    database = np.ascontiguousarray(database, dtype=np.float32)
    t0 = time.perf_counter()
    report = index = None
    if opts.knn == "ann":
        from . import ann

        index, report = ann.fit(queries, database, k)
    if index is not None:
        sims, idx = index_search_blocks(index, queries, k)
        sims, idx = ann.fill_missing(sims, idx, queries, database, k)
    else:
        sims, idx = exact_search_blocks(queries, database, k)
    if report is not None:
        report.seconds = time.perf_counter() - t0
        ann.log_report(report)
    logger.debug("knn='dask': %d x %d, %.1fs", queries.shape[0], database.shape[0], time.perf_counter() - t0)
    return sims, idx
