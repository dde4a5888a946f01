"""Cross-modal association baselines, beside the modality-aware Jaccard.

Cluster each modality on its own, then join the clusters across modalities:
what the competitors of the modality-aware Jaccard do (the Hungarian
algorithm in PGM and PCLHD, optimal transport in RPNR/OTLA), plus
pseudo-label refinement (SpCL / OpenUnReID: keep a cluster only where it is
stable between a tight and a loose eps).

match_clusters  (:mod:`.matching`)
    Unified labels from per-modality labels: ``"hungarian"`` (one-to-one on
    prototype similarity), ``"ot"`` (entropic optimal transport between
    clusters, many-to-one allowed) or ``"ot-instance"`` (each row of the
    other modalities sent to the anchor modality's prototypes by OT).
associate  (:mod:`.pipeline`)
    :func:`xmrank.cluster_per_modality`, then :func:`match_clusters`.
refine_labels  (:mod:`.refinement`)
    Independence / compactness refinement of any clustering, given the same
    clustering at a tighter and a looser radius.
cluster_refined  (:mod:`.pipeline`)
    :func:`xmrank.cluster` at eps - gap, eps, eps + gap on one distance, refined.
sinkhorn  (:mod:`.sinkhorn`)
    The log-domain Sinkhorn solver the OT methods use (numpy, no extra package).

Every output has the form of :func:`xmrank.cluster`'s: int64 labels
``0..K-1`` per row, -1 for noise, so :func:`xmrank.cluster_scores` scores them.
"""

from .matching import ASSOCIATIONS, match_clusters
from .pipeline import associate, cluster_refined
from .refinement import refine_labels
from .sinkhorn import sinkhorn

__all__ = ["ASSOCIATIONS", "associate", "cluster_refined", "match_clusters", "refine_labels", "sinkhorn"]
