"""``jaccard_distance``: vanilla, modality-aware and camera-aware k-reciprocal Jaccard.

The pipeline is the same for every method and every backend:

1. plan (:mod:`xmrank.jaccard.plan`): neighbour lists
   (:mod:`xmrank.jaccard.neighbors`), k-reciprocal masks, query-expansion
   matrix; the only method-dependent stage;
2. softmax weights ``V`` over each expanded set;
3. local query expansion ``V' = Q V``;
4. min-sum ``J = 1 - m/(2-m)`` over pairs that share a column;
5. output: sparse or dense.

Stages 2-4 run on an executor (:mod:`xmrank.jaccard.stages`): the numba
kernels on the CPU, the array-module kernels on the GPU, or a dask cluster.
"""

from __future__ import annotations

import inspect
import logging
import time

import numpy as np

from .._params import DEFAULTS as _D
from .._progress import progress_bar
from .._validation import InputError, check_n_jobs, check_option, check_real, plain
from ..backend import array_module, on_device, resolve_device
from .plan import METHODS, build_plan, check_features_on, check_plan, check_request
from .stages import STAGES, Executor, NumbaExecutor, StageTimer, numba_threads, run_stages, to_output

logger = logging.getLogger(__name__)

__all__ = ["jaccard_distance", "check_arguments", "METHODS"]

#: Executor names accepted by ``executor=``.
EXECUTORS = ("numba", "array")


@on_device
def jaccard_distance(
    features,
    *,
    modalities=None,
    cameras=None,
    method: str = _D["method"],
    k1: int = _D["k1"],
    k2: int = _D["k2"],
    k1_intra: int = _D["k1_intra"],
    k1_inter: int = _D["k1_inter"],
    k2_intra: int = _D["k2_intra"],
    k2_inter: int = _D["k2_inter"],
    self_in_k1: bool = True,
    dense: bool = False,
    max_distance: float | None = None,
    knn: str = _D["knn"],
    device: str = _D["device"],
    n_jobs: int | None = _D["n_jobs"],
    progress: bool | None = _D["progress"],
    executor=None,
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
    method : {"auto", "vanilla", "modality", "modality-qe", "camera", "modality-camera"}, default="auto"
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
        - ``"auto"``: with modalities, ``"modality"`` where the features show
          a modality bias (the cross-modal share of plain 20-NN lists of a
          sample of rows below half the share expected without bias,
          :mod:`xmrank.jaccard.modality_bias`), else ``"vanilla"``; without
          modalities ``"camera"`` when ``cameras`` is given, else
          ``"vanilla"``. The choice and its measurement are logged (and kept
          in ``JaccardPlan.chosen`` by :func:`xmrank.jaccard.plan_jaccard`).
    k1 : int or "auto", default=30
        Neighbour-list length (``"vanilla"``, ``"modality"``, ``"modality-qe"``).
        "auto": the label-free list lengths of
        :func:`xmrank.jaccard.list_lengths.choose_lengths`, read from the
        rows' own neighbour lists, the estimate ``rerank(k1="auto")`` makes
        (the same ``k1`` and ``k2`` on the same rows): where a pairing test
        shows one item per identity and modality (rows are more often mutual
        nearest neighbours across modalities than within one), one neighbour
        per modality and ``k2 = 1``; where the reciprocity of within-modality
        lists shows identities of ``m >= 2`` items per modality,
        ``max(10, 2m + 2)`` neighbours per modality and ``k2 = max(6, m + 1)``;
        otherwise Zhong et al.'s published ``k1 = 20, k2 = 6``. These are
        retrieval lengths. :func:`xmrank.cluster` (``k1="auto"``) measures
        something else: it clusters at each of k1 in {5, 10, 20, 30} and keeps
        the best label-free clustering quality, which needs the clustering
        (for its distance pass ``return_distance=True`` there). The choice,
        the group sizes and the pairing test are logged and kept in
        ``JaccardPlan.chosen["k1"]`` (:func:`xmrank.jaccard.plan_jaccard`).
    k2 : int or "auto", default=6
        Query-expansion length; 1 disables expansion. For ``"modality"`` it
        is the number of neighbours taken *per modality*. "auto" with an
        integer ``k1``: ``ceil(k1 / 5)`` (the published 30 / 6), at most
        ``k1 // M`` per modality; with ``k1="auto"``: the ``k2`` of that
        choice (see ``k1``).
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
    knn : {"auto", "faiss", "numpy", "bf16", "ann", "dask"}, default="auto"
        kNN engine, see :func:`xmrank.backend.resolve_knn`: exact search
        ("auto", "faiss", "numpy", "bf16"), faiss IVF search calibrated on
        what this distance reads, or exact search per modality where that is
        cheaper ("ann", for N in the hundreds of thousands and more; see
        :mod:`xmrank.knn.ann_lists`), or exact search on the current
        ``dask.distributed`` client ("dask").
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        "cuda" runs the kNN search (faiss-gpu, else cupy) and the Jaccard
        kernels (:mod:`xmrank.jaccard.kernels_xp` on cupy) on the GPU
        ("cuda:N": on GPU ``N``, else the current one); needs the ``gpu``
        extra. ``features`` may then be a cupy array or a CUDA
        torch tensor (moved by DLPack): it is checked on the GPU and not
        copied to the host (the faiss-gpu engine stages its input through
        the host, as faiss' Python API takes numpy arrays).
    n_jobs : int, default=-1
        Threads of the compiled kernels, with scikit-learn's meaning: -1
        uses all cores, ``-k`` all but ``k - 1``, None one (or the
        ``n_jobs`` of an enclosing ``joblib.parallel_config``); 0 is refused.
    progress : bool, default=None
        Show a progress bar; None shows it only on a terminal.
    executor : {"numba", "array"} or Executor, default=None
        Where the stages after the search run (weights, expansion, min-sum;
        :mod:`xmrank.jaccard.stages`): "numba", the compiled CPU kernels;
        "array", the array-module kernels (:mod:`xmrank.jaccard.kernels_xp`)
        on the device's array module (cupy on "cuda", numpy on "cpu"); or an
        :class:`~xmrank.jaccard.stages.Executor` instance (as
        :func:`xmrank.distributed.jaccard_distance_dask` passes). None picks
        "array" on "cuda" and "numba" on "cpu". Every executor returns the
        same matrix (to float32 rounding).

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
    xmrank.OutputTooLarge
        Before the output is allocated, where it would not fit in the memory
        available (an ``InputError`` and a ``MemoryError``): the stored pairs
        are estimated from a sample of rows (on noisy features every row's
        expanded set overlaps thousands of others, and the full matrix is
        dense in practice); the message names ``max_distance``, which keeps
        only close pairs. ``XMRANK_MEMORY_LIMIT`` lowers the budget.

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
    device = resolve_device(device)
    X = check_features_on(features, device)
    n = X.shape[0]
    request = check_request(n, modalities=modalities, cameras=cameras, method=method, k1=k1, k2=k2,
                            k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
                            self_in_k1=self_in_k1, knn=knn, device=device, features=X)
    max_distance = _check_output(max_distance, dense)
    if dense:
        from .._memory import check_fits

        check_fits(4.0 * n * n, f"a dense {n:,} x {n:,} float32 Jaccard matrix",
                   "pass dense=False (a sparse matrix of the stored pairs)")
    n_threads = check_n_jobs(n_jobs)
    executor = _executor(executor, device, n_threads)
    t0 = time.perf_counter()
    with numba_threads(n_threads), progress_bar(total=len(STAGES), desc=f"jaccard[{request.method}]",
                                                show=progress) as bar:
        timer = StageTimer(bar)
        plan = build_plan(X, request)
        timer(STAGES[0])
        j_ptr, j_idx, j_val = run_stages(X, plan, executor, max_distance=max_distance, on_stage=timer)
    logger.info("jaccard_distance(method=%r, n=%d, executor=%s): %.2fs, %d stored pairs (%s)", request.method, n,
                executor.name, time.perf_counter() - t0, len(j_val), timer.report())
    return to_output(j_ptr, j_idx, j_val, n, dense=dense)


def _check_output(max_distance, dense):
    """The checked ``max_distance`` (None or a float >= 0); ``dense`` must be a bool."""
    if max_distance is not None:
        max_distance = check_real(max_distance, "max_distance", low=0.0)
    if not isinstance(dense, (bool, np.bool_)):
        raise InputError(f"dense must be True or False; got {plain(dense)}.")
    return max_distance


def _executor(executor, device: str, n_threads: int) -> Executor:
    """The executor of ``executor=`` (None, a name or an instance) on ``device``."""
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        executor = "array" if device == "cuda" else "numba"
    executor = check_option(executor, "executor", EXECUTORS)
    if executor == "numba":
        return NumbaExecutor(n_threads)
    from .kernels_xp import ArrayModuleExecutor

    return ArrayModuleExecutor(array_module(device))


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
    args.update(kwargs)
    device = resolve_device(args["device"])
    X = check_features_on(features, device)
    request = check_request(X.shape[0], device=device, **{k: args[k] for k in (
        "modalities", "cameras", "method", "k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter", "self_in_k1",
        "knn")})
    _check_output(args["max_distance"], args["dense"])
    check_n_jobs(args["n_jobs"])
    check_plan(X.shape[0], request, combined=combined)
