"""Computing beyond one machine: the Jaccard pipeline on a dask.distributed cluster.

dask is imported only when these functions run (``pip install 'xmrank[dask]'``).

- :func:`jaccard_distance_dask`: :func:`xmrank.jaccard_distance` with the kNN
  search and the min-sum Jaccard rows computed as dask tasks;
- :func:`dask_knn`: a context manager that sends ``knn="dask"`` searches of
  any xmrank function to a given client and per-block engine.
"""

from .dask import DaskExecutor, dask_knn, jaccard_distance_dask, knn_search_blocks

__all__ = ["jaccard_distance_dask", "DaskExecutor", "dask_knn", "knn_search_blocks"]
