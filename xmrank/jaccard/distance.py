"""``jaccard_distance``: vanilla, modality-aware and camera-aware k-reciprocal Jaccard.

The orchestration is the same for every method:

1. neighbour lists (:mod:`xmrank.neighbors`);
2. k-reciprocal sets and their expansion (:mod:`xmrank.jaccard.kernels`);
3. softmax weights ``V`` over each set;
4. local query expansion ``V' = Q V`` (:mod:`xmrank.jaccard.query_expansion`);
5. ``J = 1 - m/(2-m)`` over pairs that share a column.

Only steps 1, 2 and 4 depend on the method.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time

import numba
import numpy as np
import scipy.sparse as sp

from .. import neighbors
from ..knn import knn_search
from .._progress import progress_bar
from ..backend import array_module, device_features, is_device_array, on_device, resolve_device, resolve_knn
from .._validation import (InputError, check_features, check_int, check_labels, check_norms, check_option,
                           check_real, plain, widen_torch)
from . import blocks, kernels
from . import query_expansion as qe

logger = logging.getLogger("xmrank")

__all__ = ["jaccard_distance", "check_arguments", "METHODS"]

#: Method names accepted by ``method=``.
METHODS = ("auto", "vanilla", "modality", "modality-qe", "camera", "modality-camera")


def _round_half_even(x: float) -> int:
    return int(np.around(x))


@on_device
def jaccard_distance(
    features,
    *,
    modalities=None,
    cameras=None,
    method: str = "auto",
    k1: int = 30,
    k2: int = 6,
    k1_intra: int = 5,
    k1_inter: int = 20,
    k2_intra: int = 2,
    k2_inter: int = 4,
    self_in_k1: bool = True,
    dense: bool = False,
    max_distance: float | None = None,
    knn: str = "auto",
    device: str = "cpu",
    n_jobs: int | None = None,
    progress: bool | None = None,
):
    """k-reciprocal Jaccard distance between all rows of ``features``.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Embeddings, used as given (not re-normalised; the published methods
        assume L2-normalised rows). numpy, torch and cupy arrays are accepted.
    modalities : array-like of shape (n_samples,), default=None
        Modality label of each row (ints or strings, any row order, any
        number of modalities >= 2). Required by ``"modality"`` and
        ``"modality-qe"``.
    cameras : array-like of shape (n_samples,), default=None
        Camera label of each row, for ``method="camera"``.
    method : {"auto", "vanilla", "modality", "modality-qe", "camera"}, default="auto"
        - ``"vanilla"``: k-reciprocal Jaccard as cluster-contrast computes it.
        - ``"modality"``: the modality-aware Jaccard of BMIL (AAAI 2026):
          ``k1 // M`` neighbours from each of the ``M`` modalities, merged;
          query expansion averages the first ``k2`` neighbours of each
          modality, each modality weighted equally.
        - ``"modality-qe"``: global neighbour lists, modality-balanced query
          expansion only (the prior methods' variant, for ablations).
        - ``"camera"``: CA-Jaccard (CKRNNs + CLQE) with ``k1_intra``,
          ``k1_inter``, ``k2_intra``, ``k2_inter``.
        - ``"modality-camera"``: xmrank's extension for cameras nested in
          modalities (SYSU-MM01: four visible and two infrared cameras):
          each modality's ``k1 // M`` neighbours are split evenly over its
          cameras, merged; query expansion as ``"modality"``. With one camera
          per modality it equals ``"modality"``.
        - ``"auto"``: ``"modality"`` when ``modalities`` is given, else
          ``"camera"`` when ``cameras`` is given, else ``"vanilla"``.
    k1 : int, default=30
        Neighbour-list length (``"vanilla"``, ``"modality"``, ``"modality-qe"``).
    k2 : int, default=6
        Query-expansion length; 1 disables expansion. For ``"modality"`` it
        is the number of neighbours taken *per modality*.
    k1_intra, k1_inter, k2_intra, k2_inter : int, default=5, 20, 2, 4
        CA-Jaccard's same-camera / other-camera list and expansion lengths.
    self_in_k1 : bool, default=True
        Neighbour-list convention of ``"vanilla"`` and ``"modality-qe"``:
        True counts the row itself among its ``k1`` neighbours
        (cluster-contrast, the default); False searches ``k1 + 1`` columns
        (CA-Jaccard's plain mode). The two differ by up to 0.05 per entry.
    dense : bool, default=False
        Return a dense float32 array instead of a sparse matrix.
    max_distance : float, default=None
        Store only pairs with distance <= ``max_distance`` (the others read
        as 1). None stores every pair below 1, the exact matrix. Clustering
        passes its ``eps``, which leaves DBSCAN's result unchanged and cuts
        memory several-fold: most pairs share only a sliver of weight and
        sit just below 1.
    knn : {"auto", "faiss", "numpy", "ann", "dask"}, default="auto"
        kNN engine, see :func:`xmrank.backend.resolve_knn`: exact search
        ("auto", "faiss", "numpy"), approximate faiss IVF search with
        measured recall >= 0.97 ("ann", for N in the hundreds of
        thousands and more), or exact search on the current
        ``dask.distributed`` client ("dask").
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        "cuda" runs the kNN search (faiss-gpu, else cupy) and the Jaccard
        kernels (:mod:`xmrank.jaccard.kernels_xp` on cupy) on the GPU
        ("cuda:N": on GPU ``N``, else the current one); needs the ``gpu``
        extra. ``features`` may then be a cupy array or a CUDA
        torch tensor (moved by DLPack): it is checked on the GPU and not
        copied to the host (the faiss-gpu engine stages its input through
        the host, as faiss' Python API takes numpy arrays).
    n_jobs : int, default=None
        Threads of the compiled kernels; None uses all cores.
    progress : bool, default=None
        Show a progress bar; None shows it only on a terminal.

    Returns
    -------
    distance : scipy.sparse.csr_matrix or ndarray of float32, shape (n_samples, n_samples)
        Sparse (default): every pair whose distance is below 1 is stored,
        zeros included explicitly (scikit-learn treats unstored entries of a
        precomputed sparse matrix as non-neighbours); every unstored pair has
        distance 1. The matrix is symmetric with a zero diagonal.

    Raises
    ------
    xmrank.InputError
        For malformed input: shapes, lengths, NaN/inf, rows whose squared
        norm overflows float32 similarity products (above ~8.5e37), missing
        or non-label values in ``modalities``/``cameras`` (None, NaN,
        fractional floats, complex, datetime), unknown method, too few
        modalities, or a ``k`` that asks a group for more rows than it has.

    Notes
    -----
    With more than two modalities, ``"modality"`` takes ``k1 // M``
    neighbours from each of the ``M`` modalities (``M * (k1 // M)`` in all)
    and weights each modality's query-expansion mean by ``1/M``; with two it
    is exactly the published method. Results are independent of row order up
    to exact similarity ties.

    Examples
    --------
    >>> import numpy as np, xmrank
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 16)).astype("float32")
    >>> X /= np.linalg.norm(X, axis=1, keepdims=True)
    >>> mods = np.repeat([0, 1], 100)
    >>> D = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3)
    >>> D.shape
    (200, 200)
    """
    X, mod_codes, cam_codes, method, max_distance, n_threads, device, params = _validate(locals())
    n = X.shape[0]
    t0 = time.perf_counter()
    timer = _StageTimer()
    old_threads = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with progress_bar(total=4, desc=f"jaccard[{method}]", show=progress) as bar:
            plan = _PLANNERS[method](X, mod_codes, cam_codes, params)
            timer("neighbour lists", bar)
            if device == "cuda":  # the array-module kernels on cupy; results come back to the host
                from . import kernels_xp

                j_ptr, j_idx, j_val = kernels_xp.jaccard_from_plan(
                    X, plan, xp=array_module(device), max_distance=max_distance)
                del plan
                timer("Jaccard on the GPU", bar)
                bar.update(2)
            else:
                indptr, indices = kernels.expand_lists(*plan["sets"])
                ls, li = plan["known"]
                V = sp.csr_matrix((kernels.softmax_weights(X, indptr, indices, li, ls), indices, indptr),
                                  shape=(n, n))
                del indptr, indices, plan["sets"], plan["known"]
                timer("reciprocal sets and weights", bar)
                Q = plan["qe"]
                Vq = V if Q is None else (Q @ V).tocsr()
                del V, Q, plan
                timer("query expansion", bar)
                j_ptr, j_idx, j_val = blocks.minsum_jaccard(Vq, n_threads, max_distance=max_distance)
                del Vq
                timer("min-sum Jaccard", bar)
    finally:
        numba.set_num_threads(old_threads)
    logger.info("jaccard_distance(method=%r, n=%d): %.2fs, %d stored pairs (%s)", method, n,
                time.perf_counter() - t0, len(j_val), timer.report())
    if dense:
        out = np.ones((n, n), dtype=np.float32)
        rows = np.repeat(np.arange(n), np.diff(j_ptr))
        out[rows, j_idx] = j_val
        return out
    D = sp.csr_matrix((j_val, j_idx, j_ptr), shape=(n, n))
    D.has_sorted_indices = False
    return D


def _validate(args):
    """Check every argument of :func:`jaccard_distance` (``args``: its locals); compute nothing.

    Returns the checked features, label codes, resolved method, ``max_distance``,
    thread count, device and the planner's parameter dict.
    """
    method = check_option(args["method"], "method", METHODS)
    device = resolve_device(args["device"])
    features = args["features"]
    # on "cuda" the features are checked and kept on the GPU (cupy and CUDA torch input are never copied to the host)
    if device == "cuda":
        # host input is checked on the host first (clear errors for None, strings, ragged lists)
        features = widen_torch(features)  # bfloat16 has no cupy dtype
        X = device_features(features if is_device_array(features) else check_features(features), device)
        check_norms(X, "features", xp=array_module(device))
    else:
        X = check_features(features)
    n = X.shape[0]
    mod_codes = cam_codes = mod_classes = cam_classes = None
    if args["modalities"] is not None:
        mod_codes, mod_classes = check_labels(args["modalities"], n, "modalities")
    if args["cameras"] is not None:
        cam_codes, cam_classes = check_labels(args["cameras"], n, "cameras")
    if method == "auto":
        method = "modality" if mod_codes is not None else ("camera" if cam_codes is not None else "vanilla")
    max_distance = args["max_distance"]
    if max_distance is not None:
        max_distance = check_real(max_distance, "max_distance", low=0.0)
    n_jobs = args["n_jobs"]
    n_threads = numba.config.NUMBA_NUM_THREADS if n_jobs is None else check_int(n_jobs, "n_jobs", minimum=1)
    for flag in ("self_in_k1", "dense"):
        if not isinstance(args[flag], (bool, np.bool_)):
            raise InputError(f"{flag} must be True or False; got {plain(args[flag])}.")
    resolve_knn(args["knn"], device)
    params = {k: args[k] for k in ("k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter", "self_in_k1",
                                   "knn", "device")}
    params.update(method=method, mod_classes=mod_classes, cam_classes=cam_classes, check_only=False)
    return X, mod_codes, cam_codes, method, max_distance, n_threads, device, params


def check_arguments(features, *, combined: bool = True, **kwargs) -> None:
    """Raise what :func:`jaccard_distance` would raise for these arguments, without computing anything.

    Used where the distance may be skipped (``rerank(lambda_value=1)``) so that
    a bad ``k1`` or ``method`` is still reported. ``combined=False`` checks
    each argument on its own (types, ranges, ``k1`` below the number of
    rows, the labels the method needs) but not how they combine (``k2``
    against ``k1 // M``, list lengths against group sizes).
    """
    args = {k: v.default for k, v in inspect.signature(jaccard_distance).parameters.items()}
    unknown = set(kwargs) - set(args)
    if unknown:
        raise InputError(f"unknown jaccard_distance argument {sorted(unknown)[0]!r}.")
    args.update(kwargs, features=features)
    X, mod_codes, cam_codes, method, _, _, _, params = _validate(args)
    if not combined:
        for name in ("k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter"):
            check_int(params[name], name, minimum=1)
        if params["k1"] >= X.shape[0]:
            raise InputError(f"k1={params['k1']} must be smaller than the number of rows ({X.shape[0]}).")
        if method in ("modality", "modality-qe", "modality-camera"):
            _require_modalities(mod_codes, method)
        if method in ("camera", "modality-camera") and cam_codes is None:
            raise InputError(f"method={method!r} needs cameras: one camera label per row.")
        return
    params["check_only"] = True
    _PLANNERS[method](X, mod_codes, cam_codes, params)


class _StageTimer:
    """Wall time per pipeline stage, for the log."""

    def __init__(self):
        self.last = time.perf_counter()
        self.stages = []

    def __call__(self, name, bar):
        now = time.perf_counter()
        self.stages.append((name, now - self.last))
        logger.debug("jaccard stage %-28s %.2fs", name, now - self.last)
        self.last = now
        bar.stage(name)

    def report(self):
        return ", ".join(f"{name} {sec:.2f}s" for name, sec in self.stages)


# --- per-method plans: neighbour sets, known similarities, expansion matrix ---

def _check_k(k, name, limit, what):
    if k > limit:
        raise InputError(f"{name}={k} asks {what} for more neighbours than it has rows ({limit}).")


def _plan_global(X, mod_codes, cam_codes, p, *, balance_qe=False):
    """Global neighbour lists; "modality-qe" balances the expansion over modalities."""
    n = X.shape[0]
    codes = _require_modalities(mod_codes, p.get("method", "modality-qe")) if balance_qe else None
    k1 = check_int(p["k1"], "k1", minimum=1)
    k2 = check_int(p["k2"], "k2", minimum=1)
    if k1 >= n:
        raise InputError(f"k1={k1} must be smaller than the number of rows ({n}).")
    if k2 > k1:
        raise InputError(f"k2={k2} must not exceed k1={k1}.")
    if p.get("check_only"):
        return None
    width = k1 if p["self_in_k1"] else k1 + 1
    sims, rank = neighbors.global_lists(X, width, knn=p["knn"], device=p["device"])
    return _k_reciprocal_plan(n, sims, rank, k1, k2, qe_cols=rank[:, :k2], codes=codes)


def _plan_modality(X, mod_codes, cam_codes, p):
    n = X.shape[0]
    codes = _require_modalities(mod_codes, p.get("method", "modality"))
    n_mod = int(codes.max()) + 1
    k1 = check_int(p["k1"], "k1", minimum=n_mod)
    k2 = check_int(p["k2"], "k2", minimum=1)
    per = k1 // n_mod
    sizes = np.bincount(codes, minlength=n_mod)
    _check_k(per, f"k1 // {n_mod} modalities", int(sizes.min()), "the smallest modality")
    if k2 > per:
        raise InputError(f"k2={k2} must not exceed the per-modality list length k1 // {n_mod} = {per}.")
    if p.get("check_only"):
        return None
    lists = neighbors.per_group_lists(X, codes, n_mod, per, knn=p["knn"], device=p["device"])
    sims, rank = neighbors.merge_lists(lists)
    plan = _k_reciprocal_plan(n, sims, rank, k1, k2, qe_cols=None, codes=None)
    if k2 > 1:
        plan["qe"] = qe.balanced_over_lists(n, [idx[:, :k2] for _, idx in lists])
    return plan


def _plan_modality_camera(X, mod_codes, cam_codes, p):
    n = X.shape[0]
    codes = _require_modalities(mod_codes, p.get("method", "modality"))
    if cam_codes is None:
        raise InputError("method='modality-camera' needs cameras: one camera label per row.")
    n_mod = int(codes.max()) + 1
    k1 = check_int(p["k1"], "k1", minimum=n_mod)
    k2 = check_int(p["k2"], "k2", minimum=1)
    per_mod = k1 // n_mod
    # labels as the user spelt them, for messages (the dask runner passes codes only)
    mod_names = p.get("mod_classes")
    cam_names = p.get("cam_classes")
    mod_names = np.arange(n_mod) if mod_names is None else mod_names
    cam_names = np.arange(int(cam_codes.max()) + 1) if cam_names is None else cam_names
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
    if p.get("check_only"):
        return None
    per_modality_lists = []
    for per_cam, members in groups:
        parts = []
        for m in members:
            sims, local = knn_search(X, X[m], per_cam, knn=p["knn"], device=p["device"])
            parts.append((sims, m[local]))
        per_modality_lists.append(neighbors.merge_lists(parts))
    sims, rank = neighbors.merge_lists(per_modality_lists)
    plan = _k_reciprocal_plan(n, sims, rank, k1, k2, qe_cols=None, codes=None)
    if k2 > 1:
        plan["qe"] = qe.balanced_over_lists(n, [idx[:, :k2] for _, idx in per_modality_lists])
    return plan


def _plan_camera(X, mod_codes, cam_codes, p):
    n = X.shape[0]
    if cam_codes is None:
        raise InputError("method='camera' needs cameras: one camera label per row.")
    n_cam = int(cam_codes.max()) + 1
    if n_cam < 2:
        raise InputError("method='camera' needs at least two distinct cameras; cameras holds one.")
    ks = {name: check_int(p[name], name, minimum=1) for name in ("k1_intra", "k1_inter", "k2_intra", "k2_inter")}
    sizes = np.bincount(cam_codes, minlength=n_cam)
    _check_k(ks["k1_intra"] + 1, "k1_intra + 1", int(sizes.min()), "the smallest camera")
    _check_k(ks["k1_inter"] + 1, "k1_inter + 1", int(n - sizes.max()), "the other cameras of the largest camera")
    if ks["k2_intra"] > ks["k1_intra"] + 1 or ks["k2_inter"] > ks["k1_inter"] + 1:
        raise InputError("k2_intra and k2_inter must not exceed k1_intra + 1 and k1_inter + 1.")
    if p.get("check_only"):
        return None
    (s_a, r_a), (s_b, r_b) = neighbors.camera_lists(
        X, cam_codes, n_cam, ks["k1_intra"] + 1, ks["k1_inter"] + 1, knn=p["knn"], device=p["device"]
    )
    mask_a = kernels.reciprocal_mask(r_a, ks["k1_intra"])
    mask_b = kernels.reciprocal_mask(r_b, ks["k1_inter"])
    rank = np.concatenate([r_a, r_b], axis=1)
    sims = np.concatenate([s_a, s_b], axis=1)
    mask = np.concatenate([mask_a, mask_b], axis=1)
    qe_m = qe.mean_of_lists(n, [r_a[:, : ks["k2_intra"]], r_b[:, : ks["k2_inter"]]])
    return {"sets": (rank, mask), "known": (sims, rank), "qe": qe_m}


def _k_reciprocal_plan(n, sims, rank, k1, k2, *, qe_cols, codes):
    r_mask = kernels.reciprocal_mask(rank, k1)
    k_half = _round_half_even(k1 / 2)
    h_mask = kernels.reciprocal_mask(rank, k_half)
    Q = None
    if k2 > 1 and qe_cols is not None:
        Q = qe.mean_of_lists(n, [qe_cols]) if codes is None else qe.balanced_by_label(n, qe_cols, codes)
    return {"sets": (rank, r_mask, rank, h_mask), "known": (sims, rank), "qe": Q}


def _require_modalities(codes, method):
    if codes is None:
        raise InputError(f"method={method!r} needs modalities: one modality label per row.")
    if codes.max() < 1:
        raise InputError("modalities holds a single modality; the modality-aware methods need at least two.")
    return codes


_PLANNERS = {
    "vanilla": _plan_global,
    "modality": _plan_modality,
    "modality-qe": functools.partial(_plan_global, balance_qe=True),
    "camera": _plan_camera,
    "modality-camera": _plan_modality_camera,
}
