"""Approximate neighbour lists calibrated on what a k-reciprocal distance reads.

``knn="ann"`` for the Jaccard methods goes through :func:`search_groups`:
every row of ``X`` is searched against each group of rows (one group per
modality for the modality-aware Jaccard, one group of all rows for the
vanilla one), ``k`` neighbours per group.

Recall@k is the wrong target for these lists. Where an identity has fewer
than ``k`` rows in a group, the tail of its exact list is made of near-random
rows at almost equal similarity; an index has to probe most of its cells to
find exactly those, and the Jaccard distance almost never uses them: a tail
row is rarely a *reciprocal* neighbour. What the distance reads is

* the **reciprocal pairs**: ``j`` in ``i``'s list of ``j``'s group and ``i``
  in ``j``'s list of ``i``'s group (the k-reciprocal sets, their expansion and
  their weights are built from these);
* the **first ``k_read`` columns** of every list, read whether reciprocal or
  not (the local query expansion averages them).

The calibration measures exactly these on a sample: exact lists for
``n_sample`` seed rows and for every row in those lists (so reciprocity can
be decided), then, for each group, the smallest number of probed IVF cells at
which the group's approximate lists keep ``target_pairs`` of the exact
reciprocal pairs that pass through them and ``target_read`` of the leading
columns. Each group is then searched the cheaper way by a cost model of N, d,
the cells and the calibrated number of probes (:func:`exact_cost`,
:func:`ivf_cost`; a model, not a timing, so that the same input always makes
the same choice): approximately when the calibrated index costs less than
exact search of that group, exactly otherwise (the sample's exact lists are
reused). What was measured, chosen and why is
logged (logger ``xmrank.knn.ann_lists``, INFO, numbers in ``record.ann``).

Why thresholds of 0.99 / 0.99: measured with ``benchmarks/bench_scale.py``'s
gallery (d = 128), DBSCAN on the Jaccard distance agreed with the exact-list
result (ARI, noise as singletons) at 0.989 with 0.93 of the reciprocal pairs
and 0.95 of the leading columns kept (10 rows per identity, N = 50,000;
recall@15 was only 0.88), at 0.9997 with 0.996 / 0.998; but at 40 rows per
identity (N = 100,000) 0.975 / 0.98 gave 0.981 and 0.99 / 0.99 gave 0.993.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .._validation import check_int, check_real, check_seed, warn_user
from . import ann

logger = logging.getLogger(__name__)

__all__ = ["GroupReport", "search_groups", "TARGET_PAIRS", "TARGET_READ", "N_SEEDS"]

#: Share of the sample's exact reciprocal pairs that each group's approximate lists keep.
TARGET_PAIRS = 0.99
#: Share of the first ``k_read`` exact columns of each list that the approximate lists hold.
TARGET_READ = 0.99
#: Seed rows of the calibration sample (their lists' rows are searched exactly too).
N_SEEDS = 200


@dataclass
class GroupReport:
    """What :func:`search_groups` measured and chose for one group (logged as ``record.ann``)."""

    group: int
    n_queries: int
    n_database: int
    k: int
    k_read: int
    choice: str  # "ann" or "exact"
    reason: str
    nlist: int = 0
    nprobe: int = 0
    pair_recall: float = 1.0
    read_recall: float = 1.0
    recall: float = 1.0  # recall@k on the sample, for comparison
    exact_cost: float = 0.0  # model units: one exact-engine similarity = EXACT_COST[engine]
    ann_cost: float = 0.0
    exact_engine: str = ""
    n_sample: int = 0
    n_pairs: int = 0
    target_pairs: float = TARGET_PAIRS
    target_read: float = TARGET_READ
    seconds: float = 0.0
    probes_tried: list = field(default_factory=list)


#: Cost of one similarity in exact search, by engine, in units of faiss' brute-force search (BLAS products
#: and its top-k selection). bf16: 0.36-0.45 measured against faiss at N = 50,000, d = 128, 2 cores.
EXACT_COST = {"faiss": 1.0, "numpy": 1.0, "bf16": 0.4}
#: Cost of scanning one database row of a probed IVF-Flat cell, same units: 4.3-6.7 measured (2 cores, d = 128:
#: IVF-Flat at 15-29 % of the rows took 1.0-1.2 times faiss' brute-force search of all of them).
SCAN_COST = 5.0


def exact_cost(n_queries: int, n_database: int, engine: str) -> float:
    """Model cost of exact search (units of one faiss brute-force similarity)."""
    return float(n_queries) * n_database * EXACT_COST.get(engine, 1.0)


def ivf_cost(n_queries: int, n_database: int, nlist: int, nprobe: int) -> float:
    """Model cost of an IVF-Flat search: the coarse products plus the probed cells' rows."""
    return float(n_queries) * (nlist + SCAN_COST * nprobe * n_database / max(nlist, 1))


def _exact_engine(n_queries: int, n_database: int, d: int):
    """The exact engine "auto" picks for this size, as a search function."""
    from ..backend import resolve_knn

    engine = resolve_knn("auto", "cpu", shape=(n_queries, n_database, d))
    if engine == "bf16":
        from .exact_bf16 import search
    elif engine == "faiss":
        from .exact_faiss import search
    else:
        from .exact_numpy import search
    return engine, search


def _set_nprobe(index, nprobe: int) -> None:
    index.nprobe = int(nprobe)


def _in_rows(lists: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values[p] in lists[rows[p]]`` for every p."""
    return (lists[rows] == values[:, None]).any(axis=1)


def search_groups(X: np.ndarray, groups, k: int, *, k_read: int = 1, target_pairs: float | None = None,
                  target_read: float | None = None, n_sample: int = N_SEEDS, seed: int = 0,
                  min_rows: int | None = None, return_report: bool = False, search_index=None, search_exact=None):
    """For each group, the ``k`` most similar rows of that group to every row of ``X``, approximately.

    Parameters
    ----------
    X : ndarray of float32, shape (n, d)
        Every row is a query; the groups' rows are the databases.
    groups : sequence of ndarray of int
        Row indices of each group (disjoint; together they need not cover ``X``).
    k : int
        List length per group.
    k_read : int, default=1
        Leading columns of each list that the caller reads whether reciprocal
        or not (the Jaccard methods' query-expansion length ``k2``).
    target_pairs, target_read : float, default=None
        Calibration targets; None reads :data:`TARGET_PAIRS` (0.95) and
        :data:`TARGET_READ` (0.97).
    n_sample : int, default=200
        Seed rows of the calibration sample.
    seed : int, default=0
        Seeds the sample, the training sample and k-means.
    min_rows : int, default=None
        Groups with fewer rows are searched exactly; None reads
        :data:`xmrank.knn.ann.MIN_ROWS`.
    return_report : bool, default=False
        Also return one :class:`GroupReport` per group.
    search_index, search_exact : callable, default=None
        Where the final searches run: ``search_index(index, queries, k)``
        (faiss' result, -1 for missing rows) and ``search_exact(queries,
        database, k)``; None runs them here. The dask engine passes its
        cluster versions (:mod:`xmrank.knn.dask_engine`); the calibration
        always runs here.

    Returns
    -------
    lists : list of (similarities, indices)
        One pair per group, each of shape (n, k), sorted by decreasing
        similarity; indices are rows of ``X``.
    reports : list of GroupReport
        Only with ``return_report=True``.
    """
    seed = check_seed(seed, "seed", maximum=2**31 - 1, generator=False)
    k = check_int(k, "k", minimum=1)
    k_read = min(check_int(k_read, "k_read", minimum=1), k)
    n_sample = check_int(n_sample, "n_sample", minimum=1)
    target_pairs = TARGET_PAIRS if target_pairs is None else check_real(target_pairs, "target_pairs", low=0, high=1)
    target_read = TARGET_READ if target_read is None else check_real(target_read, "target_read", low=0, high=1)
    min_rows = ann.MIN_ROWS if min_rows is None else check_int(min_rows, "min_rows", minimum=0)
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    groups = [np.asarray(g, dtype=np.int64) for g in groups]
    dbs = [np.ascontiguousarray(X[g]) for g in groups]
    owner = np.full(n, -1, dtype=np.int64)
    for gi, g in enumerate(groups):
        owner[g] = gi

    if all(g.size < min_rows for g in groups):
        out, reports = [], []
        for gi, (g, db) in enumerate(zip(groups, dbs)):
            t0 = time.perf_counter()
            _, search = _exact_engine(n, db.shape[0], d)
            s, i = search(X, db, k)
            out.append((s, g[i]))
            reports.append(GroupReport(gi, n, g.size, k, k_read, "exact", f"below min_rows={min_rows}",
                                       seconds=time.perf_counter() - t0))
        _log(reports)
        return (out, reports) if return_report else out

    # --- the calibration sample: seeds, their exact lists, and the exact lists of every listed row ---
    t_cal = time.perf_counter()
    rng = np.random.default_rng(seed + 7)
    seeds = np.sort(rng.choice(n, min(n, n_sample), replace=False))
    engines = [_exact_engine(n, db.shape[0], d) for db in dbs]
    seed_exact = [search(X[seeds], db, k)[1] for (_, search), db in zip(engines, dbs)]
    listed = np.unique(np.concatenate([g[i].ravel() for g, i in zip(groups, seed_exact)]))
    sample = np.union1d(seeds, listed)
    pos = np.full(n, -1, dtype=np.int64)
    pos[sample] = np.arange(sample.size)
    exact_lists, exact_sims = [], []
    for (engine, search), g, db in zip(engines, groups, dbs):
        s, i = search(X[sample], db, k)
        exact_lists.append(g[i])
        exact_sims.append(s)
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)  # rows whose exact lists are not known yet

    # exact reciprocal pairs through each group's lists: (i seed, j in L_g(i)) with i in L_owner(i)(j)
    pairs = []  # per group: (rows i, rows j) of reciprocal pairs that read group g's lists
    seed_pos = pos[seeds]
    for gi in range(len(groups)):
        li = exact_lists[gi][seed_pos]  # (S, k) rows of group gi
        i_rep = np.repeat(seeds, k)
        j = li.ravel()
        keep = (j != i_rep) & (owner[i_rep] >= 0)
        i_rep, j = i_rep[keep], j[keep]
        back = np.array([_in_rows(exact_lists[owner[a]], pos[[b]], np.array([a]))[0] for a, b in zip(i_rep, j)],
                        dtype=bool) if i_rep.size else np.zeros(0, bool)
        pairs.append((i_rep[back], j[back]))
    t_cal = time.perf_counter() - t_cal

    # --- per group: build, calibrate on the pairs and leading columns, compare the costs ---
    out_lists: list = [None] * len(groups)
    reports = []
    approx_sample = [lst.copy() for lst in exact_lists]  # lists with group g approximate, others exact
    for gi, (g, db) in enumerate(zip(groups, dbs)):
        t0 = time.perf_counter()
        exact_est = exact_cost(n, g.size, engines[gi][0])
        report = GroupReport(gi, n, g.size, k, k_read, "exact", "", exact_cost=exact_est, exact_engine=engines[gi][0],
                             n_sample=int(sample.size), target_pairs=target_pairs, target_read=target_read)
        # pairs that read group gi's lists: (i -> j in gi) from the seeds' side, and (j -> i) when i is in gi
        ii, jj = pairs[gi]
        other = [(a, b) for go, (a, b) in enumerate(pairs) if go != gi]
        back_i = np.concatenate([a for a, _ in other]) if other else np.zeros(0, np.int64)
        back_j = np.concatenate([b for _, b in other]) if other else np.zeros(0, np.int64)
        back_sel = owner[back_i] == gi  # pairs found through another group whose return list is group gi's
        back_i, back_j = back_i[back_sel], back_j[back_sel]
        report.n_pairs = int(ii.size + back_i.size)
        if g.size < min_rows:
            report.reason = f"below min_rows={min_rows}"
        else:
            nlist = ann.choose_nlist(g.size)
            index = ann.build_index(db, nlist, seed=seed)
            report.nlist = nlist
            truth_read = exact_lists[gi][seed_pos][:, :k_read]
            truth_all = exact_lists[gi][seed_pos]

            def measure(nprobe):
                _set_nprobe(index, nprobe)
                _, found = ann.search_index(index, X[sample], k)
                ann_est = ivf_cost(n, g.size, nlist, nprobe)
                found = np.where(found < 0, -1, g[np.clip(found, 0, None)])
                a_lists = [approx_sample[go] if go != gi else found for go in range(len(groups))]
                # (i, j) kept: j still in i's approximate list of this group, i still in j's list of i's group
                back = np.array([_in_rows(a_lists[owner[a]], pos[[b]], np.array([a]))[0] for a, b in zip(ii, jj)],
                                dtype=bool)
                fwd = _in_rows(found, pos[ii], jj) & back if ii.size else np.zeros(0, bool)
                bwd = _in_rows(found, pos[back_j], back_i)
                kept = float((fwd.sum() + bwd.sum()) / max(1, ii.size + back_i.size))
                on_seeds = found[seed_pos]
                read = float((truth_read[:, :, None] == on_seeds[:, None, :k_read]).any(axis=2).mean())
                recall = float((truth_all[:, :, None] == on_seeds[:, None, :]).any(axis=2).mean())
                report.probes_tried.append((int(nprobe), round(kept, 4), round(read, 4), round(ann_est / exact_est, 3)))
                return (int(nprobe), kept, read, recall, ann_est)

            def meets(m):
                return m[1] >= target_pairs and m[2] >= target_read

            lo, hi = 0, min(nlist, ann.MIN_NPROBE)
            m_hi = measure(hi)
            # the search time grows about linearly in nprobe: stop once doubling cannot beat exact search
            while not meets(m_hi) and hi < nlist and 2 * m_hi[4] < exact_est:
                lo, hi = hi, min(nlist, hi * 2)
                m_hi = measure(hi)
            chosen = m_hi if meets(m_hi) else None
            while chosen is not None and lo and hi - lo > max(1, lo // 8):
                mid = (lo + hi) // 2
                m = measure(mid)
                if meets(m):
                    hi, chosen = mid, m
                else:
                    lo = mid
            nprobe, kept, read = m_hi[0], m_hi[1], m_hi[2]
            if chosen is None:
                report.reason = (f"targets not met below the cost of exact search (pairs {kept:.3f}, leading "
                                 f"columns {read:.3f} at nprobe {nprobe} of {nlist})")
            elif chosen[4] >= exact_est:
                report.reason = (f"calibrated nprobe {chosen[0]} of {nlist} would cost {chosen[4] / exact_est:.2f} "
                                 f"of exact search ({engines[gi][0]})")
            else:
                report.choice = "ann"
                report.nprobe, report.pair_recall, report.read_recall, report.recall, report.ann_cost = (
                    int(chosen[0]), float(chosen[1]), float(chosen[2]), float(chosen[3]), float(chosen[4]))
                report.reason = (f"calibrated nprobe {chosen[0]} of {nlist}: about {chosen[4] / exact_est:.2f} of "
                                 f"the cost of exact search ({engines[gi][0]})")
                _set_nprobe(index, report.nprobe)
                found = (search_index or ann.search_index)(index, X, k)
                s, i = ann.fill_missing(*found, X, db, k)
                out_lists[gi] = (s, g[i])
                approx_sample[gi] = out_lists[gi][1][sample]
        if out_lists[gi] is None:  # exact: the sample's lists are known already
            sims = np.empty((n, k), dtype=np.float32)
            idx = np.empty((n, k), dtype=np.int64)
            sims[sample], idx[sample] = exact_sims[gi], exact_lists[gi]
            if rest.size:
                s, i = (search_exact or engines[gi][1])(np.ascontiguousarray(X[rest]), db, k)
                sims[rest], idx[rest] = s, g[i]
            out_lists[gi] = (sims, idx)
        report.seconds = time.perf_counter() - t0 + (t_cal if gi == 0 else 0.0)
        reports.append(report)
    _log(reports)
    return (out_lists, reports) if return_report else out_lists


def _log(reports) -> None:
    for r in reports:
        if r.choice == "ann":
            logger.info("knn='ann' group %d (%d rows): IVF-Flat nprobe %d of %d; reciprocal pairs kept %.3f, "
                        "leading %d columns %.3f, recall@%d %.3f on %d sampled rows; %s", r.group, r.n_database,
                        r.nprobe, r.nlist, r.pair_recall, r.k_read, r.read_recall, r.k, r.recall, r.n_sample,
                        r.reason, extra={"ann": asdict(r)})
        else:
            logger.info("knn='ann' group %d (%d rows): searched exactly: %s", r.group, r.n_database, r.reason,
                        extra={"ann": asdict(r)})
