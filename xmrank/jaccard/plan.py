"""The planning stage of the Jaccard pipeline: what each method searches and keeps.

:func:`plan_jaccard` turns features and a method into a :class:`JaccardPlan`:
the neighbour lists and their scores, the k-reciprocal masks over
them and the query-expansion matrix. The later stages (weights, expansion,
min-sum, output; :mod:`xmrank.jaccard.stages`) are the same for every method
and run on any executor, so a new method is one checker and one planner
here, registered in ``_PLANNERS``.

The planners read rows only through a *neighbour source*
(:class:`xmrank.jaccard.neighbors.NeighbourSource`): :func:`build_plan`
takes one, kNN over features (:class:`~xmrank.jaccard.neighbors.FeatureNeighbours`,
what plain features are wrapped in) or the blocks of precomputed distances
that re-ranking from ``distances=(q_g, q_q, g_g)`` passes
(:class:`xmrank.retrieval._distances.DistanceBlocks`). A planner is
``planner(source, request, search=...)``; with ``search=False`` it only
checks the lengths against ``source.n`` (:func:`check_plan`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .._params import DEFAULTS as _D
from .._params import METHODS
from .._validation import (InputError, check_features, check_int, check_labels, check_norms, check_option, plain,
                           warn_user, widen_torch)
from ..backend import (array_module, device_features, is_device_array, resolve_device, resolve_knn, to_device,
                       using_device)
from . import kernels, neighbors
from . import query_expansion as qe

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "JaccardPlan", "PlanRequest", "plan_jaccard", "check_features_on", "check_request",
           "check_plan", "build_plan", "resolve_method", "auto_k2", "auto_lengths"]



@dataclass
class JaccardPlan:
    """The neighbour structure of one Jaccard computation: the input of the stages after the search.

    Attributes
    ----------
    method : str
        The method that built it (never ``"auto"``).
    rank : ndarray of int64, shape (n_samples, n_columns)
        Each row's neighbour list (row indices), in list order.
    sims : ndarray of float32, shape (n_samples, n_columns)
        The neighbour source's scores of ``rank`` (larger is nearer), reused
        by the weights stage: inner products for features, ``−d²`` for
        distance blocks.
    reciprocal : ndarray of bool, shape (n_samples, n_columns)
        The list columns that form each row's k-reciprocal set ``R_i``.
    half_reciprocal : ndarray of bool, shape (n_samples, n_columns), or None
        The half sets ``H_c`` (over the same lists) that may expand ``R_i``;
        None: no expansion (CA-Jaccard).
    expansion : scipy.sparse.csr_matrix of shape (n_samples, n_samples), or None
        The query-expansion matrix ``Q`` (``V' = Q V``); None: ``V' = V``.
    chosen : dict
        What the ``"auto"`` arguments chose and the measurement behind each
        (``{"method": {"value", "reason", "measurement"}}``); empty when
        every argument was explicit.
    """

    method: str
    rank: np.ndarray
    sims: np.ndarray
    reciprocal: np.ndarray
    half_reciprocal: np.ndarray | None
    expansion: sp.csr_matrix | None
    chosen: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.rank.shape[0])

    @property
    def sets(self) -> tuple:
        """The arguments of ``expand_lists``: ``(rank, reciprocal[, rank, half_reciprocal])``."""
        if self.half_reciprocal is None:
            return self.rank, self.reciprocal
        return self.rank, self.reciprocal, self.rank, self.half_reciprocal

    @property
    def known(self) -> tuple:
        """``(sims, rank)``: the similarities the search already computed."""
        return self.sims, self.rank


@dataclass(frozen=True)
class PlanRequest:
    """Checked planning arguments (see :func:`xmrank.jaccard_distance` for their meaning).

    ``modalities``/``cameras`` are label codes ``0..M-1`` (or None), and
    ``modality_names``/``camera_names`` the labels as given, for messages.
    The list lengths are checked against the data by :func:`check_plan`.
    ``chosen`` holds what the ``"auto"`` arguments chose, by name
    (``method``: see :func:`resolve_method`; ``k1``: :func:`auto_lengths`;
    ``k2``: :func:`auto_k2`, or :func:`auto_lengths` beside ``k1="auto"``),
    None when every argument is explicit.
    """

    method: str
    k1: int
    k2: int
    k1_intra: int
    k1_inter: int
    k2_intra: int
    k2_inter: int
    self_in_k1: bool
    knn: str
    device: str
    modalities: np.ndarray | None = None
    cameras: np.ndarray | None = None
    modality_names: np.ndarray | None = None
    camera_names: np.ndarray | None = None
    chosen: dict | None = None

    @property
    def lengths(self) -> dict:
        """The list and expansion lengths by name."""
        return dict(k1=self.k1, k2=self.k2, k1_intra=self.k1_intra, k1_inter=self.k1_inter,
                    k2_intra=self.k2_intra, k2_inter=self.k2_inter)


def check_features_on(features, device: str):
    """The checked float32 features on ``device`` (a resolved device name).

    On "cuda" they are checked and kept on the GPU (cupy and CUDA torch input
    are never copied to the host); host input is checked on the host first,
    for clear errors on None, strings or ragged lists.
    """
    if device == "cuda":
        features = widen_torch(features)  # bfloat16 has no cupy dtype
        X = device_features(features if is_device_array(features) else check_features(features), device)
        check_norms(X, "features", xp=array_module(device))
        return X
    return check_features(features)


def check_request(n: int, *, modalities, cameras, method: str, k1, k2, k1_intra, k1_inter, k2_intra, k2_inter,
                  self_in_k1, knn: str, device: str, features=None) -> PlanRequest:
    """Check the planning arguments for ``n`` rows, each on its own; resolve ``method="auto"``.

    ``device`` must be resolved already. The list lengths are only passed on:
    :func:`check_plan` checks them against the data. ``method="auto"`` with
    modalities is resolved by measuring the modality bias of ``features``
    (:func:`resolve_method`); without ``features`` (argument checks only) it
    is provisionally ``"modality"``.
    """
    method = check_option(method, "method", METHODS)
    mod_codes = cam_codes = mod_names = cam_names = None
    if modalities is not None:
        mod_codes, mod_names = check_labels(modalities, n, "modalities")
    if cameras is not None:
        cam_codes, cam_names = check_labels(cameras, n, "cameras")
    chosen = None
    if method == "auto":
        method, chosen = resolve_method(features, mod_codes, cameras=cam_codes is not None, knn=knn, device=device,
                                        classes=mod_names)
    if not isinstance(self_in_k1, (bool, np.bool_)):
        raise InputError(f"self_in_k1 must be True or False; got {plain(self_in_k1)}.")
    records = {} if chosen is None else {"method": chosen}
    for value, name in ((k1, "k1"), (k2, "k2")):
        if isinstance(value, str) and value != "auto":
            raise InputError(f"{name} must be an integer or 'auto'; got {plain(value)}.")
    if isinstance(k1, str) and k1 == "auto":
        k1, k2, lengths = auto_lengths(features, n, mod_codes, mod_names, cam_codes, method, k2,
                                       self_in_k1=bool(self_in_k1))
        records.update(lengths)
    elif isinstance(k2, str) and k2 == "auto":
        k1_checked = check_int(k1, "k1", minimum=1)
        n_mod = int(mod_codes.max()) + 1 if mod_codes is not None and method in ("modality", "modality-camera") else 1
        k2 = auto_k2(k1_checked, method, n_mod)
        k2_record = {"value": k2, "reason": "ceil(k1 / 5) as in the published k1=30, k2=6"
                     + (f", per modality, at most k1 // {n_mod}" if n_mod > 1 else ""), "measurement": {"k1": k1_checked}}
        logger.info("k2='auto' chose k2=%d: %s", k2, k2_record["reason"])
        records["k2"] = k2_record
    chosen = records or None
    resolve_knn(knn, device)
    return PlanRequest(method=method, k1=k1, k2=k2, k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra,
                       k2_inter=k2_inter, self_in_k1=bool(self_in_k1), knn=knn, device=device,
                       modalities=mod_codes, cameras=cam_codes, modality_names=mod_names, camera_names=cam_names,
                       chosen=chosen)


def resolve_method(features, modality_codes, *, cameras: bool = False, knn: str = "auto", device: str = "cpu",
                   classes=None):
    """The method ``method="auto"`` stands for, and the measurement behind it.

    With two or more modalities the modality bias of ``features`` is measured
    (:func:`xmrank.jaccard.modality_bias.modality_bias`: the cross-modal share
    of plain kNN lists of a sample of rows against the share expected without
    bias) and :func:`~xmrank.jaccard.modality_bias.choose_method` picks
    ``"modality"`` where the lists are biased, else ``"vanilla"``. Without
    modalities nothing is measured: ``"camera"`` with cameras, else
    ``"vanilla"``. The one resolver is
    :func:`~xmrank.jaccard.modality_bias.resolve_auto_method` (re-ranking
    calls it too, with its own threshold); this adds the provisional choice
    of argument checks.

    Parameters
    ----------
    features : array of shape (n, d) or None
        Checked features (on ``device``); None: no measurement, the
        provisional choice ``"modality"`` where two or more modalities are
        given (for argument checks that compute nothing).
    modality_codes : ndarray of int or None
        Modality codes ``0..M-1``.
    cameras : bool, default=False
        Whether camera labels are given.
    knn, device : str
        Where the measurement's search runs.
    classes : sequence, default=None
        The modality labels, for messages.

    Returns
    -------
    method : str
    chosen : dict or None
        ``{"value": method, "reason": ..., "measurement": bias}`` (the dict
        of :func:`~xmrank.jaccard.modality_bias.modality_bias`, or None where
        nothing could be measured); None when no modalities are given or
        nothing was measured yet.
    """
    from .modality_bias import resolve_auto_method

    if features is None and modality_codes is not None and int(modality_codes.max()) >= 1:
        return "modality", None
    return resolve_auto_method(features, modality_codes, classes=classes, cameras=cameras, knn=knn, device=device)


def request_choices(request: PlanRequest) -> dict:
    """What the ``"auto"`` arguments of ``request`` chose: ``{name: {"value", "reason", "measurement"}}``."""
    return {} if request.chosen is None else dict(request.chosen)


def auto_lengths(features, n: int, mod_codes, mod_names, cam_codes, method: str, k2, *, self_in_k1: bool = True):
    """``k1="auto"`` (and ``k2``, given or ``"auto"``) of :func:`xmrank.jaccard_distance`: the retrieval lengths.

    The label-free estimate of :func:`xmrank.jaccard.list_lengths.choose_lengths`
    (the one ``rerank(k1="auto")`` makes): the pairing test, the reciprocity
    group size per modality, else Zhong et al.'s ``k1 = 20, k2 = 6``.

    Parameters
    ----------
    features : array of shape (n, d) or None
        Checked features (any device; measured on a host copy); None: not
        measured, the published lengths capped to the rows (argument checks).
    n : int
    mod_codes, mod_names, cam_codes : ndarray or None
        Modality codes and labels, camera codes.
    method : str
        The resolved method.
    k2 : int or "auto"
    self_in_k1 : bool, default=True

    Returns
    -------
    k1, k2 : int
    records : dict
        ``{"k1": {"value", "reason", "measurement"}, "k2": ...}`` (``k2``
        only where it was ``"auto"``); the measurement holds the group sizes
        and the pairing test.
    """
    from .list_lengths import FeatureSource, choose_lengths

    source = None
    if features is not None and n > 0:
        source = FeatureSource(to_device(features, "cpu"))
    if method in ("modality", "modality-qe", "modality-camera"):
        _require_modalities(mod_codes, method)
    sentences = []

    def fallback(sentence):
        sentences.append(sentence)
        warn_user(sentence)
        logger.warning(sentence)

    out = choose_lengths(source, n, mod_codes, mod_names, method, "auto", k2, self_in_k1=self_in_k1,
                         cam_codes=cam_codes, fallback=fallback)
    if method != "camera" and out["k1"] >= n:  # a list holds fewer rows than exist (k1 < n, every method)
        M = int(mod_codes.max()) + 1 if method in ("modality", "modality-camera") else 1
        out["k1"] = max(M, M * ((n - 1) // M))
        if isinstance(k2, str):
            out["k2"] = max(1, min(out["k2"], out["k1"] // M))
        out["k_reason"] += f"; k1 capped below the {n} rows"
    measurement = {"group_size": out["group_size"], "per_modality": out["per_modality"], "pairing": out["pairing"],
                   "fallbacks": sentences}
    records = {"k1": {"value": int(out["k1"]), "reason": out["k_reason"], "measurement": measurement}}
    if isinstance(k2, str):
        records["k2"] = {"value": int(out["k2"]), "reason": out["k_reason"], "measurement": measurement}
    logger.info("k1='auto' chose k1=%d, k2=%s: %s", out["k1"], out["k2"], out["k_reason"])
    return out["k1"], out["k2"], records


def auto_k2(k1: int, method: str, n_modalities: int = 1) -> int:
    """``k2="auto"``: ``ceil(k1 / 5)`` (the published 30 / 6), at most the list each expansion reads.

    Parameters
    ----------
    k1 : int
    method : str
        The resolved Jaccard method.
    n_modalities : int, default=1
        Modalities, for the modality-aware rules (whose ``k2`` is per modality
        and at most ``k1 // M``).
    """
    k2 = max(1, -(-int(k1) // 5))
    per = k1 // n_modalities if method in ("modality", "modality-camera") and n_modalities > 1 else k1
    return int(max(1, min(k2, per)))


def check_plan(n: int, request: PlanRequest, *, combined: bool = True) -> None:
    """Raise what :func:`build_plan` would raise for ``n`` rows, without searching.

    ``combined=False`` checks each length on its own (integers >= 1, ``k1``
    below ``n``) and the labels the method needs, but not how they combine
    (``k2`` against ``k1 // M``, list lengths against group sizes).
    """
    if combined:
        _PLANNERS[request.method](_Rows(n), request, search=False)
        return
    for name, value in request.lengths.items():
        check_int(value, name, minimum=1)
    if request.k1 >= n:
        raise InputError(f"k1={request.k1} must be smaller than the number of rows ({n}).")
    if request.method in ("modality", "modality-qe", "modality-camera"):
        _require_modalities(request.modalities, request.method)
    if request.method in ("camera", "modality-camera") and request.cameras is None:
        raise InputError(f"method={request.method!r} needs cameras: one camera label per row.")


def build_plan(source, request: PlanRequest) -> JaccardPlan:
    """Check the lengths against the rows, search the neighbour lists and build the plan of ``request.method``.

    Parameters
    ----------
    source : array of shape (n_samples, n_features), or NeighbourSource
        Checked features (searched with ``request.knn`` on
        ``request.device``), or any neighbour source
        (:mod:`xmrank.jaccard.neighbors`), e.g. precomputed distance blocks.
    request : PlanRequest
    """
    source = neighbors.as_source(source, knn=request.knn, device=request.device)
    return _PLANNERS[request.method](source, request, search=True)


def plan_jaccard(features, *, modalities=None, cameras=None, method: str = _D["method"], k1: int = _D["k1"],
                 k2: int = _D["k2"], k1_intra: int = _D["k1_intra"], k1_inter: int = _D["k1_inter"],
                 k2_intra: int = _D["k2_intra"], k2_inter: int = _D["k2_inter"], self_in_k1: bool = True,
                 knn: str = _D["knn"], device: str = _D["device"]) -> JaccardPlan:
    """The neighbour lists, k-reciprocal masks and query expansion of :func:`xmrank.jaccard_distance`.

    The first stage of the Jaccard pipeline, on its own: what a method
    searches and keeps, before any weight is computed. The arguments are
    those of :func:`xmrank.jaccard_distance` and mean the same.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    modalities, cameras : array-like of shape (n_samples,), default=None
    method : {"auto", "vanilla", "modality", "modality-qe", "camera", "modality-camera"}, default="auto"
    k1, k2 : int or "auto", default=30, 6
        "auto": see :func:`xmrank.jaccard_distance`; the choice and its
        measurement are in ``plan.chosen["k1"]`` / ``plan.chosen["k2"]``.
    k1_intra, k1_inter, k2_intra, k2_inter : int, default=5, 20, 2, 4
    self_in_k1 : bool, default=True
    knn : {"auto", "faiss", "numpy", "ann", "dask", "bf16"}, default="auto"
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the search runs; the plan's arrays are on the host.

    Returns
    -------
    plan : JaccardPlan

    Raises
    ------
    xmrank.InputError
        As :func:`xmrank.jaccard_distance`, for the same arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from xmrank.jaccard import plan_jaccard
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8)).astype("float32")
    >>> X /= np.linalg.norm(X, axis=1, keepdims=True)
    >>> plan = plan_jaccard(X, modalities=np.repeat([0, 1], 50), k1=10, k2=3)
    >>> plan.method, plan.rank.shape  # "auto": random rows show no modality bias
    ('vanilla', (100, 10))
    >>> plan_jaccard(X + np.repeat([[2.0], [-2.0]], 50, axis=0), modalities=np.repeat([0, 1], 50), k1=10, k2=3).method
    'modality'
    """
    device = resolve_device(device)
    with using_device(device):
        X = check_features_on(features, device)
        request = check_request(X.shape[0], modalities=modalities, cameras=cameras, method=method, k1=k1, k2=k2,
                                k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
                                self_in_k1=self_in_k1, knn=knn, device=device, features=X)
        plan = build_plan(X, request)
        plan.chosen = request_choices(request)
        return plan


# --- per-method planners: check the lengths, then (search=True) search and build ---------------

class _Rows:
    """Stands in for the neighbour source where only the row count is checked."""

    def __init__(self, n):
        self.n = n


def _round_half_even(x: float) -> int:
    return int(np.around(x))


def _check_k(k, name, limit, what):
    if k > limit:
        raise InputError(f"{name}={k} asks {what} for more neighbours than it has rows ({limit}).")


def _require_modalities(codes, method):
    if codes is None:
        raise InputError(f"method={method!r} needs modalities: one modality label per row.")
    if codes.max() < 1:
        raise InputError("modalities holds a single modality; the modality-aware methods need at least two.")
    return codes


def _check_below_rows(k1: int, n: int) -> None:
    """``k1 >= n`` is an error for every method (README, "Errors"): a list cannot hold more rows than exist."""
    if k1 >= n:
        raise InputError(f"k1={k1} must be smaller than the number of rows ({n}).")


def _plan_global(source, req: PlanRequest, *, search: bool):
    """Global neighbour lists; "modality-qe" balances the expansion over modalities."""
    n = source.n
    codes = _require_modalities(req.modalities, req.method) if req.method == "modality-qe" else None
    k1 = check_int(req.k1, "k1", minimum=1)
    k2 = check_int(req.k2, "k2", minimum=1)
    _check_below_rows(k1, n)
    if k2 > k1:
        raise InputError(f"k2={k2} must not exceed k1={k1}.")
    if not search:
        return None
    width = k1 if req.self_in_k1 else k1 + 1
    sims, rank = source.ranked(width, k_read=k2)
    Q = None
    if k2 > 1:
        cols = rank[:, :k2]
        Q = qe.mean_of_lists(n, [cols]) if codes is None else qe.balanced_by_label(n, cols, codes)
    return _k_reciprocal_plan(req.method, sims, rank, k1, Q)


def _plan_modality(source, req: PlanRequest, *, search: bool):
    n = source.n
    codes = _require_modalities(req.modalities, req.method)
    n_mod = int(codes.max()) + 1
    k1 = check_int(req.k1, "k1", minimum=n_mod)
    k2 = check_int(req.k2, "k2", minimum=1)
    per = k1 // n_mod
    sizes = np.bincount(codes, minlength=n_mod)
    _check_k(per, f"k1 // {n_mod} modalities", int(sizes.min()), "the smallest modality")
    _check_below_rows(k1, n)
    if k2 > per:
        raise InputError(f"k2={k2} must not exceed the per-modality list length k1 // {n_mod} = {per}.")
    if not search:
        return None
    lists = source.ranked_groups(codes, n_mod, per, k_read=k2)
    sims, rank = neighbors.merge_lists(lists)
    Q = qe.balanced_over_lists(n, [idx[:, :k2] for _, idx in lists]) if k2 > 1 else None
    return _k_reciprocal_plan(req.method, sims, rank, k1, Q)


def _plan_modality_camera(source, req: PlanRequest, *, search: bool):
    n = source.n
    codes = _require_modalities(req.modalities, req.method)
    cam_codes = req.cameras
    if cam_codes is None:
        raise InputError("method='modality-camera' needs cameras: one camera label per row.")
    n_mod = int(codes.max()) + 1
    k1 = check_int(req.k1, "k1", minimum=n_mod)
    k2 = check_int(req.k2, "k2", minimum=1)
    per_mod = k1 // n_mod
    mod_names = np.arange(n_mod) if req.modality_names is None else req.modality_names
    cam_names = np.arange(int(cam_codes.max()) + 1) if req.camera_names is None else req.camera_names
    groups = []
    for g in range(n_mod):
        rows = np.flatnonzero(codes == g)
        cams = np.unique(cam_codes[rows])
        per_cam = per_mod // cams.size
        if per_cam < 1:
            raise InputError(
                f"k1={k1} gives modality {plain(mod_names[g])} {per_mod} neighbours, fewer than its "
                f"{cams.size} cameras; raise k1."
            )
        members = [rows[cam_codes[rows] == c] for c in cams]
        for c, m in zip(cams, members):
            _check_k(per_cam, f"k1 // {n_mod} // {cams.size} cameras", m.size, f"camera {plain(cam_names[c])}")
        if k2 > per_cam * cams.size:
            raise InputError(
                f"k2={k2} must not exceed modality {plain(mod_names[g])}'s list length ({per_cam * cams.size})."
            )
        groups.append((per_cam, members))
    _check_below_rows(k1, n)
    if not search:
        return None
    per_modality_lists = [neighbors.merge_lists([source.ranked(per_cam, cols=m) for m in members])
                          for per_cam, members in groups]
    sims, rank = neighbors.merge_lists(per_modality_lists)
    Q = qe.balanced_over_lists(n, [idx[:, :k2] for _, idx in per_modality_lists]) if k2 > 1 else None
    return _k_reciprocal_plan(req.method, sims, rank, k1, Q)


def _plan_camera(source, req: PlanRequest, *, search: bool):
    n = source.n
    cam_codes = req.cameras
    if cam_codes is None:
        raise InputError("method='camera' needs cameras: one camera label per row.")
    n_cam = int(cam_codes.max()) + 1
    if n_cam < 2:
        raise InputError("method='camera' needs at least two distinct cameras; cameras holds one.")
    k1_intra, k1_inter, k2_intra, k2_inter = (check_int(getattr(req, name), name, minimum=1)
                                              for name in ("k1_intra", "k1_inter", "k2_intra", "k2_inter"))
    sizes = np.bincount(cam_codes, minlength=n_cam)
    _check_k(k1_intra + 1, "k1_intra + 1", int(sizes.min()), "the smallest camera")
    _check_k(k1_inter + 1, "k1_inter + 1", int(n - sizes.max()), "the other cameras of the largest camera")
    if k2_intra > k1_intra + 1 or k2_inter > k1_inter + 1:
        raise InputError("k2_intra and k2_inter must not exceed k1_intra + 1 and k1_inter + 1.")
    if not search:
        return None
    (s_a, r_a), (s_b, r_b) = neighbors.camera_lists(source, cam_codes, n_cam, k1_intra + 1, k1_inter + 1)
    mask = np.concatenate([kernels.reciprocal_mask(r_a, k1_intra), kernels.reciprocal_mask(r_b, k1_inter)], axis=1)
    return JaccardPlan(method=req.method, rank=np.concatenate([r_a, r_b], axis=1),
                       sims=np.concatenate([s_a, s_b], axis=1), reciprocal=mask, half_reciprocal=None,
                       expansion=qe.mean_of_lists(n, [r_a[:, :k2_intra], r_b[:, :k2_inter]]))


def _k_reciprocal_plan(method, sims, rank, k1, Q) -> JaccardPlan:
    """k-reciprocal sets over ``rank``, expanded by the half sets of ``round(k1 / 2)``."""
    return JaccardPlan(method=method, rank=rank, sims=sims, reciprocal=kernels.reciprocal_mask(rank, k1),
                       half_reciprocal=kernels.reciprocal_mask(rank, _round_half_even(k1 / 2)), expansion=Q)


_PLANNERS = {
    "vanilla": _plan_global,
    "modality": _plan_modality,
    "modality-qe": _plan_global,
    "camera": _plan_camera,
    "modality-camera": _plan_modality_camera,
}
