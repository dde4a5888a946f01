"""``k1="auto"``, ``k2="auto"`` and ``eps="auto"`` of the clustering: choices from the features, with the
measurement behind each.

**k2.** The published defaults pair ``k1 = 30`` with ``k2 = 6`` (cluster-contrast,
and BMIL per modality): :func:`auto_k2` keeps that ratio, ``k2 = ceil(k1 / 5)``,
at most the list it expands (``k1 // M`` per modality for the modality-aware
rules).

**k1.** The list length should cover about the rows of one identity: longer
lists reach other identities and chain clusters together (on a real face set,
the default 30 against 20 photos per person put every held-out row in one
cluster), shorter ones cut identities apart. How many rows an identity has is
not known without labels, and the estimates read from neighbour-list
reciprocity fail where identities are not tight, which real features are not.
:func:`choose_k1` therefore tries the candidates :data:`K1_CANDIDATES`,
clusters each (with ``eps="auto"``, or the eps given) and keeps the clustering
of the best label-free quality. The quality is the one :func:`auto_eps`
maximises (modularity + silhouette), but read on **one distance for all
candidates**, the mean of the candidates' Jaccard distances: on its own
matrix every candidate scores its own clustering, and shorter lists give
sparser graphs whose modularity is higher whatever the clustering, so scores
on different matrices are not comparable (scored that way, ``k1 = 5`` won on
every set measured, the worst choice on all of them). A candidate whose
clustering is degenerate (one cluster holding more than half of the rows, or
at least 90 % noise) is kept only when every candidate is.

The measurements (``benchmarks/bench_real_cluster.py``, and
``docs/real_data_clustering.md``): real two-view sets (faces, leaves, scenes,
documents; CCA fitted on half of the identities, the other half clustered)
and synthetic biased sets.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .._validation import is_auto, warn_user
from ..jaccard.plan import auto_k2

logger = logging.getLogger(__name__)

__all__ = ["K1_CANDIDATES", "K1_FALLBACK", "auto_k2", "choose_k1", "is_auto"]

#: The list lengths ``k1="auto"`` tries.
K1_CANDIDATES = (5, 10, 20, 30)
#: The ``k1`` used where ``"auto"`` cannot choose (the declared default), capped to what the rows allow.
K1_FALLBACK = 30


def _modality_count(method, codes):
    return int(codes.max()) + 1 if method in ("modality", "modality-camera") and codes is not None else 1


def feasible_k1(candidates, n_rows: int, method: str, codes=None, k2=None) -> list:
    """The candidates a method can use on these rows: ``k1 < n`` and, per modality, ``k1 // M`` rows.

    With an explicit ``k2`` (an int), also the candidates whose list holds it:
    ``k2 <= k1`` (``k1 // M`` for the modality-aware rules), so that
    ``k1="auto"`` beside a given ``k2`` (the default 6 included) tries what
    that ``k2`` allows rather than failing on the shortest candidate.
    """
    M = _modality_count(method, codes)
    smallest = int(np.bincount(codes).min()) if M > 1 else n_rows
    fits = [int(k) for k in candidates if k < n_rows and (M == 1 or (k // M >= 1 and k // M <= smallest))]
    if k2 is not None and not is_auto(k2):
        fits = [k for k in fits if int(k2) <= (k // M if M > 1 else k)]
    return fits


def fallback_k1(n_rows: int, method: str, codes=None) -> int:
    """:data:`K1_FALLBACK`, capped to what the rows allow (at least 1)."""
    M = _modality_count(method, codes)
    cap = n_rows - 1
    if M > 1:
        cap = min(cap, M * int(np.bincount(codes).min()))
    return int(max(min(K1_FALLBACK, cap), M, 1))


def _mean_distance(distances):
    """``1 - mean(1 - D)`` over sparse Jaccard matrices (unstored pairs at 1): one yardstick for all."""
    total = None
    for D in distances:
        S = sp.csr_matrix((1.0 - D.data.astype(np.float64), D.indices, D.indptr), shape=D.shape)
        total = S if total is None else total + S
    total = (total / len(distances)).tocsr()
    return sp.csr_matrix((1.0 - total.data, total.indices, total.indptr), shape=total.shape)


def choose_k1(run, candidates, *, n_rows: int, giant_share: float, noise_share: float, quiet: bool = False):
    """Cluster at each candidate ``k1`` and keep the best on the mean distance (see the module's text).

    Parameters
    ----------
    run : callable
        ``run(k1) -> (labels, distance, info)``: the clustering at this
        ``k1`` (its own ``k2`` and eps choices included), with the full
        sparse distance (every pair below 1 stored).
    candidates : list of int
        Feasible candidates, at least one.
    n_rows : int
    giant_share, noise_share : float
        The degenerate-clustering limits of :func:`xmrank.cluster`.
    quiet : bool, default=False
        No warning when every candidate is degenerate (the caller warns).

    Returns
    -------
    k1 : int
    result : tuple
        ``run(k1)`` of the chosen candidate.
    record : dict
        ``{"value", "reason", "measurement"}``: per candidate its eps,
        ``k2``, score on the mean distance, clusters, noise and largest
        cluster share.
    """
    from .eps import _modularity, _Prepared, _silhouette

    results = {k: run(k) for k in candidates}
    rows = []
    if len(results) > 1:
        P = _Prepared(_mean_distance([r[1] for r in results.values()]))
    for k, (labels, _, info) in results.items():
        ok = labels >= 0
        largest = float(np.bincount(labels[ok]).max() / n_rows) if ok.any() else 0.0
        noise = float(1.0 - ok.mean())
        score = (_modularity(P, labels) + _silhouette(P, labels)) if len(results) > 1 else 0.0
        rows.append({"k1": int(k), "k2": int(info["k2"]), "eps": info.get("eps"), "score": round(float(score), 4),
                     "n_clusters": int(labels.max()) + 1 if ok.any() else 0, "noise_share": round(noise, 4),
                     "largest_share": round(largest, 4),
                     "degenerate": bool(largest > giant_share or noise >= noise_share)})
    usable = [r for r in rows if not r["degenerate"]] or rows
    best = max(usable, key=lambda r: (r["score"], -abs(r["k1"] - K1_FALLBACK)))
    k1 = best["k1"]
    if len(rows) == 1:
        reason = f"the only candidate the rows allow among {list(K1_CANDIDATES)}"
    else:
        reason = (f"best modularity + silhouette ({best['score']:.3f}) of the candidates' clusterings, each read on the "
                  f"mean of their Jaccard distances" + ("" if len(usable) == len(rows) else
                                                        f"; {len(rows) - len(usable)} degenerate candidate(s) left out"))
    if all(r["degenerate"] for r in rows) and not quiet:
        warn_user(f"k1='auto': every candidate k1 {[r['k1'] for r in rows]} gives a degenerate clustering; kept "
                  f"k1={k1}, the best of them. Pass k1 (and eps) explicitly, or select them on labelled data with "
                  "xmrank.select_clustering.")
        reason += "; every candidate is degenerate"
    logger.info("k1='auto' chose k1=%d: %s (%s)", k1, reason,
                ", ".join(f"k1={r['k1']}: {r['score']:.3f}" for r in rows))
    return k1, results[k1], {"value": k1, "reason": reason, "measurement": {"candidates": rows}}
