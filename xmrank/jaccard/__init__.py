"""k-reciprocal Jaccard distances: one pipeline, planned per method, run by an executor.

- :func:`jaccard_distance`: the whole pipeline;
- :func:`plan_jaccard` and :class:`JaccardPlan` (:mod:`.plan`): the
  method-dependent stage, neighbour lists (:mod:`.neighbors`), reciprocal
  masks and query expansion, read from a neighbour source (kNN over
  features, or precomputed distance blocks: :mod:`.neighbors`);
- :class:`Executor` and :func:`run_stages` (:mod:`.stages`): weights,
  expansion, min-sum and output, on the numba kernels (:mod:`.kernels`,
  :mod:`.blocks`), the array-module kernels (:mod:`.kernels_xp`) or a
  cluster (:mod:`xmrank.distributed.dask`).
"""

from .distance import EXECUTORS, METHODS, jaccard_distance
from .plan import JaccardPlan, plan_jaccard
from .stages import Executor, NumbaExecutor, run_stages

__all__ = ["jaccard_distance", "plan_jaccard", "JaccardPlan", "Executor", "NumbaExecutor", "run_stages", "METHODS",
           "EXECUTORS"]
