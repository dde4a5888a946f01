"""Clustering on Jaccard distances: global, per-modality and subset clustering, DBSCAN/HDBSCAN."""

from .algorithms import ALGORITHMS, cluster_distance
from .api import cluster, cluster_per_modality, subset_cluster, subset_split
from .eps import auto_eps, kth_neighbor_distance
from .estimator import XMCluster
from .summary import cluster_summary

__all__ = [
    "ALGORITHMS",
    "XMCluster",
    "auto_eps",
    "cluster",
    "cluster_distance",
    "cluster_per_modality",
    "cluster_summary",
    "kth_neighbor_distance",
    "subset_cluster",
    "subset_split",
]
