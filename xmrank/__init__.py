"""xmrank: modality-aware k-reciprocal Jaccard distances, clustering and re-ranking.

Main entry points
-----------------
jaccard_distance
    Vanilla, modality-aware (BMIL) and camera-aware (CA-Jaccard) k-reciprocal
    Jaccard distance, sparse by default.
cluster, cluster_per_modality, subset_cluster, XMCluster
    DBSCAN/HDBSCAN clustering on it, as the papers run it.
"""

import logging

from ._validation import InputError
from .clustering import (
    XMCluster,
    cluster,
    cluster_distance,
    cluster_per_modality,
    cluster_summary,
    subset_cluster,
    subset_split,
)
from .jaccard import jaccard_distance

logging.getLogger("xmrank").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "XMCluster",
    "cluster",
    "cluster_distance",
    "cluster_per_modality",
    "cluster_summary",
    "jaccard_distance",
    "subset_cluster",
    "subset_split",
    "__version__",
]
