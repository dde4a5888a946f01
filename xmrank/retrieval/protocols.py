"""Multi-trial evaluation protocols of SYSU-MM01, RegDB and LLCM.

Both runners take the features either from a callable that embeds a list of
:class:`~xmrank.datasets.ImageRecord` (your model) or from precomputed
features, build each trial's query and gallery with :mod:`xmrank.datasets`,
score it with :func:`~xmrank.retrieval.evaluate` and report every trial and
the mean over trials, as the literature does.

Distances: ``-query @ gallery.T`` as the published test scripts do (the
cosine ranking for L2-normalised features), or :func:`~xmrank.retrieval.rerank`
when ``rerank=`` is given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from .._progress import progress_bar
from .._validation import InputError, check_features, check_int, plain
from ..datasets.llcm import llcm_query_gallery
from ..datasets.records import records_to_arrays
from ..datasets.regdb import regdb_query_gallery
from ..datasets.sysu import sysu_query_gallery
from .metrics import evaluate
from .rerank import rerank as rerank_fn

logger = logging.getLogger(__name__)

__all__ = ["sysu_evaluation", "regdb_evaluation", "llcm_evaluation", "mean_results", "score_features"]


def sysu_evaluation(embed, root, *, mode: str = "all", trials=range(10), rerank=None, max_rank: int = 20, progress=None,
                    shot: str = "single"):
    """The SYSU-MM01 protocol: infrared queries, one (or ten) visible image(s) per (id, camera) in the gallery.

    Parameters
    ----------
    embed : callable or (records, features)
        ``embed(records) -> features`` (array-like of shape (len(records), d))
        is called twice: once for the query, once for the union of every
        trial's gallery. Or precomputed features: a pair of a record list and
        its feature rows that covers those images, typically
        ``(sysu_test_records(root), features)``; rows are matched by path.
    root : str or path-like
        The SYSU-MM01 folder.
    mode : {"all", "indoor"}, default="all"
    trials : iterable of int, default=range(10)
        Seeds of the gallery draws (``random.seed(trial)``).
    rerank : dict or None, default=None
        Keyword arguments of :func:`xmrank.rerank` (for example
        ``{"method": "modality"}``): re-rank each trial's distances, with the
        records' modalities and cameras. None scores ``-q @ g.T``.
    max_rank : int, default=20
    progress : bool, default=None
        Progress bar over the trials; None shows it only on a terminal.
    shot : {"single", "multi"}, default="single"
        Single-shot (one image per id and camera) or multi-shot (ten) gallery,
        see :func:`xmrank.datasets.sysu_query_gallery`.

    Returns
    -------
    result : dict
        ``"trials"``: one :func:`xmrank.evaluate` result per trial (plus
        ``"trial"`` and ``"n_gallery"``); ``"mean"``: mAP, mINP and CMC
        averaged over the trials (:func:`mean_results`); ``"mode"``,
        ``"shot"``, ``"n_query"``.
    """
    trials = _check_trials(trials, minimum=0)
    query = None
    galleries = []
    for t in trials:
        query, gallery = sysu_query_gallery(root, mode=mode, trial=t, shot=shot)
        galleries.append(gallery)
    pool = list(dict.fromkeys(r for g in galleries for r in g))
    source = _FeatureSource(embed)
    qf = source(query)
    pf = source(pool)
    row = {r.path: i for i, r in enumerate(pool)}
    out = []
    with progress_bar(total=len(trials), desc=f"sysu[{mode}, {shot}]", show=progress) as bar:
        for t, gallery in zip(trials, galleries):
            gf = pf[[row[r.path] for r in gallery]]
            res = score_features(qf, gf, query, gallery, protocol="sysu", rerank=rerank, max_rank=max_rank)
            res.update(trial=t, n_gallery=len(gallery))
            out.append(res)
            logger.info("SYSU-MM01 %s %s-shot trial %d: mAP %.4f, Rank-1 %.4f", mode, shot, t, res["mAP"], res["cmc"][0])
            bar.update(1)
    return {"mode": mode, "shot": shot, "n_query": len(query), "trials": out, "mean": mean_results(out)}


def regdb_evaluation(embed, root, *, trials=range(1, 11), direction: str = "v2t", rerank=None, max_rank: int = 20, progress=None):
    """The RegDB protocol: each trial's test lists, visible->thermal or thermal->visible, nothing removed.

    Parameters
    ----------
    embed : callable, (records, features), or a mapping trial -> either
        As in :func:`sysu_evaluation`. RegDB trains one model per trial:
        pass a dict ``{trial: embed_for_that_trial}`` to use each. The
        callable sees the records' ``modality`` and can pick the matching
        stream (swapping the direction swaps the lists *and* the streams).
    root : str or path-like
        The RegDB folder (holding ``idx/``).
    trials : iterable of int, default=range(1, 11)
    direction : {"v2t", "t2v"}, default="v2t"
    rerank, max_rank, progress
        As in :func:`sysu_evaluation`.

    Returns
    -------
    result : dict
        ``"trials"`` (per trial), ``"mean"``, ``"direction"``.
    """
    trials = _check_trials(trials, minimum=1)
    out = []
    with progress_bar(total=len(trials), desc=f"regdb[{direction}]", show=progress) as bar:
        for t in trials:
            query, gallery = regdb_query_gallery(root, trial=t, direction=direction)
            src = embed
            if isinstance(embed, Mapping):
                if t not in embed:
                    raise InputError(f"embed has no entry for RegDB trial {t}; it maps trials {', '.join(plain(k) for k in embed)}.")
                src = embed[t]
            source = _FeatureSource(src)
            qf, gf = source(query), source(gallery)
            res = score_features(qf, gf, query, gallery, protocol="regdb", rerank=rerank, max_rank=max_rank)
            res.update(trial=t, n_query=len(query), n_gallery=len(gallery))
            out.append(res)
            logger.info("RegDB %s trial %d: mAP %.4f, Rank-1 %.4f", direction, t, res["mAP"], res["cmc"][0])
            bar.update(1)
    return {"direction": direction, "trials": out, "mean": mean_results(out)}


def llcm_evaluation(embed, root, *, direction: str = "ir2vis", trials=range(10), rerank=None, max_rank: int = 20,
                    progress=None):
    """The LLCM protocol of the authors' ``test.py``: 10 trials, ``eval_llcm`` scoring.

    Parameters
    ----------
    embed : callable or (records, features)
        As in :func:`sysu_evaluation`; precomputed features typically cover
        ``xmrank.datasets.llcm_test_records(root)``. The callable is called
        twice: for the side every trial shares, and for the union of every
        trial's draws; it sees each record's ``modality``.
    root : str or path-like
        The LLCM folder.
    direction : {"ir2vis", "vis2ir"}, default="ir2vis"
        See :mod:`xmrank.datasets.llcm` (for ``"vis2ir"`` the drawn infrared
        images are the rows of the scored matrix, as in the authors' code).
    trials : iterable of int, default=range(10)
    rerank, max_rank, progress
        As in :func:`sysu_evaluation`.

    Returns
    -------
    result : dict
        ``"trials"``, ``"mean"``, ``"direction"``, ``"n_query"`` (rows of the
        first trial).
    """
    trials = _check_trials(trials, minimum=0)
    sides = [llcm_query_gallery(root, direction=direction, trial=t) for t in trials]
    drawn_is_query = direction == "vis2ir"
    fixed = sides[0][1] if drawn_is_query else sides[0][0]
    pool = list(dict.fromkeys(r for q, g in sides for r in (q if drawn_is_query else g)))
    source = _FeatureSource(embed)
    ff = source(fixed)
    pf = source(pool)
    row = {r.path: i for i, r in enumerate(pool)}
    out = []
    with progress_bar(total=len(trials), desc=f"llcm[{direction}]", show=progress) as bar:
        for t, (query, gallery) in zip(trials, sides):
            drawn = query if drawn_is_query else gallery
            df = pf[[row[r.path] for r in drawn]]
            qf, gf = (df, ff) if drawn_is_query else (ff, df)
            res = score_features(qf, gf, query, gallery, protocol="llcm", rerank=rerank, max_rank=max_rank)
            res.update(trial=t, n_query=len(query), n_gallery=len(gallery))
            out.append(res)
            logger.info("LLCM %s trial %d: mAP %.4f, Rank-1 %.4f", direction, t, res["mAP"], res["cmc"][0])
            bar.update(1)
    return {"direction": direction, "n_query": out[0]["n_query"], "trials": out, "mean": mean_results(out)}


def score_features(query_features, gallery_features, query_records, gallery_records, *, protocol, rerank=None, max_rank=20):
    """Distances between two sets of feature rows, scored with :func:`evaluate` using the records' labels.

    ``-q @ g.T`` without ``rerank``; with it, :func:`xmrank.rerank` given the
    records' modalities and cameras plus the keyword arguments in ``rerank``.
    """
    query_features = check_features(query_features, "query_features", min_rows=1)
    gallery_features = check_features(gallery_features, "gallery_features", min_rows=1)
    qa, ga = records_to_arrays(query_records), records_to_arrays(gallery_records)
    if query_features.shape != (len(qa["pids"]), gallery_features.shape[1]) or gallery_features.shape[0] != len(ga["pids"]):
        raise InputError(
            f"score_features needs one feature row per record and equal widths; got {query_features.shape[0]}x"
            f"{query_features.shape[1]} for {len(qa['pids'])} query and {gallery_features.shape[0]}x"
            f"{gallery_features.shape[1]} for {len(ga['pids'])} gallery records."
        )
    if rerank is None:
        dist = -(query_features @ gallery_features.T)
    else:
        if not isinstance(rerank, Mapping):
            raise InputError(f"rerank must be None or a dict of xmrank.rerank keyword arguments; got {type(rerank).__name__}.")
        kwargs = dict(rerank)
        kwargs.setdefault("query_modalities", qa["modalities"])
        kwargs.setdefault("gallery_modalities", ga["modalities"])
        if kwargs.get("method") == "camera":
            kwargs.setdefault("query_cameras", qa["cams"])
            kwargs.setdefault("gallery_cameras", ga["cams"])
        dist = rerank_fn(query_features, gallery_features, **kwargs)
    return evaluate(dist, qa["pids"], ga["pids"], qa["cams"], ga["cams"], protocol=protocol, max_rank=max_rank)


def mean_results(results):
    """Mean mAP, mINP and CMC over several :func:`evaluate` results (the reported "10-trial mean").

    Returns
    -------
    mean : dict
        ``"mAP"``, ``"mINP"`` (float), ``"cmc"`` (ndarray) and ``"n_trials"``.
    """
    results = _check_results(results)
    n = min(len(r["cmc"]) for r in results)
    return {
        "mAP": float(np.mean([r["mAP"] for r in results])),
        "mINP": float(np.mean([r["mINP"] for r in results])),
        "cmc": np.mean([np.asarray(r["cmc"][:n]) for r in results], axis=0),
        "n_trials": len(results),
    }


def _check_results(results):
    """A non-empty list of evaluation results, each a mapping with finite mAP, mINP and a 1-D cmc."""
    if isinstance(results, Mapping) or isinstance(results, (str, bytes)):
        raise InputError("results must be a list of evaluation results (dicts from xmrank.evaluate).")
    try:
        results = list(results)
    except TypeError:
        raise InputError(f"results must be a list of evaluation results; got {type(results).__name__}.") from None
    if not results:
        raise InputError("results must hold at least one evaluation result.")
    for i, r in enumerate(results):
        if not isinstance(r, Mapping):
            raise InputError(f"results[{i}] must be a dict from xmrank.evaluate; got {type(r).__name__}.")
        missing = [k for k in ("mAP", "mINP", "cmc") if k not in r]
        if missing:
            raise InputError(f"results[{i}] has no {', '.join(repr(k) for k in missing)}: expected xmrank.evaluate's keys mAP, mINP and cmc.")
        try:
            values = [float(r["mAP"]), float(r["mINP"])]
            cmc = np.asarray(r["cmc"], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"results[{i}] must hold numbers in mAP and mINP and a numeric cmc curve.") from None
        if cmc.ndim != 1 or cmc.size == 0 or not np.isfinite(cmc).all() or not np.isfinite(values).all():
            raise InputError(f"results[{i}] must hold finite mAP and mINP and a non-empty 1-D cmc curve.")
    return results


class _FeatureSource:
    """Features of a record list, from a callable or from precomputed (records, features)."""

    def __init__(self, embed):
        self.embed = embed
        self.lookup = None
        if callable(embed):
            return
        if not (isinstance(embed, (tuple, list)) and len(embed) == 2):
            raise InputError("embed must be a callable embed(records) -> features or a (records, features) pair.")
        records, feats = embed
        feats = check_features(feats, "features", min_rows=1)
        records = list(records)
        if len(records) != feats.shape[0]:
            raise InputError(f"features must have one row per record ({len(records)}); got {feats.shape[0]}.")
        self.feats = feats
        self.lookup = {r.path: i for i, r in enumerate(records)}

    def __call__(self, records):
        if self.lookup is None:
            feats = check_features(self.embed(records), "embed(records)", min_rows=1)
            if feats.shape[0] != len(records):
                raise InputError(f"embed(records) must return one row per record ({len(records)}); got {feats.shape[0]}.")
            return feats
        try:
            rows = [self.lookup[r.path] for r in records]
        except KeyError as exc:
            raise InputError(f"the precomputed features have no row for image {exc.args[0]}.") from None
        return self.feats[rows]


def _check_trials(trials, *, minimum):
    try:
        trials = list(trials)
    except TypeError:
        trials = [trials]
    if not trials:
        raise InputError("trials must name at least one trial.")
    return [check_int(t, "trial", minimum=minimum) for t in trials]
