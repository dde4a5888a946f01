"""Clustering on Jaccard distances: global, per-modality and subset clustering, DBSCAN/HDBSCAN."""

from .algorithms import ALGORITHMS, cluster_distance
from .api import cluster, cluster_per_modality, subset_cluster, subset_split
from .eps import auto_eps, eps_scores, kth_neighbor_distance
from .estimator import XMCluster
from .select import select_clustering
from .summary import cluster_contents, cluster_sizes, cluster_summary

__all__ = [
    "ALGORITHMS",
    "XMCluster",
    "auto_eps",
    "eps_scores",
    "cluster",
    "cluster_distance",
    "cluster_contents",
    "cluster_per_modality",
    "cluster_sizes",
    "cluster_summary",
    "kth_neighbor_distance",
    "select_clustering",
    "subset_cluster",
    "subset_split",
]
