"""Approximate inner-product search: a faiss IVF-Flat index per database.

The index is built from the database alone (k-means on a seeded sample, so
the same input gives the same index); the number of probed cells is then
chosen by measuring recall against exact search on a sample of the queries,
doubling ``nprobe`` and bisecting back until the target is met. Chosen
parameters and the measured recall are logged (logger ``xmrank.knn.ann``, INFO,
with the numbers in ``record.ann``).

Below ``min_rows`` database rows the search is exact: an IVF index does not
pay off there, and exact search has recall 1.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from .._validation import check_int, check_real, check_seed, warn_user

logger = logging.getLogger(__name__)


class RecallWarning(UserWarning):
    """An approximate search stayed below its recall target."""


__all__ = ["RecallWarning", "AnnReport", "build_index", "calibrate", "choose_nlist", "fill_missing", "fit", "log_report",
           "measure_recall", "search", "search_index"]

#: Database sizes below this are searched exactly.
MIN_ROWS = 10_000
#: Recall@k against exact search that the calibration must reach. Not 0.95: the misses
#: are not spread evenly but fall on rows near cell borders, and at 0.95 DBSCAN on the
#: Jaccard distance split some identities that exact kNN kept whole (ARI 0.979 against
#: exact-kNN clustering on a 50k gallery, benchmarks/bench_scale.py; 0.993 at 0.97).
TARGET_RECALL = 0.97
#: Cells probed at least (see :func:`calibrate`): with one or two cells the rows near a
#: border lose a large share of their neighbours together, whatever the mean recall.
MIN_NPROBE = 4
#: Queries per call of the index's search (bounds faiss' per-query scratch memory).
QUERY_BLOCK = 65536
#: Queries sampled to measure recall.
N_SAMPLE = 1000
#: Training rows per IVF cell (faiss warns below 39).
_TRAIN_PER_CELL = 40


@dataclass
class AnnReport:
    """What one approximate search did (logged as ``record.ann``)."""

    n_queries: int
    n_database: int
    k: int
    nlist: int
    nprobe: int
    recall: float
    n_sample: int
    target_recall: float
    exact: bool
    seconds: float


def choose_nlist(n_database: int) -> int:
    """IVF cells for a database of ``n_database`` rows: about ``8 sqrt(N)``.

    Capped so that every cell has at least 39 training rows on average
    (faiss' minimum) and at 65,536 cells. Finer cells than faiss' usual
    ``4 sqrt(N)`` cost more k-means but less scanning for the same recall;
    measured at N = 200,000 (two modalities, recall 0.97) the search took
    24 s instead of 33 s.
    """
    nlist = int(round(8.0 * math.sqrt(n_database)))
    return int(max(1, min(nlist, n_database // 39, 65536)))


def build_index(database: np.ndarray, nlist: int, *, seed: int = 0):
    """A trained and filled ``faiss.IndexIVFFlat`` with inner-product metric."""
    import faiss

    n, d = database.shape
    rng = np.random.default_rng(seed)
    n_train = min(n, _TRAIN_PER_CELL * nlist)
    train = database if n_train == n else database[np.sort(rng.choice(n, n_train, replace=False))]
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(seed)
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    index.add(database)
    return index


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` found in the same row of ``found``."""
    return float((truth[:, :, None] == found[:, None, :]).any(axis=2).mean())


def _sample_truth(queries, database, k, n_sample, seed):
    """A seeded sample of the queries and their exact top-k database rows."""
    import faiss

    nq = queries.shape[0]
    m = min(nq, n_sample)
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(nq, m, replace=False)) if m < nq else np.arange(nq)
    sample = np.ascontiguousarray(queries[rows])
    flat = faiss.IndexFlatIP(database.shape[1])
    flat.add(database)
    _, truth = flat.search(sample, k)
    return sample, truth


def measure_recall(index, sample: np.ndarray, truth: np.ndarray, nprobe: int) -> float:
    """Recall@k of ``index`` at ``nprobe`` on sampled queries with known exact answers."""
    index.nprobe = int(nprobe)
    _, found = index.search(sample, truth.shape[1])
    return _recall(found, truth)


def calibrate(index, sample: np.ndarray, truth: np.ndarray, *, target_recall: float | None = None,
              min_nprobe: int | None = None):
    """Smallest ``nprobe`` (within ~12%) whose recall on the sample reaches the target.

    ``nprobe`` doubles from ``min_nprobe`` until the target is met (or every
    cell is probed), then bisects back between the last two values.

    Returns
    -------
    nprobe : int
    recall : float
        Measured on the sample with that ``nprobe``.
    """
    target_recall = TARGET_RECALL if target_recall is None else float(target_recall)
    nlist = index.nlist if hasattr(index, "nlist") else index.getNumLists()
    lo, hi = 0, int(min(nlist, MIN_NPROBE if min_nprobe is None else max(1, min_nprobe)))
    hi_recall = measure_recall(index, sample, truth, hi)
    while hi_recall < target_recall and hi < nlist:
        lo, hi = hi, min(nlist, hi * 2)
        hi_recall = measure_recall(index, sample, truth, hi)
    while lo and hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        r = measure_recall(index, sample, truth, mid)
        if r >= target_recall:
            hi, hi_recall = mid, r
        else:
            lo = mid
    return hi, hi_recall


def fit(queries: np.ndarray, database: np.ndarray, k: int, *, target_recall: float | None = None,
        n_sample: int = N_SAMPLE, seed: int = 0, nlist: int | None = None, nprobe: int | None = None,
        min_rows: int | None = None, place=None):
    """Build the IVF index of ``database`` and choose ``nprobe`` for these queries.

    Parameters are those of :func:`search`.

    Returns
    -------
    index : faiss index or None
        Ready to search (``nprobe`` set); None when the database is below
        ``min_rows`` rows and should be searched exactly.
    report : AnnReport
        ``seconds`` covers the fit only.
    """
    t0 = time.perf_counter()
    target_recall = TARGET_RECALL if target_recall is None else float(target_recall)
    nq, nd = queries.shape[0], database.shape[0]
    if nd < (MIN_ROWS if min_rows is None else min_rows):
        return None, AnnReport(nq, nd, k, 0, 0, 1.0, 0, target_recall, True, time.perf_counter() - t0)
    n_cells = choose_nlist(nd) if nlist is None else int(min(max(1, nlist), nd))
    index = build_index(database, n_cells, seed=seed)
    if place is not None:
        index = place(index)
    sample, truth = _sample_truth(queries, database, k, n_sample, seed)
    if nprobe is None:
        chosen, recall = calibrate(index, sample, truth, target_recall=target_recall)
    else:
        chosen = int(min(max(1, nprobe), n_cells))
        recall = measure_recall(index, sample, truth, chosen)
    index.nprobe = chosen
    report = AnnReport(nq, nd, k, n_cells, chosen, recall, sample.shape[0], target_recall, False,
                       time.perf_counter() - t0)
    return index, report


def log_report(report: AnnReport) -> None:
    """Log what an approximate search did: INFO, or WARNING when recall missed the target.

    A missed target is also raised as a :class:`RecallWarning` (``warnings.warn``,
    attributed to the caller's line), so it reaches users whose logging is off.
    """
    if report.exact:
        logger.info("knn='ann': %d database rows, below min_rows: searched exactly", report.n_database,
                    extra={"ann": asdict(report)})
        return
    level = logging.INFO if report.recall >= report.target_recall else logging.WARNING
    logger.log(level, "knn='ann': IVF-Flat nlist=%d nprobe=%d, recall@%d=%.3f on %d sampled queries "
               "(target %.2f), %d x %d in %.1fs", report.nlist, report.nprobe, report.k, report.recall,
               report.n_sample, report.target_recall, report.n_queries, report.n_database, report.seconds,
               extra={"ann": asdict(report)})
    if report.recall < report.target_recall:
        warn_user(f"knn='ann': approximate search reached recall@{report.k} = {report.recall:.3f}, below its target "
                  f"{report.target_recall:.2f} (nprobe={report.nprobe} of {report.nlist} cells); neighbour lists are "
                  "less exact than intended: use an exact engine or raise nprobe.", RecallWarning)


def search_index(index, queries: np.ndarray, k: int, *, block_rows: int = QUERY_BLOCK):
    """``index.search`` over blocks of queries.

    faiss holds ``n_queries x nprobe`` coarse assignments during one call
    (12 bytes each: 3.6 GB for a million queries at nprobe 300); blocks
    bound that.
    """
    nq = queries.shape[0]
    sims = np.empty((nq, k), dtype=np.float32)
    idx = np.empty((nq, k), dtype=np.int64)
    for s in range(0, nq, block_rows):
        e = min(nq, s + block_rows)
        sims[s:e], idx[s:e] = index.search(queries[s:e], k)
    return sims, idx


def fill_missing(sims, idx, queries, database, k):
    """Re-search exactly the rows where the probed cells held fewer than ``k`` rows (index -1)."""
    from .exact_faiss import search as exact

    missing = np.flatnonzero((idx < 0).any(axis=1))
    if missing.size:
        sims[missing], idx[missing] = exact(queries[missing], database, k)
    return sims, idx.astype(np.int64, copy=False)


def search(queries: np.ndarray, database: np.ndarray, k: int, *, target_recall: float | None = None,
           n_sample: int = N_SAMPLE, seed: int = 0, nlist: int | None = None, nprobe: int | None = None,
           min_rows: int | None = None, return_report: bool = False, place=None):
    """Top-``k`` database rows by inner product, approximately.

    Parameters
    ----------
    queries : ndarray of float32, shape (n_queries, d)
    database : ndarray of float32, shape (n_database, d)
    k : int
    target_recall : float, default=None
        Recall@k against exact search that the chosen ``nprobe`` reaches on
        the sampled queries; None reads :data:`TARGET_RECALL` (0.97).
    n_sample : int, default=1000
        Queries sampled to measure recall.
    seed : int, default=0
        Seeds the training sample, k-means and the recall sample; 0 to
        2**31 - 1 (faiss' k-means seed is a C int).
    nlist, nprobe : int, default=None
        Fix the IVF cells / probed cells instead of choosing them; with
        ``nprobe`` given, recall is still measured and logged.
    min_rows : int, default=None
        Databases smaller than this are searched exactly; None reads
        :data:`MIN_ROWS` (10,000).
    return_report : bool, default=False
        Also return an :class:`AnnReport`.
    place : callable, default=None
        Applied to the trained CPU index before searching (the GPU engine
        passes ``faiss.index_cpu_to_gpu``).

    Returns
    -------
    similarities : ndarray of float32, shape (n_queries, k)
        Decreasing along each row.
    indices : ndarray of int64, shape (n_queries, k)
    report : AnnReport
        Only with ``return_report=True``.
    """
    from .exact_faiss import search as exact

    seed = check_seed(seed, "seed", maximum=2**31 - 1, generator=False)  # faiss' k-means seed is a C int
    k = check_int(k, "k", minimum=1)
    n_sample = check_int(n_sample, "n_sample", minimum=1)
    if target_recall is not None:
        target_recall = check_real(target_recall, "target_recall", low=0.0, high=1.0, low_open=True)
    if nlist is not None:
        nlist = check_int(nlist, "nlist", minimum=1)
    if nprobe is not None:
        nprobe = check_int(nprobe, "nprobe", minimum=1)
    if min_rows is not None:
        min_rows = check_int(min_rows, "min_rows", minimum=0)
    t0 = time.perf_counter()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    database = np.ascontiguousarray(database, dtype=np.float32)
    index, report = fit(queries, database, k, target_recall=target_recall, n_sample=n_sample, seed=seed,
                        nlist=nlist, nprobe=nprobe, min_rows=min_rows, place=place)
    if index is None:
        sims, idx = exact(queries, database, k)
    else:
        sims, idx = fill_missing(*search_index(index, queries, k), queries, database, k)
    report.seconds = time.perf_counter() - t0
    log_report(report)
    return (sims, idx, report) if return_report else (sims, idx)
