"""Approximate neighbour lists calibrated on what a k-reciprocal distance reads.

``knn="ann"`` for the lists of the vanilla, modality-aware and modality-QE
Jaccard goes through :func:`search_groups`: every row of ``X`` is searched
against each group of rows (one group per modality, or one group of all
rows), ``k`` neighbours per group. (The camera-split lists of ``"camera"``
and ``"modality-camera"`` use the recall@k calibration of :mod:`xmrank.knn.ann`.)

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
``n_sample`` seed rows and for every row in those lists (so that reciprocity
can be decided). For each group it then looks for the fewest probed IVF cells
(doubling, then bisecting to within 1/8) at which the group's own side of
those pairs (its lists, the other groups' held exact) keeps ``target_pairs``
of them and its lists hold ``target_read`` of the leading columns. The index
is IVF with 4-bit fast-scan product codes (:func:`build_index`; IVF-Flat for
odd ``d``), 2.4 times faster to scan than IVF-Flat at the same recall once
its ``8 k`` candidates are re-scored by the exact engines' rule
(:func:`xmrank.knn.rescore.rescore_lists`: float64 inner products, ties to
the smaller index), so ties and duplicate rows are ordered as exact search
orders them, and rows whose probed cells hold too few rows are searched
exactly.

Each group is searched the cheaper way by a cost model of N, the number of
cells, the calibrated probes and the engine (:func:`exact_cost`,
:func:`ivf_cost`, :func:`build_cost`): counts of pairs, scanned codes and
k-means products, each priced by a constant in units of one pair of faiss'
exact search. The constants are measured on this machine the first time a
search needs them, on tiny representative kernels (a few tens of ms), and
cached with the compiled kernels (:mod:`xmrank.knn.cost_model`: keyed by the
CPU, the thread counts and the faiss and torch versions, clamped to 1/4-4
times the fixed values :data:`EXACT_COST`, :data:`SCAN_COST`,
:data:`BUILD_COST`), so that an input makes the same choice on every run on
one machine; ``XMRANK_COST_MODEL=fixed`` keeps the fixed values (the test
suite does), and every :class:`GroupReport` names the constants used and
their source ("measured", "cached" or "fixed"). An index is not
even built where building it and probing the fewest cells would cost more
than :data:`ANN_MARGIN` (0.7) of exact search, and a calibrated index is used
only where its build, its search and the sample's exact lists cost less
than that (otherwise exact search reuses the sample's lists, or the seeds'
lists where the search stops after them: deciding costs exact search only
the seeds' quick cell check beyond what it reuses). Finally the
reciprocal pairs and leading columns of the lists actually returned are
measured on the sample, all groups together; below the targets a
:class:`~xmrank.knn.ann.RecallWarning` is raised. What was measured, chosen
and why is logged (logger ``xmrank.knn.ann_lists``, INFO, numbers in
``record.ann``).

Why thresholds of 0.99 / 0.99: measured with ``benchmarks/bench_scale.py``'s
gallery (d = 128), DBSCAN on the Jaccard distance agreed with the exact-list
result (ARI, noise as singletons) at 0.989 with 0.93 of the reciprocal pairs
and 0.95 of the leading columns kept (10 rows per identity, N = 50,000;
recall@15 was only 0.88), at 0.9997 with 0.996 / 0.998; but at 40 rows per
identity (N = 100,000) 0.975 / 0.98 gave 0.981 and 0.99 / 0.99 gave 0.993.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .._validation import InputError, check_int, check_real, check_seed, warn_user
from . import ann, cost_model
from .rescore import MARGIN, rescore_lists

logger = logging.getLogger(__name__)

__all__ = ["GroupReport", "search_groups", "exact_cost", "ivf_cost", "build_cost", "model_constants", "TARGET_PAIRS",
           "TARGET_READ", "N_SEEDS", "EXACT_COST", "SCAN_COST", "BUILD_COST", "ANN_MARGIN", "build_index",
           "index_kind"]

#: Share of the sample's exact reciprocal pairs that each group's approximate lists keep (its own side).
TARGET_PAIRS = 0.99
#: Share of the first ``k_read`` exact columns of each list that the approximate lists hold.
TARGET_READ = 0.99
#: Seed rows of the calibration sample (their lists' rows are searched exactly too).
N_SEEDS = 200
#: The fixed cost of one similarity in exact search, by engine, in units of faiss' brute-force search (BLAS
#: products and its top-k selection), used with ``XMRANK_COST_MODEL=fixed`` (otherwise measured on this machine,
#: :mod:`xmrank.knn.cost_model`). bf16: 0.36-0.45 measured against faiss at N = 50,000, d = 128, 2 cores.
EXACT_COST = dict(cost_model.FIXED_EXACT)
#: The fixed cost of scanning one database row of a probed cell, same units, by index: IVF-Flat 4.3-6.7 measured
#: (2 cores, d = 128: IVF-Flat at 15-29 % of the rows took 1.0-1.2 times faiss' brute-force search of all of them);
#: IVF with 4-bit fast-scan product codes 2.4 times less (300,000 rows, d = 128, 64 and 128 cells probed of 2,591).
SCAN_COST = dict(cost_model.FIXED_SCAN)
#: The fixed factor on :func:`build_cost`'s k-means count.
BUILD_COST = cost_model.FIXED_BUILD
#: Candidates the index proposes per neighbour (re-scored exactly): product codes only rank approximately.
CANDIDATE_FACTOR = 8
#: The index is used only where building it and searching with it is modelled below this share of exact
#: search: the model's constants are rough (tiny kernels, PQ training not modelled), and at 50,000 rows an index
#: chosen at 0.6 of exact search plus its build was slower than exact search in the end (7.0 s against 4.9 s).
ANN_MARGIN = 0.7
#: Query rows per block of the index search and re-scoring (bounds the candidate arrays).
_BLOCK = 65536


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
    pair_recall: float = 1.0  # this group's side, at the chosen nprobe
    read_recall: float = 1.0
    recall: float = 1.0  # recall@k on the sample, for comparison
    exact_engine: str = ""
    exact_cost: float = 0.0  # model units (:data:`EXACT_COST`)
    cost_constants: dict = field(default_factory=dict)  # the model's constants used (exact, scan, build)
    cost_source: str = ""  # where they come from: "measured", "cached" or "fixed"
    look_seconds: float = 0.0  # the calibration's share of ``seconds`` (seeds, checks, sample, index, probes)
    ann_cost: float = 0.0
    n_sample: int = 0
    n_pairs: int = 0
    target_pairs: float = TARGET_PAIRS
    target_read: float = TARGET_READ
    seconds: float = 0.0
    probes_tried: list = field(default_factory=list)  # (nprobe, pairs kept, leading columns, cost / exact)


def _model() -> cost_model.CostConstants:
    """The fixed constants of this module (:data:`EXACT_COST`, :data:`SCAN_COST`, :data:`BUILD_COST`)."""
    return cost_model.CostConstants(exact=dict(EXACT_COST), scan=dict(SCAN_COST), build=BUILD_COST, source="fixed")


def model_constants(engines=()) -> cost_model.CostConstants:
    """The constants :func:`search_groups` uses: this module's fixed ones with ``XMRANK_COST_MODEL=fixed``,
    else those measured on this machine (:func:`xmrank.knn.cost_model.constants`; ``engines``: the exact
    engines the search will run, "bf16" among them has its constant measured too)."""
    if cost_model.mode() == "fixed":
        return _model()
    return cost_model.constants(need_bf16="bf16" in engines)


def exact_cost(n_queries: int, n_database: int, engine: str, model=None) -> float:
    """Model cost of exact search (units of one faiss brute-force similarity; ``model``: the constants,
    None for the fixed ones)."""
    model = model or _model()
    return float(n_queries) * n_database * model.exact.get(engine, 1.0)


def ivf_cost(n_queries: int, n_database: int, nlist: int, nprobe: int, kind: str = "pqfs", model=None) -> float:
    """Model cost of an IVF search: the coarse products plus the probed cells' rows (``kind``: "flat" or "pqfs")."""
    model = model or _model()
    return float(n_queries) * (nlist + model.scan[kind] * nprobe * n_database / max(nlist, 1))


def index_kind(d: int) -> str:
    """The index layout for rows of ``d`` dimensions: 4-bit fast-scan codes of 2-dimension pieces, or flat."""
    return "pqfs" if d % 2 == 0 else "flat"


def build_index(db: np.ndarray, nlist: int, *, seed: int = 0):
    """A trained, filled IVF index of ``db`` for inner products: IVF-PQ fast-scan (``d`` even) or IVF-Flat.

    The product codes (``d / 2`` sub-quantizers of 16 centroids, 4 bits a
    row per two dimensions) only rank candidates; :func:`search_groups`
    re-scores ``CANDIDATE_FACTOR * k`` of them exactly.
    """
    import faiss

    n, d = db.shape
    if index_kind(d) == "flat":
        return ann.build_index(db, nlist, seed=seed)
    index = faiss.index_factory(d, f"IVF{nlist},PQ{d // 2}x4fs", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(seed)
    rng = np.random.default_rng(seed)
    n_train = min(n, ann._TRAIN_PER_CELL * nlist)
    train = db if n_train == n else db[np.sort(rng.choice(n, n_train, replace=False))]
    index.train(np.ascontiguousarray(train))
    index.add(db)
    return index


def build_cost(n_database: int, nlist: int, model=None) -> float:
    """Model cost of training and filling an IVF index (k-means iterations over the training rows, times the
    constant ``model.build``; None: the fixed constants)."""
    model = model or _model()
    n_train = min(n_database, ann._TRAIN_PER_CELL * nlist)
    return model.build * (float(_KMEANS_ITERATIONS) * n_train * nlist + float(n_database) * nlist)


#: faiss' k-means iterations for an IVF quantizer (``IndexIVF.cp.niter``; plain ``faiss.Clustering`` uses 25).
_KMEANS_ITERATIONS = 10


def _exact_engine(n_queries: int, n_database: int, d: int, name: str | None = None):
    """The exact engine "auto" picks for this size (or ``name``), as ``(name, search function)``."""
    from ..backend import resolve_knn

    engine = name or resolve_knn("auto", "cpu", shape=(n_queries, n_database, d))
    if engine == "bf16":
        from .exact_bf16 import search
    elif engine == "faiss":
        from .exact_faiss import search
    else:
        from .exact_numpy import search
    return engine, search


def _in_rows(lists: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values[p] in lists[rows[p]]`` for every p."""
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    return (lists[rows] == values[:, None]).any(axis=1)


def _check_groups(X, groups, k):
    if X.ndim != 2:
        raise InputError(f"X must be a 2-D array of rows; got shape {X.shape}.")
    n = X.shape[0]
    out = []
    owner = np.full(n, -1, dtype=np.int64)
    for gi, g in enumerate(groups):
        g = np.asarray(g)
        if g.ndim != 1 or g.size == 0 or not np.issubdtype(g.dtype, np.integer):
            raise InputError(f"groups[{gi}] must be a non-empty 1-D array of row indices.")
        g = g.astype(np.int64)
        if g.min() < 0 or g.max() >= n:
            raise InputError(f"groups[{gi}] holds row indices outside 0..{n - 1}.")
        if (owner[g] >= 0).any() or np.unique(g).size != g.size:
            raise InputError(f"groups[{gi}] repeats a row or shares one with an earlier group; groups must be disjoint.")
        if k > g.size:
            raise InputError(f"k={k} exceeds the {g.size} rows of groups[{gi}].")
        owner[g] = gi
        out.append(g)
    if not out:
        raise InputError("groups must hold at least one group of rows.")
    return out, owner


def _ivf_lists(index, Q, db, k, search_index, exact_rows):
    """Top-``k`` of ``Q`` in ``db`` from the index's ``k + MARGIN`` candidates, re-scored by the exact rule.

    Rows whose probed cells held too few rows (faiss' -1) are filled by
    ``exact_rows(row_indices)``, which returns their exact ``(sims, idx)``.
    Returns local indices into ``db`` and the share of such rows.
    """
    n = Q.shape[0]
    kk = min(max(k + MARGIN, CANDIDATE_FACTOR * k), db.shape[0])
    sims = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    _, cand = search_index(index, Q, kk)
    cand = np.ascontiguousarray(cand, dtype=np.int64)
    bad = (cand < 0).any(axis=1)
    good = np.flatnonzero(~bad)
    for s in range(0, good.size, _BLOCK):
        rows = good[s:s + _BLOCK]
        s_sub = np.empty((rows.size, k), dtype=np.float32)
        i_sub = np.empty((rows.size, k), dtype=np.int64)
        rescore_lists(np.ascontiguousarray(Q[rows]), db, cand[rows], k, s_sub, i_sub)
        sims[rows], idx[rows] = s_sub, i_sub
    missing = np.flatnonzero(bad)
    if missing.size:
        sims[missing], idx[missing] = exact_rows(missing)
    return sims, idx, float(bad.mean()) if n else 0.0


def _pairs(exact_lists, seeds, pos, owner, k):
    """The sample's exact reciprocal pairs, by the group of ``j``: (i seed, j in L_g(i), i in L_owner(i)(j))."""
    out = []
    for gi, lists in enumerate(exact_lists):
        li = lists[pos[seeds]]
        i_rep = np.repeat(seeds, k)
        j = li.ravel()
        keep = (j != i_rep) & (owner[i_rep] >= 0)
        i_rep, j = i_rep[keep], j[keep]
        back = np.zeros(i_rep.size, dtype=bool)
        own = owner[i_rep]
        for go in np.unique(own):
            sel = own == go
            back[sel] = _in_rows(exact_lists[go], pos[j[sel]], i_rep[sel])
        out.append((i_rep[back], j[back]))
    return out


def _kept(lists, pairs, pos, owner):
    """Share of ``pairs`` (by group of j) reciprocal in ``lists`` (sample-indexed lists, one per group)."""
    kept = total = 0
    for gi, (ii, jj) in enumerate(pairs):
        fwd = _in_rows(lists[gi], pos[ii], jj)
        back = np.zeros(ii.size, dtype=bool)
        own = owner[ii]
        for go in np.unique(own):
            sel = own == go
            back[sel] = _in_rows(lists[go], pos[jj[sel]], ii[sel])
        kept += int((fwd & back).sum())
        total += ii.size
    return kept / total if total else 1.0


def _read(lists, exact_lists, seed_pos, k_read):
    """Share of the seeds' first ``k_read`` exact columns held in the first ``k_read`` columns of ``lists``."""
    shares = [(e[seed_pos][:, :k_read, None] == a[seed_pos][:, None, :k_read]).any(axis=2).mean()
              for a, e in zip(lists, exact_lists)]
    return float(np.mean(shares)) if shares else 1.0


#: Training rows per cell and k-means iterations of the quick quantizer of :func:`_cell_recall`.
_PROBE_ROWS_PER_CELL, _PROBE_ITERATIONS = 16, 5
#: :func:`_cell_recall` below ``target_read - CELL_SLACK`` at the most probes exact search leaves room for: hopeless.
CELL_SLACK = 0.03
#: The coarse quantizer's check (a quarter of the cells, the same share probed) settles a group as hopeless only
#: below ``target_read - CELL_SLACK - COARSE_SLACK``: coarser cells may hold fewer of the neighbours.
COARSE_SLACK = 0.2


def _cell_recall(db: np.ndarray, seeds_x: np.ndarray, seed_local: np.ndarray, nlist: int, nprobe: int,
                 k_read: int, seed: int) -> float:
    """Share of the seeds' first ``k_read`` exact neighbours that lie in one of the seed's ``nprobe`` nearest cells.

    The cells are those of a quick k-means quantizer (``_PROBE_ROWS_PER_CELL``
    training rows a cell, ``_PROBE_ITERATIONS`` iterations: a small share of
    the cost of building the index). An IVF search finds a row only in the
    cells it probes, so this share bounds what any index of ``nlist`` cells
    probed ``nprobe`` times can keep of the leading columns (up to the
    difference between this quantizer and the index's own).
    """
    import faiss

    n, d = db.shape
    rng = np.random.default_rng(seed + 11)
    n_train = min(n, _PROBE_ROWS_PER_CELL * nlist)
    train = db if n_train == n else db[np.sort(rng.choice(n, n_train, replace=False))]
    km = faiss.Kmeans(d, nlist, niter=_PROBE_ITERATIONS, seed=int(seed) % (2**31), spherical=False,
                      max_points_per_centroid=_PROBE_ROWS_PER_CELL, min_points_per_centroid=1, verbose=False)
    km.train(np.ascontiguousarray(train))
    # cells by inner product, as the index's quantizer ranks them
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(centroids)
    _, probed = quantizer.search(np.ascontiguousarray(seeds_x), int(min(nprobe, nlist)))
    lead = seed_local[:, :k_read]
    rows = np.unique(lead[lead >= 0])
    _, cell = quantizer.search(np.ascontiguousarray(db[rows]), 1)
    cell_of = np.full(n, -1, dtype=np.int64)
    cell_of[rows] = cell[:, 0]
    cells = np.where(lead >= 0, cell_of[np.maximum(lead, 0)], -2)
    found = (cells[:, :, None] == probed[:, None, :]).any(axis=2)
    return float(found[lead >= 0].mean()) if (lead >= 0).any() else 1.0


def search_groups(X: np.ndarray, groups, k: int, *, k_read: int = 1, target_pairs: float | None = None,
                  target_read: float | None = None, n_sample: int = N_SEEDS, seed: int = 0,
                  min_rows: int | None = None, return_report: bool = False, search_index=None, search_exact=None,
                  exact_engine: str | None = None):
    """For each group, the ``k`` most similar rows of that group to every row of ``X``, approximately.

    Parameters
    ----------
    X : ndarray of float32, shape (n, d)
        Every row is a query; the groups' rows are the databases.
    groups : sequence of ndarray of int
        Row indices of each group: non-empty, disjoint, each with at least
        ``k`` rows (together they need not cover ``X``).
    k : int
        List length per group.
    k_read : int, default=1
        Leading columns of each list that the caller reads whether reciprocal
        or not (the Jaccard methods' query-expansion length ``k2``).
    target_pairs, target_read : float, default=None
        Calibration targets; None reads :data:`TARGET_PAIRS` (0.99) and
        :data:`TARGET_READ` (0.99).
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
    exact_engine : str, default=None
        The engine ``search_exact`` runs, for the cost model; None: the one
        "auto" picks here.

    Returns
    -------
    lists : list of (similarities, indices)
        One pair per group, each of shape (n, k): exact float64 inner products
        rounded to float32, decreasing, ties by the smaller row; indices are
        rows of ``X``.
    reports : list of GroupReport
        Only with ``return_report=True``.

    Raises
    ------
    xmrank.InputError
        For malformed groups (empty, overlapping, out of range, fewer than
        ``k`` rows) or arguments.
    """
    seed = check_seed(seed, "seed", maximum=2**31 - 1, generator=False)
    k = check_int(k, "k", minimum=1)
    k_read = min(check_int(k_read, "k_read", minimum=1), k)
    n_sample = check_int(n_sample, "n_sample", minimum=1)
    target_pairs = TARGET_PAIRS if target_pairs is None else check_real(target_pairs, "target_pairs", low=0, high=1)
    target_read = TARGET_READ if target_read is None else check_real(target_read, "target_read", low=0, high=1)
    min_rows = ann.MIN_ROWS if min_rows is None else check_int(min_rows, "min_rows", minimum=0)
    X = np.ascontiguousarray(X, dtype=np.float32)
    groups, owner = _check_groups(X, groups, k)
    n, d = X.shape
    dbs = [np.ascontiguousarray(X[g]) for g in groups]
    engines = [_exact_engine(n, db.shape[0], d, exact_engine) for db in dbs]
    # the model's constants: measured on this machine at first use (cached), or fixed; not needed for small groups
    model = (model_constants({e for e, _ in engines}) if any(g.size >= min_rows for g in groups)
             else _model())
    costs = {"cost_constants": model.as_dict(), "cost_source": model.source}

    def run_exact(gi, Q):
        return (search_exact or engines[gi][1])(np.ascontiguousarray(Q), dbs[gi], k)

    # an index pays only where building it and probing the fewest cells costs well below exact search
    kind = index_kind(d)
    hopeless, nlists = [], [ann.choose_nlist(g.size) for g in groups]
    for gi, (g, nlist) in enumerate(zip(groups, nlists)):
        floor = build_cost(g.size, nlist, model) + ivf_cost(n, g.size, nlist, min(nlist, ann.MIN_NPROBE), kind, model)
        exact_est = exact_cost(n, g.size, engines[gi][0], model)
        if g.size < min_rows:
            hopeless.append(f"below min_rows={min_rows}")
        elif floor >= ANN_MARGIN * exact_est:
            hopeless.append(f"building an index of {nlist} cells and probing {min(nlist, ann.MIN_NPROBE)} would cost "
                            f"{floor / exact_est:.2f} of exact search ({engines[gi][0]}), above {ANN_MARGIN}")
        else:
            hopeless.append("")

    def plain_exact(t_look=0.0, known=None):
        """Exact search of every group; ``known``: (rows, their exact (sims, local idx) per group), reused."""
        out, reports = [], []
        for gi, g in enumerate(groups):
            t0 = time.perf_counter()
            if known is None:
                s, i = run_exact(gi, X)
            else:
                rows, lists = known
                s = np.empty((n, k), dtype=np.float32)
                i = np.empty((n, k), dtype=np.int64)
                s[rows], i[rows] = lists[gi]
                other = np.setdiff1d(np.arange(n), rows, assume_unique=True)
                s[other], i[other] = run_exact(gi, X[other])
            out.append((s, g[i]))
            reports.append(GroupReport(gi, n, g.size, k, k_read, "exact", hopeless[gi], exact_engine=engines[gi][0],
                                       exact_cost=exact_cost(n, g.size, engines[gi][0], model),
                                       seconds=time.perf_counter() - t0 + (t_look if gi == 0 else 0.0),
                                       look_seconds=t_look if gi == 0 else 0.0, **costs))
        _log(reports)
        return (out, reports) if return_report else out

    if all(hopeless):  # no calibration sample either: plain exact search
        return plain_exact()

    # --- the calibration sample: seeds, their exact lists, and the exact lists of every listed row ---
    t_cal = time.perf_counter()
    rng = np.random.default_rng(seed + 7)
    seeds = np.sort(rng.choice(n, min(n, n_sample), replace=False))
    # the calibration runs here, with the engine "auto" picks for the whole search (identical lists whichever)
    local = [_exact_engine(n, db.shape[0], d) for db in dbs]
    # the seeds alone: the engine "auto" picks for their shape (no bfloat16 set-up for 200 rows)
    seed_found = [_exact_engine(seeds.size, db.shape[0], d)[1](X[seeds], db, k) for db in dbs]
    seed_exact = [i for _, i in seed_found]
    listed = np.unique(np.concatenate([g[i].ravel() for g, i in zip(groups, seed_exact)]))
    sample = np.union1d(seeds, listed)
    # The seeds' lists (n_sample / N of exact search) tell how tight the data is: on loose data (few rows per
    # identity, noise) they share few rows, the sample is large, and its exact lists alone may cost more than
    # an index could save. Decide that now, before paying for the sample, an index or any probing.
    for gi, (g, nlist) in enumerate(zip(groups, nlists)):
        if hopeless[gi]:
            continue
        exact_est = exact_cost(n, g.size, engines[gi][0], model)
        # the least the index path can cost: the sample's exact lists, the build, and the fewest probes the
        # calibration measures (it starts at min(MIN_NPROBE, the most the budget allows) and never goes below)
        fixed = build_cost(g.size, nlist, model) + exact_cost(sample.size, g.size, engines[gi][0], model)
        top = int(min(nlist, math.floor(((ANN_MARGIN * exact_est - fixed) / n - nlist) * nlist
                                        / (model.scan[kind] * g.size))))
        fewest = min(nlist, ann.MIN_NPROBE, max(top, 1))
        floor = fixed + ivf_cost(n, g.size, nlist, fewest, kind, model)
        if floor >= ANN_MARGIN * exact_est:
            hopeless[gi] = (f"the calibration sample holds {sample.size} rows (the {seeds.size} seeds' lists share "
                            f"few rows): its exact lists, an index of {nlist} cells and {fewest} probes would cost "
                            f"{floor / exact_est:.2f} of exact search ({engines[gi][0]}), above {ANN_MARGIN}")
            continue
        # where even the most probes the budget leaves do not reach the seeds' leading columns, no nprobe will;
        # a coarse quantizer first (a quarter of the cells, the same share probed: 1/16 of the k-means), which
        # settles loose data by a wide margin, then the index's own number of cells
        coarse = nlist // 4
        if coarse >= 8:
            coarse_probes = max(1, int(round(max(top, 1) * coarse / nlist)))
            reach = _cell_recall(dbs[gi], X[seeds], seed_exact[gi], coarse, coarse_probes, k_read, seed)
            if reach < target_read - CELL_SLACK - COARSE_SLACK:
                hopeless[gi] = (f"the {coarse_probes} cells of {coarse} (a coarse quantizer; the budget leaves "
                                f"{max(top, 1)} of {nlist}) hold {reach:.3f} of the seeds' first {k_read} neighbours, "
                                f"below {target_read - CELL_SLACK - COARSE_SLACK:.2f}: loose data, no index can pay")
                continue
        reach = _cell_recall(dbs[gi], X[seeds], seed_exact[gi], nlist, max(top, 1), k_read, seed)
        if reach < target_read - CELL_SLACK:
            hopeless[gi] = (f"the {max(top, 1)} cells of {nlist} that cost less than exact search hold "
                            f"{reach:.3f} of the seeds' first {k_read} neighbours (a quick quantizer), below "
                            f"{target_read - CELL_SLACK:.2f}: loose data, no index can pay")
    if all(hopeless):  # exact search reuses the seeds' lists
        return plain_exact(time.perf_counter() - t_cal, (seeds, seed_found))
    pos = np.full(n, -1, dtype=np.int64)
    pos[sample] = np.arange(sample.size)
    seed_pos = pos[seeds]
    exact_lists, exact_local, exact_sims = [], [], []
    for (_, search), g, db in zip(local, groups, dbs):
        s, i = search(X[sample], db, k)
        exact_lists.append(g[i])
        exact_local.append(i)
        exact_sims.append(s)
    pairs = _pairs(exact_lists, seeds, pos, owner, k)
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)  # rows whose exact lists are not known yet
    t_cal = time.perf_counter() - t_cal

    out_lists: list = [None] * len(groups)
    final_sample = list(exact_lists)  # the returned lists on the sample, for the joint check
    reports = []
    for gi, (g, db) in enumerate(zip(groups, dbs)):
        t0 = time.perf_counter()
        exact_est = exact_cost(n, g.size, engines[gi][0], model)
        report = GroupReport(gi, n, g.size, k, k_read, "exact", "", exact_engine=engines[gi][0], exact_cost=exact_est,
                             n_sample=int(sample.size), target_pairs=target_pairs, target_read=target_read, **costs)
        # this group's side of the pairs: pairs through its lists, and pairs whose return list is its own
        mine = [(ii, jj) if go == gi else (ii[owner[ii] == gi], jj[owner[ii] == gi]) for go, (ii, jj) in enumerate(pairs)]
        report.n_pairs = int(sum(ii.size for ii, _ in mine))
        nlist = nlists[gi]
        if hopeless[gi]:
            report.reason = hopeless[gi]
        else:
            report.nlist = nlist
            index = build_index(db, nlist, seed=seed)
            def exact_sample(rows, gi=gi):  # rows: positions in the sample, whose exact lists are known
                return exact_sims[gi][rows], exact_local[gi][rows]

            def measure(nprobe):
                index.nprobe = int(nprobe)
                _, loc, bad_share = _ivf_lists(index, X[sample], db, k, ann.search_index, exact_sample)
                found = g[loc]
                lists = [found if go == gi else exact_lists[go] for go in range(len(groups))]
                kept = _kept(lists, mine, pos, owner)
                read = _read([found], [exact_lists[gi]], seed_pos, k_read)
                recall = _read([found], [exact_lists[gi]], seed_pos, k)
                cost = ivf_cost(n, g.size, nlist, nprobe, kind, model) + bad_share * n * g.size * model.exact.get(
                    engines[gi][0], 1.0)
                report.probes_tried.append((int(nprobe), round(kept, 4), round(read, 4), round(cost / exact_est, 3)))
                return int(nprobe), kept, read, recall, cost

            def meets(m):
                return m[1] >= target_pairs and m[2] >= target_read

            # the most probes whose build and search still cost less than ANN_MARGIN of exact search
            # fixed costs of the index path: the build, and the sample's exact lists (exact search reuses them)
            fixed = build_cost(g.size, nlist, model) + exact_cost(sample.size, g.size, engines[gi][0], model)
            budget = ANN_MARGIN * exact_est - fixed
            top = int(min(nlist, math.floor((budget / n - nlist) * nlist / (model.scan[kind] * g.size))))
            lo, hi = 0, min(nlist, ann.MIN_NPROBE, max(top, 1))
            m_hi = measure(hi)
            while not meets(m_hi) and hi < top:
                lo, hi = hi, min(top, hi * 2)
                m_hi = measure(hi)
            chosen = m_hi if meets(m_hi) else None
            while chosen is not None and lo and hi - lo > max(1, lo // 8):
                mid = (lo + hi) // 2
                m = measure(mid)
                if meets(m):
                    hi, chosen = mid, m
                else:
                    lo = mid
            if chosen is None:
                report.reason = (f"targets not met with up to {m_hi[0]} of {nlist} cells probed, the most that cost "
                                 f"less than exact search (pairs {m_hi[1]:.3f}, leading columns {m_hi[2]:.3f})")
            elif chosen[4] + fixed >= ANN_MARGIN * exact_est:
                report.reason = (f"calibrated nprobe {chosen[0]} of {nlist} would cost "
                                 f"{(chosen[4] + fixed) / exact_est:.2f} of exact search ({engines[gi][0]}) with the "
                                 f"index build and the sample's exact lists, above {ANN_MARGIN}")
            else:
                report.choice = "ann"
                report.nprobe, report.pair_recall, report.read_recall, report.recall, report.ann_cost = (
                    int(chosen[0]), float(chosen[1]), float(chosen[2]), float(chosen[3]), float(chosen[4]))
                report.reason = (f"calibrated nprobe {chosen[0]} of {nlist}: about {chosen[4] / exact_est:.2f} of "
                                 f"the cost of exact search ({engines[gi][0]})")
                index.nprobe = report.nprobe
                report.look_seconds = time.perf_counter() - t0 + (t_cal if gi == 0 else 0.0)

                def exact_any(rows, gi=gi):
                    return run_exact(gi, X[rows])

                s, i, _ = _ivf_lists(index, X, db, k, search_index or ann.search_index, exact_any)
                out_lists[gi] = (s, g[i])
                final_sample[gi] = out_lists[gi][1][sample]
            del index
        if out_lists[gi] is None:  # exact: the sample's lists are known already
            report.look_seconds = time.perf_counter() - t0 + (t_cal if gi == 0 else 0.0)
            sims = np.empty((n, k), dtype=np.float32)
            idx = np.empty((n, k), dtype=np.int64)
            sims[sample], idx[sample] = exact_sims[gi], exact_lists[gi]
            for s0 in range(0, rest.size, 8 * _BLOCK):
                rows = rest[s0:s0 + 8 * _BLOCK]
                s, i = run_exact(gi, X[rows])
                sims[rows], idx[rows] = s, g[i]
            out_lists[gi] = (sims, idx)
        report.seconds = time.perf_counter() - t0 + (t_cal if gi == 0 else 0.0)
        reports.append(report)

    # --- what the returned lists keep, all groups together ---
    joint_pairs = _kept(final_sample, pairs, pos, owner)
    joint_read = _read(final_sample, exact_lists, seed_pos, k_read)
    _log(reports)
    if any(r.choice == "ann" for r in reports):
        logger.info("knn='ann': the returned lists keep %.3f of the sample's reciprocal pairs and %.3f of its "
                    "leading %d columns (targets %.2f, %.2f)", joint_pairs, joint_read, k_read, target_pairs,
                    target_read, extra={"ann_joint": {"pairs": joint_pairs, "read": joint_read}})
        # each group meets its target on its own side; together a pair can be lost on both sides
        joint_target = 1.0 - len(groups) * (1.0 - target_pairs)
        if joint_pairs < joint_target or joint_read < target_read:
            warn_user(f"knn='ann': the returned neighbour lists keep {joint_pairs:.3f} of a sample's reciprocal "
                      f"pairs and {joint_read:.3f} of its first {k_read} columns, below the targets; use an exact "
                      "engine (knn='auto') for exact results.", ann.RecallWarning)
    return (out_lists, reports) if return_report else out_lists


def _log(reports) -> None:
    for r in reports:
        if r.choice == "ann":
            logger.info("knn='ann' group %d (%d rows): IVF nprobe %d of %d; reciprocal pairs kept %.3f, "
                        "leading %d columns %.3f, recall@%d %.3f on %d sampled rows; %s", r.group, r.n_database,
                        r.nprobe, r.nlist, r.pair_recall, r.k_read, r.read_recall, r.k, r.recall, r.n_sample,
                        r.reason, extra={"ann": asdict(r)})
        else:
            logger.info("knn='ann' group %d (%d rows): searched exactly: %s", r.group, r.n_database, r.reason,
                        extra={"ann": asdict(r)})
