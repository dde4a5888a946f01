"""The stages after planning, run by an executor: weights, expansion, min-sum, output.

:func:`run_stages` is the one orchestration of the Jaccard pipeline. It
takes a :class:`~xmrank.jaccard.plan.JaccardPlan` and an :class:`Executor`,
which says where each stage runs:

- :class:`NumbaExecutor`: the compiled CPU kernels (:mod:`xmrank.jaccard.kernels`,
  :mod:`xmrank.jaccard.blocks`) on scipy matrices;
- :class:`xmrank.jaccard.kernels_xp.ArrayModuleExecutor`: the array-module
  kernels on numpy or cupy (the GPU path);
- :class:`xmrank.distributed.dask.DaskExecutor`: the CPU stages, with the
  min-sum rows computed on a dask cluster;
- :class:`QueryGalleryExecutor`: the compiled CPU kernels, with only the
  query x gallery pairs of the min-sum, added into a dense re-ranked
  distance (:func:`xmrank.rerank`: from features or from precomputed
  distances alike).

The CPU executors read the weights stage's distances from the plan's
*neighbour source* (:mod:`xmrank.jaccard.neighbors`): :func:`run_stages`
takes features (a :class:`~xmrank.jaccard.neighbors.FeatureNeighbours` is
made of them) or the source itself, e.g. precomputed distance blocks.

A new backend is one more executor; the stages and their order stay here.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = ["Executor", "NumbaExecutor", "QueryGalleryExecutor", "StageTimer", "STAGES", "run_stages", "to_output",
           "numba_threads"]

#: Progress names of the pipeline stages, in order (the first is the planning stage).
STAGES = ("neighbour lists", "reciprocal sets and weights", "query expansion", "min-sum Jaccard")


class Executor:
    """Where the stages after planning run; :func:`run_stages` calls them in order.

    Subclasses implement the three methods below. Matrices passed between
    them are in the executor's own format (scipy, :class:`~xmrank.jaccard.kernels_xp.CSR`
    of cupy arrays, ...); only :meth:`minsum` returns host arrays.
    """

    #: Short name for logs.
    name = "executor"

    def weights(self, X, plan):
        """``V``: the softmax weights of each row over its expanded k-reciprocal set."""
        raise NotImplementedError

    def expand(self, V, plan):
        """``V' = Q V`` with ``Q = plan.expansion``, or ``V`` when there is none."""
        raise NotImplementedError

    def minsum(self, Vq, max_distance):
        """The Jaccard distances as host CSR arrays ``(indptr, indices, data)``, diagonal stored as 0.

        (:class:`QueryGalleryExecutor`: the dense query x gallery result instead.)
        """
        raise NotImplementedError


class NumbaExecutor(Executor):
    """The compiled CPU kernels on scipy sparse matrices.

    Parameters
    ----------
    n_threads : int, default=1
        Parallel chunks of the kernels (numba's thread count is set by the
        caller, see :func:`numba_threads`).
    """

    name = "numba"

    def __init__(self, n_threads: int = 1):
        self.n_threads = max(1, int(n_threads))

    def weights(self, X, plan):
        from . import kernels
        from .neighbors import as_source

        indptr, indices = kernels.expand_lists(*plan.sets)
        sims, rank = plan.known
        n = plan.n
        data = as_source(X).softmax_weights(indptr, indices, rank, sims)
        return sp.csr_matrix((data, indices, indptr), shape=(n, n))

    def expand(self, V, plan):
        Q = plan.expansion
        return V if Q is None else (Q @ V).tocsr()

    def minsum(self, Vq, max_distance):
        from . import blocks

        return blocks.minsum_jaccard(Vq, self.n_threads, max_distance=max_distance)


class QueryGalleryExecutor(NumbaExecutor):
    """The compiled CPU kernels, with the min-sum of the query x gallery pairs only, added into a dense array.

    Re-ranking reads only the query rows ``[0, n_query)`` against the
    gallery rows ``[n_query, N)`` of the Jaccard distance: the min-sum stage
    computes those pairs alone (:func:`xmrank.jaccard.blocks.accumulate_rectangle`),
    never the gallery x gallery ones, most of the ``N²``, and stores nothing
    sparse. Its result is ``out`` with ``weight * (J − 1)`` added to every
    pair, which :func:`run_stages` returns.

    Parameters
    ----------
    out : ndarray of float32, shape (n_query, n_gallery), C-contiguous
        Updated in place (its memory is the caller's to check).
    weight : float
        ``1 − λ`` in re-ranking.
    n_threads : int, default=1
    """

    name = "numba-query-gallery"

    def __init__(self, out, weight: float, n_threads: int = 1):
        super().__init__(n_threads)
        self.out = out
        self.weight = float(weight)

    def minsum(self, Vq, max_distance):
        from .blocks import accumulate_rectangle

        nq = self.out.shape[0]
        Vq = Vq.tocsr()
        accumulate_rectangle(self.out, Vq[:nq], Vq[nq:], self.weight, self.n_threads)
        return self.out


class StageTimer:
    """Wall time per pipeline stage, for the log and the progress bar.

    Parameters
    ----------
    bar : progress bar, default=None
        Told each finished stage (``bar.stage(name)``).
    """

    def __init__(self, bar=None):
        self.bar = bar
        self.last = time.perf_counter()
        self.stages = []

    def __call__(self, name):
        now = time.perf_counter()
        self.stages.append((name, now - self.last))
        logger.debug("jaccard stage %-28s %.2fs", name, now - self.last)
        self.last = now
        if self.bar is not None:
            self.bar.stage(name)

    def report(self) -> str:
        return ", ".join(f"{name} {sec:.2f}s" for name, sec in self.stages)


def run_stages(X, plan, executor: Executor, *, max_distance=None, on_stage=None):
    """Weights, expansion and min-sum of ``plan`` on ``executor``: the Jaccard distances as host CSR arrays.

    Parameters
    ----------
    X : array of float32, shape (n_samples, n_features), or NeighbourSource
        The features the plan was built from (numpy, or the executor's array
        type), or the neighbour source it was built from (the CPU executors).
    plan : JaccardPlan
    executor : Executor
    max_distance : float, default=None
        Keep only pairs with float32 distance <= ``max_distance``; None keeps
        every pair that shares a column.
    on_stage : callable, default=None
        Called with each stage's name (:data:`STAGES` [1:]) when it ends.

    Returns
    -------
    indptr, indices, data : ndarray
        The distance matrix in CSR form, on the host (int32 indices while
        they fit, float32 data); unstored pairs have distance 1.
        (:class:`QueryGalleryExecutor`: its dense ``out``.)
    """
    done = on_stage or (lambda name: None)
    V = executor.weights(X, plan)
    done(STAGES[1])
    Vq = executor.expand(V, plan)
    del V
    done(STAGES[2])
    out = executor.minsum(Vq, max_distance)
    del Vq
    done(STAGES[3])
    return out


def to_output(indptr, indices, data, n: int, *, dense: bool):
    """The output stage: a scipy CSR matrix (unsorted indices) or, with ``dense``, a float32 array of ones and the pairs."""
    if dense:
        out = np.ones((n, n), dtype=np.float32)
        out[np.repeat(np.arange(n), np.diff(indptr)), indices] = data
        return out
    D = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    D.has_sorted_indices = False
    return D


@contextlib.contextmanager
def numba_threads(n_threads: int):
    """Run the block with numba's thread count set to ``n_threads`` (capped at its pool), then restore it."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)
