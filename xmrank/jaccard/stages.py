"""The stages after planning, run by an executor: weights, expansion, min-sum, output.

:func:`run_stages` is the one orchestration of the Jaccard pipeline. It
takes a :class:`~xmrank.jaccard.plan.JaccardPlan` and an :class:`Executor`,
which says where each stage runs:

- :class:`NumbaExecutor`: the compiled CPU kernels (:mod:`xmrank.jaccard.kernels`,
  :mod:`xmrank.jaccard.blocks`) on scipy matrices;
- :class:`xmrank.jaccard.kernels_xp.ArrayModuleExecutor`: the array-module
  kernels on numpy or cupy (the GPU path);
- :class:`xmrank.distributed.dask.DaskExecutor`: the CPU stages, with the
  min-sum rows computed on a dask cluster.

A new backend is one more executor; the stages and their order stay here.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = ["Executor", "NumbaExecutor", "StageTimer", "STAGES", "run_stages", "to_output", "numba_threads"]

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
        """The Jaccard distances as host CSR arrays ``(indptr, indices, data)``, diagonal stored as 0."""
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
        from ..backend import to_device
        from . import kernels

        X = to_device(X, "cpu")
        indptr, indices = kernels.expand_lists(*plan.sets)
        sims, rank = plan.known
        n = plan.n
        return sp.csr_matrix((kernels.softmax_weights(X, indptr, indices, rank, sims), indices, indptr), shape=(n, n))

    def expand(self, V, plan):
        Q = plan.expansion
        return V if Q is None else (Q @ V).tocsr()

    def minsum(self, Vq, max_distance):
        from . import blocks

        return blocks.minsum_jaccard(Vq, self.n_threads, max_distance=max_distance)


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
    X : array of float32, shape (n_samples, n_features)
        The features the plan was built from (numpy, or the executor's array type).
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
