"""Retrieval: k-reciprocal re-ranking, hubness reduction, VI-ReID evaluation metrics and protocol runners.

- :mod:`.rerank`: :func:`rerank` (query x gallery re-ranked distances, from
  features or from precomputed distances; k-reciprocal or, with
  ``algorithm="gnn"``, GNN re-ranking), :func:`auto_k` and
  :func:`original_distance`.
- :mod:`.gnn`: the sparse GNN re-ranking (Zhang et al.) behind
  ``rerank(algorithm="gnn")`` and :func:`xmrank.compat.gnn_reranking`.
- :mod:`.select`: :func:`select_rerank` (settings chosen on labelled
  validation data by cross-validation over identities).
- :mod:`.hubness`: :func:`qb_norm`, :func:`db_norm`, :func:`query_expansion`
  (:func:`aqe`, :func:`alpha_qe`) for cross-modal retrieval.
- :mod:`.metrics`: :func:`evaluate` (mAP, mINP, CMC, ROC; SYSU-MM01, RegDB,
  Market-1501 and LLCM rules).
- :mod:`.protocols`: the multi-trial SYSU-MM01, RegDB and LLCM evaluations.
"""

from .hubness import alpha_qe, aqe, db_norm, qb_norm, query_expansion
from .metrics import PROTOCOLS, evaluate
from .protocols import llcm_evaluation, mean_results, regdb_evaluation, sysu_evaluation
from .rerank import auto_k, original_distance, rerank
from .select import select_rerank

__all__ = [
    "rerank",
    "auto_k",
    "select_rerank",
    "original_distance",
    "qb_norm",
    "db_norm",
    "query_expansion",
    "aqe",
    "alpha_qe",
    "evaluate",
    "PROTOCOLS",
    "sysu_evaluation",
    "regdb_evaluation",
    "llcm_evaluation",
    "mean_results",
]
