"""k-nearest-neighbour search by inner product.

:func:`knn_search` is the single entry point; the engines live in their own
modules (``exact_faiss``, ``exact_numpy``, ``exact_bf16``, ``ann``, ``gpu``, and
:mod:`xmrank.distributed.dask` for a cluster) and are chosen by
:func:`xmrank.backend.resolve_knn`.
"""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_int
from ..backend import on_device, resolve_knn

__all__ = ["knn_search"]


@on_device
def knn_search(queries, database, k: int, *, knn: str = "auto", device: str = "cpu"):
    """Top-``k`` rows of ``database`` by inner product for each query row.

    Parameters
    ----------
    queries : ndarray of float32, shape (n_queries, d)
        On ``device="cuda"`` also a cupy array or CUDA torch tensor.
    database : ndarray of float32, shape (n_database, d)
    k : int
        Number of neighbours, at most ``n_database``.
    knn : {"auto", "faiss", "numpy", "ann", "dask", "bf16"}, default="auto"
        Engine, see :func:`xmrank.backend.resolve_knn`. "ann" is approximate
        (recall@k >= 0.97 measured on a sample and logged; the Jaccard methods' lists use the calibration of
        :mod:`xmrank.knn.ann_lists`); the others are exact.
        "auto" picks "bf16" (:mod:`xmrank.knn.exact_bf16`) for large searches
        where torch is installed and the CPU multiplies bfloat16 natively.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        "cuda:N" runs on GPU ``N``.

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
        Sorted in decreasing order along each row.
    indices : ndarray of int64, shape (n_queries, k)
        Row indices into ``database``. Both are numpy arrays on the host,
        whatever the device: neighbour lists are small (N x k).
    """
    db_shape = np.shape(database)  # .shape, without copying device arrays
    engine = resolve_knn(knn, device, shape=(np.shape(queries)[0], db_shape[0], db_shape[-1]))
    k = check_int(k, "k", minimum=1)
    if k > database.shape[0]:
        raise InputError(f"k={k} exceeds the {database.shape[0]} database rows.")
    if engine == "faiss":
        from .exact_faiss import search
    elif engine == "numpy":
        from .exact_numpy import search
    elif engine == "ann":
        from .ann import search
    elif engine == "dask":
        from .dask_engine import knn_search_blocks as search
    elif engine == "bf16":
        from .exact_bf16 import search
    elif engine == "bf16-gpu":
        from .exact_bf16 import search_torch

        return search_torch(queries, database, k, device="cuda")
    else:
        from . import gpu

        return gpu.search(queries, database, k, engine=engine)
    return search(np.asarray(queries), np.asarray(database), k)
