"""xmrank: modality-aware k-reciprocal Jaccard distances, clustering and re-ranking.

Main entry points
-----------------
jaccard_distance
    Vanilla, modality-aware (BMIL) and camera-aware (CA-Jaccard) k-reciprocal
    Jaccard distance, sparse by default.
cluster, cluster_per_modality, subset_cluster, XMCluster
    DBSCAN/HDBSCAN clustering on it, as the papers run it.
associate, match_clusters, refine_labels, cluster_refined
    The association baselines: per-modality clustering joined by Hungarian or
    optimal-transport matching, and tight/loose pseudo-label refinement.
diagnose, cluster_scores, neighbor_makeup
    How biased a feature set is, and how good a clustering is.
rerank, evaluate, sysu_evaluation, regdb_evaluation
    Query/gallery re-ranking and the standard VI-ReID protocols.
"""

import logging

from ._validation import InputError
from .association import associate, cluster_refined, match_clusters, refine_labels
from .clustering import (
    XMCluster,
    cluster,
    cluster_distance,
    cluster_per_modality,
    cluster_summary,
    subset_cluster,
    subset_split,
)
from .datasets import ImageRecord
from .diagnostics import cluster_scores, diagnose, neighbor_makeup
from .jaccard import jaccard_distance
from .retrieval import evaluate, mean_results, original_distance, regdb_evaluation, rerank, sysu_evaluation

logging.getLogger("xmrank").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "ImageRecord",
    "InputError",
    "XMCluster",
    "associate",
    "cluster",
    "cluster_distance",
    "cluster_per_modality",
    "cluster_refined",
    "cluster_scores",
    "cluster_summary",
    "diagnose",
    "evaluate",
    "jaccard_distance",
    "match_clusters",
    "mean_results",
    "neighbor_makeup",
    "original_distance",
    "refine_labels",
    "regdb_evaluation",
    "rerank",
    "sysu_evaluation",
    "subset_cluster",
    "subset_split",
    "__version__",
]
