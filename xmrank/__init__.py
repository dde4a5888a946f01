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
rerank, select_rerank, evaluate, sysu_evaluation, regdb_evaluation
    Query/gallery re-ranking (settings from the data, or selected on labelled
    validation data) and the standard VI-ReID protocols.
io
    Reading feature files (.npy, .npz, .pt, .csv, .h5, .parquet) and writing
    outputs atomically, as the command line does: ``xmrank.io.read_features``.
"""

import logging

from ._lazy import lazy_exports
from ._memory import OutputTooLarge
from ._validation import InputError

logging.getLogger("xmrank").addHandler(logging.NullHandler())

#: public name -> submodule: loaded on first use, so ``import xmrank`` (and ``xmrank --help``)
#: never pays for scikit-learn, scipy or the compiled kernels it does not use
_EXPORTS = {
    "associate": "association",
    "cluster_refined": "association",
    "match_clusters": "association",
    "refine_labels": "association",
    "XMCluster": "clustering",
    "cluster": "clustering",
    "cluster_distance": "clustering",
    "cluster_per_modality": "clustering",
    "cluster_summary": "clustering",
    "select_clustering": "clustering",
    "subset_cluster": "clustering",
    "subset_split": "clustering",
    "ImageRecord": "datasets",
    "cluster_scores": "diagnostics",
    "diagnose": "diagnostics",
    "neighbor_makeup": "diagnostics",
    "jaccard_distance": "jaccard",
    "evaluate": "retrieval",
    "mean_results": "retrieval",
    "original_distance": "retrieval",
    "regdb_evaluation": "retrieval",
    "rerank": "retrieval",
    "select_rerank": "retrieval",
    "sysu_evaluation": "retrieval",
}


#: subpackages reachable as attributes of ``xmrank`` without importing them first (``xmrank.io.read_features``)
_SUBMODULES = ("io",)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)


__version__ = "0.1.0"

__all__ = [
    "ImageRecord",
    "InputError",
    "OutputTooLarge",
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
    "io",
    "jaccard_distance",
    "match_clusters",
    "mean_results",
    "neighbor_makeup",
    "original_distance",
    "refine_labels",
    "regdb_evaluation",
    "rerank",
    "select_clustering",
    "select_rerank",
    "sysu_evaluation",
    "subset_cluster",
    "subset_split",
    "__version__",
]
