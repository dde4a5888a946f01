"""Diagnostics of modality bias and of clustering quality.

diagnose
    Everything below in one JSON-ready dict (the ``xmrank diagnose`` command).
neighbor_makeup  (:mod:`.neighbors`)
    Share of cross-modal rows among each row's k1 neighbours, for plain kNN
    lists and for the modality-aware lists.
original_histogram, jaccard_histogram, histogram_summary  (:mod:`.distances`)
    Intra- vs inter-modality distance histograms (the BMIL paper's Figure 6).
cluster_scores  (:mod:`.scores`)
    ARI, NMI, pairwise precision/recall/F, over-clustering, noise, modality
    mixing and cross-modal pair recall; noise scored as singletons by default.
plot_diagnosis, plot_distance_histograms, plot_neighbor_makeup  (:mod:`.plots`)
    matplotlib figures (``pip install 'xmrank[plot]'``).
"""

from .distances import histogram_summary, jaccard_histogram, original_histogram
from .neighbors import cross_modal_share, neighbor_makeup
from .plots import plot_diagnosis, plot_distance_histograms, plot_neighbor_makeup
from .report import DIAGNOSE_METHODS, diagnose
from .scores import NOISE_MODES, cluster_scores

__all__ = [
    "DIAGNOSE_METHODS",
    "NOISE_MODES",
    "cluster_scores",
    "cross_modal_share",
    "diagnose",
    "histogram_summary",
    "jaccard_histogram",
    "neighbor_makeup",
    "original_histogram",
    "plot_diagnosis",
    "plot_distance_histograms",
    "plot_neighbor_makeup",
]
