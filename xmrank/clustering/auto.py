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

**Cost.** The candidates share one neighbour search: :func:`shared_source`
(a :class:`~xmrank.jaccard.neighbors.SharedNeighbours`) searches once, at the
longest candidate's lists, and serves the shorter ones as prefixes (for an
exact engine the same lists, so the same distances as four separate
``jaccard_distance`` calls); the candidates are computed longest first. What
remains per candidate is the Jaccard stages after the search and the eps
scan. **Memory.** Each candidate stores every pair below 1 while the four of
them and their scoring fit (projected from the longest one; on loose
features the full distance is dense in practice, 12,000 entries a row at
50,000 rows of issue 23's hard generator); otherwise each stores only the
pairs within :data:`STORE_CUT` (0.95, the largest eps ``eps="auto"`` tries,
so every DBSCAN it runs reads the same pairs; the criterion then reads the
pairs above 0.95 as 1), and ``chosen["k1"]["measurement"]["max_distance"]``
says which. What still does not fit is refused before it is allocated, in
one line naming ``max_distance``. Measured (``benchmarks/bench_auto_scale.py``;
``docs/real_data_clustering.md``, "At scale"; one process, 2 shared cores, exact
search): 200,000 rows of issue 23's hard generator, ``k1="auto", eps="auto"``
in 1.1-2.2x the time of ``k1=20, eps=0.6`` (two runs) and 3.7 GB peak (was: ``MemoryError`` or
killed); 50,000 rows 1.1-2.6x, 1.5 GB. On the small real protocols every full
distance fits and the choices are unchanged.

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

__all__ = ["K1_CANDIDATES", "K1_FALLBACK", "auto_k2", "choose_k1", "is_auto", "shared_source", "source_distance"]

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


#: Where the candidates' distances together would not fit in memory, each stores only the pairs
#: within this distance, the largest eps ``eps="auto"`` tries (:data:`xmrank.clustering.eps.EPS_GRID`):
#: every pair a DBSCAN at a tried eps reads.
STORE_CUT = 0.95
#: Peak bytes per stored entry of the candidates' distances while they are scored: the mean
#: distance (float64 sums and their copies) and the scorer's arrays over it (sorted entries, the
#: similarity graph and its upper triangle, the silhouette's rows); an upper estimate.
SCORE_BYTES_PER_ENTRY = 160
#: Bytes per stored entry of a candidate's distance held until the choice (int32 index, float32 value).
HELD_BYTES_PER_ENTRY = 8
#: Bytes per stored entry of each candidate while the mean distance is summed (float64 values, int32 indices,
#: the running sum and its copy).
MEAN_BYTES_PER_ENTRY = 24


def shared_source(features, *, knn: str = "auto", device: str = "cpu"):
    """A :class:`~xmrank.jaccard.neighbors.SharedNeighbours` over the features: one search for every candidate.

    None on a GPU (each candidate then runs :func:`xmrank.jaccard_distance`,
    its own search included).
    """
    from ..backend import resolve_device
    from ..jaccard.neighbors import FeatureNeighbours, SharedNeighbours
    from ..jaccard.plan import check_features_on

    if resolve_device(device) != "cpu":
        return None
    return SharedNeighbours(FeatureNeighbours(check_features_on(features, "cpu"), knn=knn, device="cpu"))


def source_distance(source, features, *, modalities, cameras, method, k1, k2, k1_intra, k1_inter, k2_intra,
                    k2_inter, max_distance, knn, device, n_jobs, progress, fallback=None):
    """:func:`xmrank.jaccard_distance` on the CPU with its lists read from ``source`` (a :func:`shared_source`).

    The same planner, stages and memory check as ``jaccard_distance`` (the
    same matrix); only the search is the source's. ``method`` is resolved
    (not "auto"), ``k1`` and ``k2`` are integers. ``fallback``:
    ``(cut, bytes_per_entry)``: with ``max_distance=None``, where every pair
    below 1, at ``bytes_per_entry`` (what the caller will hold and score per
    stored entry), would not fit, store the pairs within ``cut`` instead
    (decided from the min-sum's estimate of its stored pairs, before it
    allocates, so the weights and expansion are not redone). The matrix's
    ``stored_within`` says which (None: every pair below 1).
    """
    from .._memory import OutputTooLarge
    from .._validation import check_n_jobs
    from ..jaccard.plan import build_plan, check_request
    from ..jaccard.stages import NumbaExecutor, numba_threads, run_stages, to_output

    X = source.source.X
    n = int(X.shape[0])
    request = check_request(n, modalities=modalities, cameras=cameras, method=method, k1=k1, k2=k2,
                            k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
                            self_in_k1=True, knn=knn, device="cpu", features=X)
    n_threads = check_n_jobs(n_jobs)
    executor = NumbaExecutor(n_threads)
    with numba_threads(n_threads):
        plan = build_plan(source, request)
        Vq = executor.expand(executor.weights(source, plan), plan)
        del plan
        if fallback is not None and max_distance is None and not _full_fits(Vq, fallback[1], n_threads):
            max_distance = fallback[0]
            logger.info("k1=%d: the full distances would not fit in memory with their scoring; storing the pairs "
                        "within %g", k1, max_distance)
        try:
            indptr, indices, data = executor.minsum(Vq, max_distance)
        except OutputTooLarge:
            if fallback is None or max_distance is not None:
                raise
            max_distance = fallback[0]
            indptr, indices, data = executor.minsum(Vq, max_distance)
    D = to_output(indptr, indices, data, n, dense=False)
    D.stored_within = max_distance  # what the matrix holds: None, every pair below 1
    return D


def _full_fits(Vq, bytes_per_entry, n_threads) -> bool:
    """Whether every pair below 1 of ``V'``'s Jaccard distance, at ``bytes_per_entry``, fits the memory budget."""
    from .._memory import budget_bytes
    from ..jaccard import blocks

    budget = budget_bytes()
    if budget is None:
        return True
    parts = blocks.prepare(Vq.tocsr())
    n = parts[0]
    holders = np.diff(parts[4]).astype(np.float64)
    bound = 2.0 * min(n * (n - 1) / 2.0, float(np.dot(holders, holders - 1.0)) / 2.0) + n
    if bound * bytes_per_entry <= budget:
        return True
    entries = 2.0 * blocks.estimate_pairs(parts, max_distance=None, n_threads=n_threads) + n
    return entries * bytes_per_entry <= budget


def _refusal(err, store, n_candidates):
    """The memory refusal of ``k1="auto"``: the engine's sentence, then what ``cluster`` can change."""
    from .._memory import OutputTooLarge

    return OutputTooLarge(
        f"k1='auto': {str(err).rstrip('.')} (k1='auto' keeps {n_candidates} candidate distances"
        + (f", each storing the pairs within max_distance={store:g}" if store is not None else "")
        + "); pass a number for k1 and for eps: cluster then stores one distance, only the pairs within eps "
          "(max_distance=eps).")


def choose_k1(run, candidates, *, n_rows: int, giant_share: float, noise_share: float, quiet: bool = False):
    """Cluster at each candidate ``k1`` and keep the best on the mean distance (see the module's text).

    The candidates are computed longest first (a shared neighbour source then
    searches once, at the longest list, and serves the others prefixes). Each
    candidate's distance stores every pair below 1 while all of them and
    their scoring fit in memory (projected from the longest candidate's
    estimated stored pairs, before its min-sum allocates); otherwise each
    stores only the pairs within :data:`STORE_CUT`, and
    ``record["measurement"]["max_distance"]`` says so. What still does not fit is refused before it is allocated
    (:class:`xmrank.OutputTooLarge`, naming ``max_distance``).

    Parameters
    ----------
    run : callable
        ``run(k1, store[, fallback]) -> (labels, distance, info)``: the
        clustering at this ``k1`` (its own ``k2`` and eps choices included),
        with the sparse distance storing every pair below 1 (``store=None``)
        or only those within ``store``; with ``fallback = (cut,
        bytes_per_entry)``, where every pair would not fit at that many bytes
        an entry, those within ``cut`` (the distance's ``stored_within``
        attribute says so; see :func:`source_distance`).
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
        ``run(k1, store)`` of the chosen candidate.
    record : dict
        ``{"value", "reason", "measurement"}``: per candidate its eps,
        ``k2``, score on the mean distance, clusters, noise and largest
        cluster share; ``max_distance``, the pairs each candidate stored
        (None: every pair below 1).
    """
    from .._memory import OutputTooLarge, check_fits
    from .eps import _modularity, _Prepared, _silhouette

    order = sorted(set(int(k) for k in candidates), reverse=True)
    store, results = None, {}
    while len(results) < len(order):
        k = order[len(results)]
        try:
            # the longest candidate decides: its entries, held by each candidate and scored, must fit
            first = not results and store is None and len(order) > 1
            fallback = (STORE_CUT, len(order) * (HELD_BYTES_PER_ENTRY + MEAN_BYTES_PER_ENTRY) + SCORE_BYTES_PER_ENTRY)
            results[k] = run(k, store, fallback) if first else run(k, store)
            within = getattr(results[k][1], "stored_within", None)
            if store is None and within is not None:  # the longest candidate fell back: so do the others
                store = within
                logger.info("k1='auto': the longest candidate's full distance does not fit in memory; each "
                            "candidate stores the pairs within %g", store)
        except OutputTooLarge as err:
            if store is not None:
                raise _refusal(err, store, len(order)) from None
            store, results = STORE_CUT, {}  # start again: every candidate on the same footing
            logger.info("k1='auto': a candidate's full distance does not fit in memory (%s); each stores the pairs "
                        "within %g", err, store)
            continue
    rows = []
    if len(results) > 1:
        entries = float(sum(r[1].nnz for r in results.values()))
        longest = float(max(r[1].nnz for r in results.values()))  # about the mean's entries: longer lists hold more
        try:
            check_fits(entries * MEAN_BYTES_PER_ENTRY + longest * SCORE_BYTES_PER_ENTRY,
                       f"scoring k1='auto''s {len(results)} candidate distances ({entries / 1e6:,.1f} M stored entries)",
                       "pass max_distance (each candidate stores only the pairs within it)")
        except OutputTooLarge as err:
            raise _refusal(err, store, len(order)) from None
        P = _Prepared(_mean_distance([results[k][1] for k in sorted(results)]))
    for k in sorted(results):
        labels, _, info = results[k]
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
    return k1, results[k1], {"value": k1, "reason": reason, "measurement": {"candidates": rows, "max_distance": store}}
