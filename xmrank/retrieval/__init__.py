"""Retrieval: k-reciprocal re-ranking, VI-ReID evaluation metrics and protocol runners.

- :mod:`.rerank`: :func:`rerank` (query x gallery re-ranked distances) and
  :func:`original_distance`.
- :mod:`.metrics`: :func:`evaluate` (mAP, mINP, CMC; SYSU-MM01, RegDB and
  Market-1501 rules).
- :mod:`.protocols`: the multi-trial SYSU-MM01 and RegDB evaluations.
"""

from .metrics import PROTOCOLS, evaluate
from .protocols import mean_results, regdb_evaluation, sysu_evaluation
from .rerank import original_distance, rerank

__all__ = [
    "rerank",
    "original_distance",
    "evaluate",
    "PROTOCOLS",
    "sysu_evaluation",
    "regdb_evaluation",
    "mean_results",
]
