"""``rerank``: k-reciprocal re-ranking of query x gallery distances (Zhong et al., CVPR 2017), or GNN re-ranking.

The Jaccard part is :func:`xmrank.jaccard_distance` over query ∪ gallery, so
the vanilla, modality-aware and camera-aware neighbour rules are exactly the
core ones; only the query x gallery block of its sparse result is densified.
The "original" distance is computed directly for that block; no
(n_query + n_gallery)^2 array is ever built. Precomputed distance matrices
are a neighbour source of the same planners (:mod:`._distances`,
:mod:`xmrank.jaccard.neighbors`); on the CPU both run the stages after
planning through :func:`xmrank.jaccard.stages.run_stages` with the min-sum
of the query x gallery pairs only
(:class:`~xmrank.jaccard.stages.QueryGalleryExecutor`). :func:`auto_k`
chooses the list lengths from the data.
"""

from __future__ import annotations

import logging
import time

import numba
import numba as nb
import numpy as np

from .._jit import njit
from .._params import DEFAULTS as _D
from .._params import NORMALIZE, PARAMS
from .._validation import InputError, _to_numpy, check_features, check_label_values
from ..jaccard import jaccard_distance
from ..jaccard.modality_bias import rows_all_equal
from ..jaccard.distance import check_arguments as check_jaccard_arguments
from ..backend import resolve_device
from ..knn import knn_search
from ._auto import choose

logger = logging.getLogger(__name__)

__all__ = ["rerank", "auto_k", "original_distance", "NORMALIZE"]

#: float32 entries of the query-block x (query ∪ gallery) similarity held at once.
_BLOCK_ENTRIES = 1 << 24
#: Stored Jaccard entries scattered into the output at once.
_SCATTER_ENTRIES = 1 << 18


def rerank(
    query=None,
    gallery=None,
    *,
    distances=None,
    query_modalities=None,
    gallery_modalities=None,
    query_cameras=None,
    gallery_cameras=None,
    method: str = _D["method"],
    k1: int | str = _D["rerank_k1"],
    k2: int | str = _D["rerank_k2"],
    lambda_value: float = _D["lambda_value"],
    normalize: str = _D["normalize"],
    algorithm: str = _D["rerank_algorithm"],
    camera_weight: float | None = _D["camera_weight"],
    k1_intra: int = _D["k1_intra"],
    k1_inter: int = _D["k1_inter"],
    k2_intra: int = _D["k2_intra"],
    k2_inter: int = _D["k2_inter"],
    self_in_k1: bool = True,
    knn: str = _D["knn"],
    device: str = _D["device"],
    n_jobs: int | None = _D["n_jobs"],
    progress: bool | None = _D["progress"],
    return_chosen: bool = False,
):
    """Re-ranked query x gallery distance: k-reciprocal ``(1 - λ) · Jaccard + λ · original``, or GNN re-ranking.

    Parameters
    ----------
    query : array-like of shape (n_query, n_features), default=None
    gallery : array-like of shape (n_gallery, n_features), default=None
        Embeddings, used as given (the Jaccard weights assume L2-normalised rows).
        Give ``query`` and ``gallery``, or ``distances``.
    distances : tuple of three array-likes, default=None
        Precomputed ``(q_g_dist, q_q_dist, g_g_dist)``, in the order torchreid
        passes them: query x gallery, query x query and gallery x gallery
        distances, non-negative and finite (Euclidean distances between the
        embeddings, as ReID code computes them; they are squared here). The
        same neighbour rules apply; see Notes.
    query_modalities, gallery_modalities : int, str or array-like, default=None
        Modality of each query / gallery row, or one label for the whole side
        (``query_modalities=1, gallery_modalities=0`` for infrared queries
        against a visible gallery). Give both or neither.
    query_cameras, gallery_cameras : int, str or array-like, default=None
        Camera of each row (or one per side), for ``method="camera"``.
    method : {"auto", "vanilla", "modality", "modality-qe", "camera", "modality-camera"}, default="auto"
        Neighbour rule of the Jaccard part, as in :func:`xmrank.jaccard_distance`.
        ``"auto"`` measures the modality bias of plain kNN lists where
        modalities are given and takes ``"modality"`` where they keep to their
        own modality (cross-modal share below 0.9 of the unbiased share),
        else ``"vanilla"``; without modalities ``"camera"`` when cameras are
        given, else ``"vanilla"``; see :func:`auto_k`.
    k1, k2 : int or "auto", default=20, 6
        Zhong et al.'s re-ranking defaults. With ``"modality"`` each list takes
        ``k1 // 2`` neighbours per modality and ``k2`` per modality in the
        query expansion. ``"auto"`` chooses them from the data
        (:func:`auto_k`): longer lists where identities show groups of
        several items per modality, one neighbour per modality (re-ranking
        then leaves the ranking as it is) where a test shows one item per
        identity and modality (image/caption pairs), the published 20 and 6
        otherwise. An explicit ``k2`` beside ``k1="auto"`` is kept (``k1``
        grows to fit it). With ``"camera"`` (whose lengths are ``k1_intra``
        ... ``k2_inter``) ``"auto"`` keeps 20 and 6, which that rule does not
        read.
    lambda_value : float in [0, 1], default=0.3
        Weight of the original distance. 0 gives the pure Jaccard distance,
        1 the original distance (the Jaccard part is then skipped).
    normalize : {"gallery", "union"}, default="gallery"
        Normaliser of the original distance, see :func:`original_distance`
        (k-reciprocal only).
    algorithm : {"k-reciprocal", "gnn"}, default="k-reciprocal"
        ``"gnn"``: GNN re-ranking (Zhang et al., :mod:`xmrank.retrieval.gnn`)
        over the neighbour lists of ``method``: ``k1`` neighbours (``k1 // M``
        per modality for ``"modality"``; ``k1_intra + 1`` and ``k1_inter + 1``
        for ``"camera"``), propagation over the first ``k2`` of each
        (per modality; ``k2_intra`` / ``k2_inter`` for ``"camera"``).
        ``lambda_value`` weighs the cosine similarity. The result is the
        **negated GNN similarity** ``−((1 − λ) · A[q]·A[g] + λ · q·g)``,
        in [−1, λ]: sorting it ascending gives exactly the published
        ranking (``argsort(−similarity)``). From ``distances`` the
        similarities are those of unit rows, ``1 − d²/2``. See docs/gnn.md.
    camera_weight : float in (0, 1] or None, default=None
        GNN only: CEIL's camera weights (TCSVT 2025): an edge of the initial
        graph to a neighbour of the same camera weighs ``camera_weight``,
        one to another camera ``1 / camera_weight`` (CEIL uses 0.5). Needs
        ``query_cameras`` and ``gallery_cameras``. None: every edge weighs 1
        (the published method).
    k1_intra, k1_inter, k2_intra, k2_inter, self_in_k1, knn, device, progress
        Passed to :func:`xmrank.jaccard_distance` (``knn`` and ``device``
        choose the feature search and apply to features only).
    n_jobs : int or None, default=-1
        Threads, with scikit-learn's meaning: -1 all cores, -k all but
        k - 1, None one (or the ``n_jobs`` of an enclosing
        ``joblib.parallel_config``), a positive number that many.
    return_chosen : bool, default=False
        Also return what was used and why (see Returns).

    Returns
    -------
    distance : ndarray of float32, shape (n_query, n_gallery)
        Smaller is more similar; values lie in [0, 1] (k-reciprocal), in
        [−1, λ] (``algorithm="gnn"``: the negated GNN similarity).
    chosen : dict
        With ``return_chosen=True``: ``"method"``, ``"k1"``, ``"k2"`` and
        ``"lambda_value"`` as used, and the measurements behind every
        ``"auto"`` (see :func:`auto_k`). ``{k: chosen[k] for k in ("method",
        "k1", "k2", "lambda_value")}`` are keyword arguments of this function
        that repeat the result (with ``algorithm``, for ``algorithm="gnn"``).

    Raises
    ------
    xmrank.InputError
        Features and distances both or neither given; shapes that do not
        fit; NaN, infinite or negative distances; labels, ``k`` or ``method``
        as :func:`xmrank.jaccard_distance` refuses them.

    Notes
    -----
    The **original distance** is the squared Euclidean distance ``‖q − g‖²``
    (``2 − 2 q·g`` for L2-normalised rows) divided, for each query, by its
    largest value over the gallery, so every query's farthest gallery item is
    at 1. Zhong et al. divide by the largest value over query ∪ gallery
    (their code divides each column of the symmetric (query ∪ gallery)²
    matrix by its maximum and transposes); ``normalize="union"`` does exactly
    that at the cost of an extra query x query product. The two agree
    whenever a query's farthest item is in the gallery, the rule in
    cross-modal retrieval. See :func:`original_distance`.

    The **Jaccard part** is :func:`xmrank.jaccard_distance` on the stacked
    rows ``[query; gallery]``: pairs that share no k-reciprocal neighbour are at
    distance 1. Two documented differences from Zhong et al.'s script, both
    inherited from the core (cluster-contrast's variant): the softmax weights
    use ``2 − 2 q·x`` rather than the normalised distance, and with
    ``self_in_k1=True`` a row counts itself among its ``k1`` neighbours
    (Zhong: ``k1 + 1`` columns including itself, i.e. ``self_in_k1=False``).
    For Zhong's exact script on distance matrices use
    :func:`xmrank.compat.re_ranking`.

    **From distances** the neighbour lists are read from the rows of the
    assembled matrix ``[[q_q, q_g], [q_g.T, g_g]]`` (block by block; that
    (n_query + n_gallery)² matrix is never built) and the weights use
    ``d²`` where the features use ``2 − 2 q·x``; for Euclidean distances
    between L2-normalised rows the two are equal, and so are the results
    (up to float32 rounding and exactly tied neighbours).

    In cross-modal retrieval every query is of one modality and the whole
    gallery of the other; plain ("vanilla") neighbour lists then hold almost
    only same-side rows and the Jaccard part stays near 1 for every
    query/gallery pair. ``method="modality"`` draws each list half from
    each modality, which is what makes re-ranking work across modalities.

    Examples
    --------
    >>> import numpy as np, xmrank
    >>> rng = np.random.default_rng(0)
    >>> q = rng.normal(size=(50, 8)).astype("float32")
    >>> g = rng.normal(size=(60, 8)).astype("float32")
    >>> D = xmrank.rerank(q, g, query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    >>> D.shape
    (50, 60)
    >>> dist = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    >>> D2 = xmrank.rerank(distances=(dist(q, g), dist(q, q), dist(g, g)),
    ...                    query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    >>> D2.shape
    (50, 60)
    >>> D3, chosen = xmrank.rerank(q, g, query_modalities=1, gallery_modalities=0, k1="auto", k2="auto",
    ...                            return_chosen=True)
    >>> sorted(k for k in chosen if k in ("method", "k1", "k2", "lambda_value"))
    ['k1', 'k2', 'lambda_value', 'method']
    """
    lam = PARAMS["lambda_value"](lambda_value)
    PARAMS["method"](method)
    algorithm = PARAMS["rerank_algorithm"](algorithm, "algorithm")
    camera_weight = PARAMS["camera_weight"](camera_weight)
    if camera_weight is not None and algorithm != "gnn":
        raise InputError("camera_weight is an option of algorithm='gnn' (CEIL's camera-weighted graph); "
                         "the k-reciprocal rules take cameras through method='camera' or 'modality-camera'.")
    n_jobs = PARAMS["n_jobs"](n_jobs)  # threads: scikit-learn's meaning
    PARAMS["normalize"](normalize)
    source = _Source(query, gallery, distances, knn=knn, device=device)
    nq, ng = source.nq, source.ng
    mods = _stack_labels(query_modalities, gallery_modalities, nq, ng, "modalities")
    cams = _stack_labels(query_cameras, gallery_cameras, nq, ng, "cameras")
    chosen = choose(source, mods, cams, method, k1, k2, self_in_k1)
    chosen["lambda_value"] = lam
    method, k1, k2 = chosen["method"], chosen["k1"], chosen["k2"]

    t0 = time.perf_counter()
    jaccard_args = dict(modalities=mods, cameras=cams, method=method, k1=k1, k2=k2, k1_intra=k1_intra,
                        k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter, self_in_k1=self_in_k1,
                        n_jobs=n_jobs)
    if algorithm == "gnn":
        chosen.update(algorithm="gnn", camera_weight=camera_weight)
        out = _rerank_gnn(source, jaccard_args, lam, camera_weight, knn, device, t0)
        return (out, chosen) if return_chosen else out
    if source.blocks is not None:
        out = _rerank_distances(source.blocks, jaccard_args, lam, normalize, t0)
        return (out, chosen) if return_chosen else out
    Q, G = source.Q, source.G
    if lam == 1.0:
        # the Jaccard part is skipped, but its arguments are still checked
        check_jaccard_arguments(np.concatenate([Q, G], axis=0), knn=knn, device=device, combined=False, **jaccard_args)
        out = _original_into(Q, G, normalize=normalize, scale=1.0, shift=0.0)
        return (out, chosen) if return_chosen else out
    from .._memory import check_fits

    check_fits(4.0 * nq * ng, f"the dense {nq:,} x {ng:,} float32 re-ranked distance matrix",
               "re-rank fewer queries at a time (the result is one row per query)")
    X = np.concatenate([Q, G], axis=0)
    if resolve_device(device) == "cpu" and knn != "dask":
        # only the query x gallery block of the min-sum (QueryGalleryExecutor, as for precomputed
        # distances): the gallery x gallery pairs, most of the (q+g)^2, are never computed nor stored, and
        # memory is the dense result plus the expanded weights
        from ..jaccard import plan_jaccard
        from ..jaccard.stages import QueryGalleryExecutor, numba_threads, run_stages

        args = dict(jaccard_args)
        n_threads = args.pop("n_jobs")
        with numba_threads(n_threads):
            plan = plan_jaccard(X, knn=knn, device="cpu", **args)  # checks every argument, before the result
            t1 = time.perf_counter()
            out = _original_into(Q, G, normalize=normalize, scale=lam, shift=1.0 - lam)  # λ·original + (1 − λ)·1
            t_orig = time.perf_counter() - t1
            out = run_stages(X, plan, QueryGalleryExecutor(out, np.float32(1.0 - lam), n_threads))
    else:
        out = _original_into(Q, G, normalize=normalize, scale=lam, shift=1.0 - lam)  # λ·original + (1 − λ)·1
        t_orig = time.perf_counter() - t0
        J = jaccard_distance(X, dense=False, knn=knn, device=device, progress=progress, **jaccard_args)
        # add (1 − λ)·(J − 1) where J stores a value: J = 1 wherever the sparse matrix stores nothing
        _add_query_gallery_block(out, J, np.float32(1.0 - lam))
    logger.info(
        "rerank(method=%r, %d x %d): %.2fs (original distance %.2fs)", method, nq, ng, time.perf_counter() - t0, t_orig
    )
    return (out, chosen) if return_chosen else out


def auto_k(query=None, gallery=None, *, distances=None, query_modalities=None, gallery_modalities=None,
           query_cameras=None, gallery_cameras=None, method: str = "auto", self_in_k1: bool = True) -> dict:
    """The method, ``k1`` and ``k2`` that ``rerank(method=method, k1="auto", k2="auto")`` uses, and why.

    Parameters
    ----------
    query, gallery, distances, query_modalities, gallery_modalities, query_cameras, gallery_cameras, method, self_in_k1
        As in :func:`rerank`.

    Returns
    -------
    chosen : dict
        What ``rerank(..., return_chosen=True)`` returns beside the
        distances (without ``lambda_value``): ``"method"``, ``"k1"``,
        ``"k2"``; ``"requested"`` (the values given); ``"method_reason"``
        and ``"bias"`` (the modality-bias measurement behind
        ``method="auto"``, else None); ``"k_reason"`` (which of the rules
        below applied, with its numbers); ``"group_size"`` (the estimated
        items per identity and modality, the smallest over the modalities),
        ``"per_modality"`` (the estimate of each modality, by label);
        ``"pairing"`` (the pairing test, where two modalities or more are
        given); ``"fallbacks"`` (the warnings issued where a measurement was
        impossible).

    Notes
    -----
    **Method.** ``"auto"`` is the modality-aware rule where plain 20-NN
    lists hold fewer cross-modal rows than 0.9 times the share expected
    without bias (:data:`xmrank.retrieval._auto.RERANK_BIAS_THRESHOLD`),
    else ``"vanilla"``; without modalities, ``"camera"`` with cameras, else
    ``"vanilla"``.

    **Group size.** Within each modality, take every item's ``K`` nearest
    neighbours of that modality (``K = min(50, size - 2)``) and, for each
    rank ``j``, the share ``f(j)`` of items that are themselves among the
    first ``j`` neighbours of their ``j``-th neighbour. Items of one
    identity are each other's neighbours, so ``f`` stays high for the first
    ``m - 1`` ranks (``m`` items per identity) and falls to its background
    level after them; ``m`` is one plus the number of leading ranks at least
    0.1 above the background (the median of ``f`` over the second half of
    the ranks). No labels are used. Loose identities (real data) read small:
    the estimate is a lower bound.

    **Pairing test.** Where one item per identity and modality is the truth
    (image/caption pairs), a row's nearest row of another modality is its
    counterpart, mutually, more often than its nearest row of its own
    modality is a mutual neighbour; with several items per identity the
    reverse holds. A one-sided two-proportion z-test (z >= 2) on the two
    mutual shares decides.

    **Rule.** Paired: one neighbour per modality (``k1`` = the number of
    modalities) and ``k2 = 1``, which leaves the cosine ranking as it is, so
    re-ranking never costs accuracy there. Else ``m >= 2``: ``max(10,
    2m + 2)`` neighbours per modality (20 for the vanilla rule) and
    ``k2 = max(6, m + 1)``. Otherwise Zhong et al.'s published ``k1 = 20,
    k2 = 6``. Lengths are capped by the rows of the smallest modality.
    Too few rows (fewer than 6 in a modality), a single modality or all rows
    equal: the published defaults (and ``method="vanilla"`` or
    ``"camera"`` for a single modality) with a warning. With
    ``method="camera"`` the lengths are ``k1_intra`` ... ``k2_inter``;
    ``"auto"`` keeps ``k1=20, k2=6`` there (unused) and says so.

    On the bundled CLIP COCO pairs (one image and one caption per id) the
    pairing test gives ``k1 = 2, k2 = 1``; on the synthetic 200 ids x 5
    items per modality set the group size is 5, giving ``k1 = 24, k2 = 6``;
    on the real multi-view sets (``docs/real_data.md``) mostly the published
    20/6. See the README for the scores against fixed settings.
    """
    source = _Source(query, gallery, distances, knn="auto", device="cpu")
    PARAMS["method"](method)
    mods = _stack_labels(query_modalities, gallery_modalities, source.nq, source.ng, "modalities")
    cams = _stack_labels(query_cameras, gallery_cameras, source.nq, source.ng, "cameras")
    return choose(source, mods, cams, method, "auto", "auto", self_in_k1)


class _Source:
    """Features (``Q``, ``G``) or distance blocks (``blocks``), checked; one of the two."""

    def __init__(self, query, gallery, distances, *, knn, device):
        self.blocks = self.Q = self.G = self._X = None
        if distances is not None:
            if query is not None or gallery is not None:
                raise InputError("give query and gallery features, or distances=(q_g_dist, q_q_dist, g_g_dist); "
                                 "not both.")
            if isinstance(distances, (str, bytes)) or not isinstance(distances, (tuple, list)) or len(distances) != 3:
                raise InputError("distances must be a tuple (q_g_dist, q_q_dist, g_g_dist) of three distance "
                                 f"matrices; got {type(distances).__name__}"
                                 f"{' of length ' + str(len(distances)) if isinstance(distances, (tuple, list)) else ''}.")
            if not (isinstance(knn, str) and knn == "auto") or not (isinstance(device, str) and device == "cpu"):
                raise InputError("knn and device choose the search over features; with distances leave them at "
                                 "knn='auto', device='cpu'.")
            from ._distances import check_blocks

            self.blocks = check_blocks(*distances)
            self.nq, self.ng = self.blocks.nq, self.blocks.ng
            return
        if query is None or gallery is None:
            raise InputError("give query and gallery features (2-D arrays), or distances=(q_g_dist, q_q_dist, g_g_dist).")
        self.Q = check_features(query, "query", min_rows=1)
        self.G = check_features(gallery, "gallery", min_rows=1)
        if self.Q.shape[1] != self.G.shape[1]:
            raise InputError(
                f"query and gallery must have the same number of features; got {self.Q.shape[1]} and {self.G.shape[1]}."
            )
        self.nq, self.ng = self.Q.shape[0], self.G.shape[0]

    @property
    def X(self):
        """Query and gallery features stacked (made once)."""
        if self._X is None:
            self._X = np.ascontiguousarray(np.concatenate([self.Q, self.G], axis=0))
        return self._X

    def constant(self) -> bool:
        """Whether every row is the same (all features equal, or all distances 0): nothing to measure."""
        if self.blocks is not None:
            b = self.blocks
            return not (np.any(b.qg) or np.any(b.qq) or np.any(b.gg))
        return rows_all_equal(self.X)

    def nearest(self, rows, cols, k):
        """The ``k`` nearest of ``cols`` (sorted row numbers) to each of ``rows``: (distance-like, local indices).

        Smaller is closer in the first array (squared distances, or minus the inner product of features).
        """
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if self.blocks is not None:
            from ._distances import select

            d2, idx = select(self.blocks, k, rows=rows, cols=cols)
            return d2, np.searchsorted(cols, idx)
        sims, idx = knn_search(np.ascontiguousarray(self.X[rows]), np.ascontiguousarray(self.X[cols]), k)
        return -sims, idx

    def within(self, rows, k):
        """The ``k`` nearest rows of ``rows`` to each row of ``rows`` (local indices, nearest first)."""
        return self.nearest(rows, rows, k)[1]


def _rerank_distances(blocks, args, lam, normalize, t0):
    """:func:`rerank` on distance blocks: the same argument checks, then :func:`._distances.rules_rerank`.

    The blocks are the neighbour source of the same planners as features.
    """
    from ..jaccard.stages import numba_threads
    from ._distances import rules_rerank

    n = blocks.n
    stand_in = np.zeros((n, 1), dtype=np.float32)  # the checks need a row count only
    check_jaccard_arguments(stand_in, combined=lam < 1.0, **args)
    request = _distance_request(n, args)
    n_threads = min(args["n_jobs"], numba.config.NUMBA_NUM_THREADS)
    with numba_threads(n_threads):
        out = rules_rerank(blocks, request, lambda_value=lam, normalize=normalize, n_threads=n_threads)
    logger.info("rerank(distances, method=%r, %d x %d): %.2fs", request.method, blocks.nq, blocks.ng,
                time.perf_counter() - t0)
    return out


def _distance_request(n, args):
    """The checked :class:`~xmrank.jaccard.plan.PlanRequest` of ``args`` for ``n`` rows of distance blocks.

    ``method="auto"`` is resolved without features, as :func:`choose` left it.
    """
    from ..jaccard.plan import check_request

    return check_request(n, device="cpu", knn="auto", **{k: args[k] for k in (
        "modalities", "cameras", "method", "k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter",
        "self_in_k1")})


def _rerank_gnn(source, args, lam, camera_weight, knn, device, t0):
    """:func:`rerank` with ``algorithm="gnn"``: the neighbour lists of ``args["method"]``, then :mod:`.gnn`."""
    from ..jaccard.plan import build_plan, check_features_on, check_request
    from ..backend import resolve_device, using_device
    from . import gnn

    n, nq = source.nq + source.ng, source.nq
    if source.blocks is not None:
        from ._distances import gnn_lists

        stand_in = np.zeros((n, 1), dtype=np.float32)  # the checks need a row count only
        check_jaccard_arguments(stand_in, combined=True, **args)
        request = _distance_request(n, args)
        sims, rank = gnn_lists(source.blocks, request)
        blocks = source.blocks
        base = np.empty((nq, source.ng), dtype=np.float32)
        step = max(1, (1 << 22) // source.ng)
        for lo in range(0, nq, step):  # cosine from Euclidean distances between unit rows: 1 − d²/2
            base[lo:lo + step] = 1.0 - np.square(blocks.qg[lo:lo + step].astype(np.float32)) / 2
    else:
        dev = resolve_device(device)
        with using_device(dev):
            X = check_features_on(np.concatenate([source.Q, source.G], axis=0), dev)
            request = check_request(n, device=dev, knn=knn, **{k: args[k] for k in (
                "modalities", "cameras", "method", "k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter",
                "self_in_k1")})
            plan = build_plan(X, request)
        sims, rank = plan.sims, plan.rank
        base = source.Q @ source.G.T
    method = request.method
    cam_codes = request.cameras
    adjacency = None
    if camera_weight is not None:
        if cam_codes is None:
            raise InputError("camera_weight needs cameras: query_cameras and gallery_cameras.")
        adjacency = gnn.camera_adjacency_weights(rank, cam_codes, camera_weight)
    k2 = request.k2
    propagate = (k2 > 1) if method != "camera" else (request.k2_intra + request.k2_inter > 1)
    idx, w = gnn.propagation_lists(method, rank, sims, k2=k2, mod_codes=request.modalities,
                                   k1_intra=request.k1_intra, k2_intra=request.k2_intra, k2_inter=request.k2_inter)
    sim = gnn.gnn_similarity(rank, idx, w, nq, base=np.ascontiguousarray(base, dtype=np.float32), lam=lam,
                             propagate=propagate, adjacency=adjacency, n_jobs=args["n_jobs"],
                             device=device if request.device == "cuda" else "cpu")
    np.negative(sim, out=sim)
    logger.info("rerank(algorithm='gnn', method=%r, %d x %d): %.2fs", method, nq, source.ng, time.perf_counter() - t0)
    return sim


def original_distance(query, gallery, *, normalize: str = "gallery") -> np.ndarray:
    """Normalised squared Euclidean distance between query and gallery rows.

    ``d(q, g) = ‖q − g‖² / max_x ‖q − x‖²`` (0 where that maximum is 0), the
    maximum running over the gallery (``normalize="gallery"``) or over
    query ∪ gallery (``"union"``, Zhong et al.'s exact choice). For
    L2-normalised rows ``‖q − g‖² = 2 − 2 q·g``, so each row ranks the
    gallery as cosine similarity does.

    Parameters
    ----------
    query : array-like of shape (n_query, n_features)
    gallery : array-like of shape (n_gallery, n_features)
    normalize : {"gallery", "union"}, default="gallery"
        ``"gallery"``: every query's farthest gallery item is at exactly 1,
        and a query's row does not depend on the other queries. ``"union"``:
        Zhong et al.'s normaliser; it costs an extra query x query product
        and equals ``"gallery"`` whenever a query's farthest item is a
        gallery item, which is the rule in cross-modal retrieval (queries of
        one modality, gallery of the other: on the bundled CLIP
        image/caption features it holds for every query in both directions).

    Returns
    -------
    distance : ndarray of float32, shape (n_query, n_gallery), values in [0, 1]

    Notes
    -----
    Computed block by block of queries; nothing of size
    (n_query + n_gallery)² is built.
    """
    Q = check_features(query, "query", min_rows=1)
    G = check_features(gallery, "gallery", min_rows=1)
    if Q.shape[1] != G.shape[1]:
        raise InputError(
            f"query and gallery must have the same number of features; got {Q.shape[1]} and {G.shape[1]}."
        )
    PARAMS["normalize"](normalize)
    return _original_into(Q, G, normalize=normalize, scale=1.0, shift=0.0)


def _original_into(Q, G, *, normalize, scale, shift):
    """``scale * original_distance(Q, G) + shift`` as a new float32 array, block by block of queries."""
    nq, ng = Q.shape[0], G.shape[0]
    q_sq = np.einsum("ij,ij->i", Q, Q)
    g_sq = np.einsum("ij,ij->i", G, G)
    out = np.empty((nq, ng), dtype=np.float32)
    rows = max(1, _BLOCK_ENTRIES // (nq + ng))
    for lo in range(0, nq, rows):
        hi = min(nq, lo + rows)
        block = out[lo:hi]
        np.matmul(Q[lo:hi], G.T, out=block)
        if normalize == "union":
            qq = Q[lo:hi] @ Q.T
            qq *= -2.0
            qq += q_sq[lo:hi, None]
            qq += q_sq[None, :]
            extra = qq.max(axis=1).astype(np.float32)
        else:
            extra = np.zeros(hi - lo, dtype=np.float32)
        _scale_rows(block, q_sq[lo:hi], g_sq, extra, np.float32(scale), np.float32(shift))
    return out


@njit(parallel=True, cache=True, nogil=True)
def _scale_rows(S, q_sq, g_sq, extra_max, scale, shift):
    """In place: ``S[i, j] = q·g`` becomes ``scale * d_ij / max(max_j d_ij, extra_max[i]) + shift``.

    ``d_ij = max(q_sq[i] + g_sq[j] - 2 S[i, j], 0)``; rows whose maximum is 0 get ``shift``.
    Two passes over each row (the second from cache).
    """
    n, m = S.shape
    for i in nb.prange(n):
        top = extra_max[i]
        for j in range(m):
            d = q_sq[i] + g_sq[j] - np.float32(2.0) * S[i, j]
            if d > top:
                top = d
        f = scale / top if top > 0 else np.float32(0.0)
        for j in range(m):
            d = q_sq[i] + g_sq[j] - np.float32(2.0) * S[i, j]
            if d < 0:
                d = np.float32(0.0)
            S[i, j] = d * f + shift


def _add_query_gallery_block(out, J, weight):
    """``out[i, j] += weight * (J[i, nq + j] - 1)`` over the stored entries of the query rows of CSR ``J``.

    Reads ``J``'s arrays in place, a few thousand stored entries at a time,
    so no copy of the (mostly query x query) query rows is made.
    """
    nq = out.shape[0]
    indptr, indices, data = J.indptr, J.indices, J.data
    # row boundaries of chunks holding about _SCATTER_ENTRIES stored entries each
    marks = np.arange(0, int(indptr[nq]), _SCATTER_ENTRIES)
    bounds = np.unique(np.concatenate([np.searchsorted(indptr[: nq + 1], marks, side="right") - 1, [nq]]))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        a, b = int(indptr[lo]), int(indptr[hi])
        cols = indices[a:b]
        keep = cols >= nq
        rows = np.repeat(np.arange(lo, hi, dtype=np.int64), np.diff(indptr[lo : hi + 1]))[keep]
        out[rows, cols[keep] - nq] += weight * (data[a:b][keep] - np.float32(1.0))


def _stack_labels(q_labels, g_labels, nq, ng, what):
    """Stack per-side labels (scalars or arrays) into one array of length nq + ng, or None."""
    if q_labels is None and g_labels is None:
        return None
    if q_labels is None or g_labels is None:
        raise InputError(f"query_{what} and gallery_{what} must be given together; got only one of them.")
    parts = []
    for labels, n, side in ((q_labels, nq, "query"), (g_labels, ng, "gallery")):
        arr = _to_numpy(labels, f"{side}_{what}")
        if arr.ndim == 0:
            arr = np.full(n, arr.item())
        elif arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InputError(
                f"{side}_{what} must be one label or one label per {side} row ({n}); got shape {arr.shape}."
            )
        parts.append(check_label_values(arr, f"{side}_{what}", n, what=f"{side} row"))
    if (parts[0].dtype.kind in "USO") != (parts[1].dtype.kind in "USO"):
        raise InputError(f"query_{what} and gallery_{what} must both be numbers or both be strings.")
    return np.concatenate(parts)
