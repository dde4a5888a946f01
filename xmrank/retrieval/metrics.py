"""``evaluate``: mAP, mINP and CMC of a query x gallery distance matrix.

The three protocols follow the published evaluation code of the VI-ReID
literature (AGW / DDAG ``eval_sysu`` and ``eval_regdb``) and of Market-1501:

============  ===========================================  ======================
protocol      gallery items removed for a query            CMC computed on
============  ===========================================  ======================
``"sysu"``    camera-2 items, for camera-3 queries         identity-deduplicated
                                                           ranking
``"regdb"``   none                                         raw ranking
``"market"``  same identity *and* same camera as the query raw ranking
``"llcm"``    same identity *and* same camera as the query identity-deduplicated
                                                           ranking
============  ===========================================  ======================

mAP and mINP always use the raw ranking (after removal). A query with no
remaining gallery item of its identity is skipped and counted (one warning says how many). ``"llcm"``
is ``eval_llcm`` of the LLCM authors' code (ZYK100/LLCM, CVPR 2023): the
Market-1501 removal with the SYSU-MM01 CMC.

With ``roc=True`` the verification rate is reported too: every kept
(query, gallery) pair is a same-identity or a different-identity pair, and
``TPR@FPR=f`` is the share of same-identity pairs accepted by the distance
threshold that accepts a share ``f`` of the different-identity pairs.

Everything is vectorised over blocks of queries, with boolean masks for the
removals. Two exact strategies give identical results: when queries have few
positives (the VI-ReID case) the rank of each positive is *counted* (how many
kept items rank before it) without sorting; otherwise each row is sorted
once and AP, INP and CMC come from cumulative sums.
"""

from __future__ import annotations

import logging

import numpy as np

from .._params import DEFAULTS as _D
from .._params import PARAMS, resolve_protocol
from .._params import PROTOCOLS as _PROTOCOL_RULES
from .._validation import InputError, _to_numpy, check_label_values, either_spelling, warn_user

logger = logging.getLogger(__name__)

__all__ = ["evaluate", "PROTOCOLS", "ROC_FPRS"]

#: Protocol names accepted by ``protocol=`` (declared in :data:`xmrank._params.PROTOCOLS`, with the rule of each).
PROTOCOLS = tuple(_PROTOCOL_RULES)
#: Protocols whose CMC ranks distinct identities.
_DEDUP = ("sysu", "llcm")
#: False-positive rates of ``roc=True`` (fast-reid reports 1e-4, 1e-3, 1e-2).
ROC_FPRS = (1e-4, 1e-3, 1e-2, 1e-1)

#: Entries of the query x gallery block processed at once.
_BLOCK_ENTRIES = 1 << 22
#: Count ranks (positives x gallery) rather than sort (queries x gallery x log) below this cost ratio.
_COUNTING_FACTOR = 1.0


def evaluate(
    distmat,
    query_ids,
    gallery_ids,
    query_cameras=None,
    gallery_cameras=None,
    *,
    protocol: str = _D["protocol"],
    max_rank: int = _D["max_rank"],
    roc: bool = False,
    query_cams=None,
    gallery_cams=None,
):
    """Score a query x gallery distance matrix: mAP, mINP and the CMC curve.

    Parameters
    ----------
    distmat : array-like of shape (n_query, n_gallery)
        Smaller is more similar (pass ``-query @ gallery.T`` for inner-product
        scores, as the published test scripts do). Finite values only.
    query_ids, gallery_ids : array-like of shape (n_query,), (n_gallery,)
        Identity labels (ints or strings); equal labels are matches.
    query_cameras, gallery_cameras : array-like of int, default=None
        Camera numbers. Required by ``"sysu"`` (SYSU-MM01 camera numbers 1-6:
        the rule compares with cameras 3 and 2), ``"market"`` and ``"llcm"``;
        ignored by ``"regdb"``. Fourth and fifth positional arguments, as in
        the published ``eval_sysu(distmat, q_pids, g_pids, q_camids, g_camids)``.
    protocol : {"sysu", "regdb", "market", "llcm"} or None, default=None
        See the module docstring. None (the default of every xmrank function
        and command, :func:`xmrank._params.resolve_protocol`): "regdb" for
        rows without cameras, the one rule that reads none; with cameras it
        must be given (the rules treat cameras differently, and a wrong
        guess would change the scores without a word). Before issue 24 the
        default here was "sysu": pass ``protocol="sysu"`` for SYSU-MM01.
    max_rank : int, default=20
        Length of the returned CMC curve (cut at ``n_gallery``).
    roc : bool, default=False
        Also report the true-positive rate at false-positive rates 1e-4,
        1e-3, 1e-2 and 1e-1 over all kept pairs (see Notes).
    query_cams, gallery_cams : array-like of int, default=None
        The older spelling of ``query_cameras`` and ``gallery_cameras``,
        still accepted as keywords (messages then use it).

    Returns
    -------
    result : dict
        ``"mAP"``, ``"mINP"`` : float in [0, 1], means over the valid queries;
        ``"cmc"`` : ndarray of float64, ``cmc[k-1]`` = Rank-k;
        ``"n_queries"``, ``"n_valid"``, ``"n_skipped"`` : int, queries in all,
        scored, and skipped for having no valid match; ``"protocol"`` : str.
        With ``roc=True`` also ``"roc_fpr"`` and ``"roc_tpr"`` (ndarrays):
        ``roc_tpr[i]`` is the TPR at false-positive rate ``roc_fpr[i]``.

    Raises
    ------
    xmrank.InputError
        Unknown protocol, shapes or lengths that do not match, NaN or
        infinite distances, missing cameras, or no query with a valid match.

    Notes
    -----
    - AP of a query: mean over its positives of (positives so far) / (rank).
    - INP: (number of positives) / (rank of the last positive).
    - Rank-k: the share of valid queries whose first positive is within the
      first k items (on SYSU-MM01, the first k *distinct identities*).
    - Ties in ``distmat`` are broken by the smaller gallery index (a stable
      sort); the published code uses numpy's default, unstable, sort, so the
      two can differ only where a query has exactly tied distances.
    - ROC: the pairs are those the protocol keeps, from every query (also
      those without a match). At a false-positive rate ``f`` the threshold
      accepts the ``floor(f · n_different)`` closest different-identity pairs
      and nothing at or beyond the next one; TPR is the share of
      same-identity pairs closer than that. fast-reid's ``evaluate_roc``
      labels the pairs the other way round (same identity = 0, distance as
      the score), so what it prints as TPR at FPR ``f`` is the share of
      different-identity pairs rejected when a share ``f`` of same-identity
      pairs is rejected; the two agree only by coincidence. The distances
      of all queries are compared with one threshold, so they must be on
      one scale (true of cosine, Euclidean and re-ranked distances).

    Examples
    --------
    >>> import numpy as np, xmrank
    >>> d = np.array([[0.1, 0.5, 0.3]])
    >>> r = xmrank.evaluate(d, [7], [7, 8, 7], protocol="regdb", max_rank=3)
    >>> round(r["mAP"], 3), r["cmc"].tolist()
    (1.0, [1.0, 1.0, 1.0])
    """
    D = _check_distmat(distmat)
    nq, ng = D.shape
    max_rank = PARAMS["max_rank"](max_rank)
    q_ids, g_ids = _encode_ids(query_ids, gallery_ids, nq, ng)
    q_cam = g_cam = None
    if not isinstance(roc, (bool, np.bool_)):
        raise InputError(f"roc must be True or False; got {roc!r}.")
    query_cameras, q_name = either_spelling(query_cameras, query_cams, "query_cameras", "query_cams")
    gallery_cameras, g_name = either_spelling(gallery_cameras, gallery_cams, "gallery_cameras", "gallery_cams")
    protocol = resolve_protocol(protocol, query_cameras, gallery_cameras)
    if protocol != "regdb":
        if query_cameras is None or gallery_cameras is None:
            raise InputError(f"protocol={protocol!r} needs query_cams and gallery_cams (query_cameras and "
                             "gallery_cameras): one camera number per row.")
        q_cam = _check_1d(query_cameras, nq, q_name, "row of distmat")
        g_cam = _check_1d(gallery_cameras, ng, g_name, "column of distmat")
        if protocol == "sysu" and not (np.issubdtype(q_cam.dtype, np.integer) and np.issubdtype(g_cam.dtype, np.integer)):
            raise InputError(f"protocol='sysu' needs integer camera numbers (1-6) in {q_name} and {g_name}.")
        if protocol == "sysu":
            outside = int(((q_cam < 1) | (q_cam > 6)).sum() + ((g_cam < 1) | (g_cam > 6)).sum())
            if outside:
                warn_user(f"evaluate(protocol='sysu'): {outside} camera number(s) outside SYSU-MM01's 1-6 (numbered "
                          "from 0?); the rule that removes camera-2 items for camera-3 queries reads the numbers "
                          "as given.")

    n_ranks = min(max_rank, ng)
    ap = np.zeros(nq)
    inp = np.zeros(nq)
    first = np.zeros(nq, dtype=np.int64)  # 1-based rank of the first positive (0 = none)
    groups = _id_groups(g_ids) if protocol in _DEDUP else None
    rows = max(1, _BLOCK_ENTRIES // ng)
    for lo in range(0, nq, rows):
        hi = min(nq, lo + rows)
        ap[lo:hi], inp[lo:hi], first[lo:hi] = _score_block(
            D[lo:hi], q_ids[lo:hi], g_ids, None if q_cam is None else q_cam[lo:hi], g_cam, protocol, groups
        )
    valid = first > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise InputError(f"No query has a valid match in the gallery under protocol {protocol!r} ({nq} queries); "
                         "check the ids and cameras.")
    if n_valid < nq:
        warn_user(f"evaluate(protocol={protocol!r}): {nq - n_valid} of {nq} queries have no valid match in the "
                  "gallery and are skipped; the scores are over the other queries.")
    hist = np.bincount(first[valid], minlength=n_ranks + 1)[1 : n_ranks + 1]
    cmc = np.cumsum(hist) / n_valid
    out = {
        "mAP": float(ap[valid].mean()),
        "mINP": float(inp[valid].mean()),
        "cmc": cmc.astype(np.float64),
        "n_queries": int(nq),
        "n_valid": n_valid,
        "n_skipped": int(nq - n_valid),
        "protocol": protocol,
    }
    if roc:
        out["roc_fpr"] = np.array(ROC_FPRS)
        out["roc_tpr"] = _roc(D, q_ids, g_ids, q_cam, g_cam, protocol, rows)
    return out


def _roc(D, q_ids, g_ids, q_cam, g_cam, protocol, rows):
    """TPR at each of :data:`ROC_FPRS` over the kept pairs (see :func:`evaluate`, Notes)."""
    genuine, impostor = [], []
    for lo in range(0, D.shape[0], rows):
        hi = min(D.shape[0], lo + rows)
        match, keep = _masks(q_ids[lo:hi], g_ids, None if q_cam is None else q_cam[lo:hi], g_cam, protocol)
        block = D[lo:hi]
        genuine.append(block[match & keep])
        impostor.append(block[~match & keep])
    genuine = np.concatenate(genuine)
    impostor = np.concatenate(impostor)
    if genuine.size == 0 or impostor.size == 0:
        raise InputError("roc=True needs both same-identity and different-identity pairs among the kept pairs.")
    allowed = np.floor(np.array(ROC_FPRS) * impostor.size + 1e-9).astype(np.int64)
    kth = np.unique(allowed[allowed < impostor.size])
    part = np.partition(impostor, kth) if kth.size else impostor
    tpr = np.empty(len(ROC_FPRS))
    genuine.sort()
    for i, a in enumerate(allowed):
        if a >= impostor.size:
            tpr[i] = 1.0
        else:
            tpr[i] = np.searchsorted(genuine, part[a], side="left") / genuine.size
    return tpr


def _masks(q_ids, g_ids, q_cam, g_cam, protocol, order=None):
    """``match`` (same identity) and ``keep`` (not removed by the protocol), in gallery order or in ``order``."""
    ids = g_ids[None, :] if order is None else g_ids[order]
    cams = None if g_cam is None else (g_cam[None, :] if order is None else g_cam[order])
    match = ids == q_ids[:, None]
    if protocol == "sysu":
        keep = ~((q_cam == 3)[:, None] & (cams == 2))
    elif protocol in ("market", "llcm"):
        keep = ~(match & (cams == q_cam[:, None]))
    else:
        keep = np.ones(match.shape, dtype=bool)
    return np.broadcast_to(match, keep.shape), keep


def _score_block(D, q_ids, g_ids, q_cam, g_cam, protocol, groups):
    """AP, INP and first-positive rank (the CMC rank; 0 when the query has no valid match) of a block of queries.

    Picks the cheaper of two exact strategies: counting, for each positive,
    the kept items ranked before it (cost: positives x gallery), or sorting
    each row (cost: queries x gallery x log gallery).
    """
    nq, ng = D.shape
    match, keep = _masks(q_ids, g_ids, q_cam, g_cam, protocol)
    pos = match & keep
    n_pairs = int(np.count_nonzero(pos))
    if n_pairs <= _COUNTING_FACTOR * nq * (np.log2(ng) + 4):
        return _score_by_counting(D, pos, keep, protocol, groups)
    return _score_by_sorting(D, q_ids, g_ids, q_cam, g_cam, protocol)


def _before(rowvals, cols, vals, pivot_cols):
    """``rowvals[r, c]`` ranks before the pivot ``(vals[r], pivot_cols[r])``: smaller value, ties by index."""
    return (rowvals < vals[:, None]) | ((rowvals == vals[:, None]) & (cols[None, :] < pivot_cols[:, None]))


def _score_by_counting(D, pos, keep, protocol, groups):
    nq, ng = D.shape
    cols = np.arange(ng)
    n_pos = pos.sum(axis=1)
    qi, gj = np.nonzero(pos)  # every (query, positive) pair, grouped by query
    vals = D[qi, gj]
    # 1-based rank of each positive among its query's positives: sort the pairs by (query, value, column)
    by_rank = np.lexsort((gj, vals, qi))
    group_start = np.repeat(np.cumsum(n_pos) - n_pos, n_pos)
    hits = np.empty(len(qi), dtype=np.int64)
    hits[by_rank] = np.arange(len(qi)) - group_start + 1
    firsts = hits == 1
    rank = np.empty(len(qi), dtype=np.int64)  # 1-based rank among the kept items
    first_rank = np.zeros(nq, dtype=np.int64)
    step = max(1, _BLOCK_ENTRIES // ng)
    for a in range(0, len(qi), step):
        b = min(len(qi), a + step)
        r, c = qi[a:b], gj[a:b]
        ahead = _before(D[r], cols, vals[a:b], c)
        if protocol != "regdb":
            ahead &= keep[r]
        rank[a:b] = np.count_nonzero(ahead, axis=1) + 1
        if protocol in _DEDUP:
            # distinct identities with a kept item ranked before the first positive, plus one
            f = firsts[a:b]
            perm, starts = groups
            per_id = np.logical_or.reduceat(ahead[f][:, perm], starts, axis=1)
            first_rank[r[f]] = np.count_nonzero(per_id, axis=1) + 1
    if protocol not in _DEDUP:
        first_rank[qi[firsts]] = rank[firsts]
    ap = np.bincount(qi, weights=hits / rank, minlength=nq) / np.maximum(n_pos, 1)
    last = np.zeros(nq, dtype=np.int64)
    np.maximum.at(last, qi, rank)
    inp = n_pos / np.maximum(last, 1)
    return ap, inp, first_rank


def _score_by_sorting(D, q_ids, g_ids, q_cam, g_cam, protocol):
    nq, ng = D.shape
    order = np.argsort(D, axis=1, kind="stable")
    match, keep = _masks(q_ids, g_ids, q_cam, g_cam, protocol, order)
    ids = g_ids[order]
    pos = match & keep
    n_pos = pos.sum(axis=1)
    valid = n_pos > 0
    rank = np.cumsum(keep, axis=1, dtype=np.int64)  # 1-based rank among the kept items
    hits = np.cumsum(pos, axis=1, dtype=np.int64)
    precision = np.where(pos, hits / np.maximum(rank, 1), 0.0)
    safe = np.maximum(n_pos, 1)
    ap = precision.sum(axis=1) / safe
    last = np.where(pos, rank, 0).max(axis=1)
    inp = np.where(valid, n_pos / np.maximum(last, 1), 0.0)
    first_col = np.argmax(pos, axis=1)
    if protocol in _DEDUP:
        first_rank = _dedup_rank(ids, keep, first_col)
    else:
        first_rank = rank[np.arange(nq), first_col]
    return ap, inp, np.where(valid, first_rank, 0)


def _id_groups(g_ids):
    """Gallery columns grouped by identity: (permutation, start of each group)."""
    perm = np.argsort(g_ids, kind="stable")
    sorted_ids = g_ids[perm]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return perm, starts


def _dedup_rank(ids, keep, first_col):
    """Rank of column ``first_col`` in each row's ranking with removed items and repeated ids dropped.

    An item counts when it is kept and no kept item before it has its id:
    its rank is the number of such first occurrences up to it.
    """
    nq, ng = ids.shape
    sentinel = ids.max() + 1 if ids.size else 0
    masked = np.where(keep, ids, sentinel)
    by_id = np.argsort(masked, axis=1, kind="stable")  # groups each id, positions ascending inside
    grouped = np.take_along_axis(masked, by_id, axis=1)
    starts = np.ones((nq, ng), dtype=bool)
    starts[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
    starts &= grouped != sentinel
    first_occ = np.zeros((nq, ng), dtype=bool)
    np.put_along_axis(first_occ, by_id, starts, axis=1)
    counts = np.cumsum(first_occ, axis=1, dtype=np.int64)
    return counts[np.arange(nq), first_col]


def _check_distmat(distmat) -> np.ndarray:
    if distmat is None:
        raise InputError("distmat is required: expected a 2-D array of shape (n_query, n_gallery).")
    if type(distmat).__module__.startswith("scipy.sparse"):
        raise InputError("distmat must be a dense array; convert a sparse matrix with .toarray().")
    D = _to_numpy(distmat, "distmat")
    if D.dtype == object or not (np.issubdtype(D.dtype, np.number) or D.dtype == bool) or np.iscomplexobj(D):
        raise InputError(f"distmat must hold real numbers; got an array of dtype {D.dtype}.")
    if D.ndim != 2 or D.shape[0] < 1 or D.shape[1] < 1:
        raise InputError(f"distmat must be a non-empty 2-D array (n_query, n_gallery); got shape {D.shape}.")
    if not np.issubdtype(D.dtype, np.floating):
        D = D.astype(np.float64)
    if not np.isfinite(D).all():
        raise InputError(f"distmat contains {int((~np.isfinite(D)).sum())} NaN or infinite value(s).")
    return D


def _check_1d(values, n, name, what):
    # the library's one label checker: no None/NaN, no fractional or >64-bit floats, no complex/datetime
    return check_label_values(values, name, n, what=what, word="entry")


def _encode_ids(query_ids, gallery_ids, nq, ng):
    q = _check_1d(query_ids, nq, "query_ids", "row of distmat")
    g = _check_1d(gallery_ids, ng, "gallery_ids", "column of distmat")
    if (q.dtype.kind in "US") != (g.dtype.kind in "US"):
        raise InputError("query_ids and gallery_ids must both be integers or both be strings.")
    _, codes = np.unique(np.concatenate([q, g]), return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    return codes[:nq], codes[nq:]
