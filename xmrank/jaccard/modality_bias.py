"""How strongly the features' plain neighbour lists keep to their own modality: the measurement behind ``method="auto"``.

The modality-aware rules (``"modality"``, ``"modality-camera"``) pay off when
a row's nearest neighbours are almost all of its own modality, the bias the
modality-aware Jaccard distance corrects. Where the modalities are already
mixed (features aligned into one space, say by CCA), forcing ``k1 // M``
neighbours from each modality only replaces good same-modality neighbours
with worse cross-modal ones. The measurement: the share of cross-modal rows in
plain kNN lists (each row itself left out), divided by the share expected if
neighbours were drawn without regard to modality (the other modalities' share
of the other rows). A ratio near 1 means no bias; near 0, lists that never
leave their modality.

This module measures; the callers (:func:`xmrank.jaccard_distance`,
:func:`xmrank.rerank`, :func:`xmrank.cluster`) decide with
:func:`choose_method` and report the returned dict.
"""

from __future__ import annotations

import logging

import numpy as np

from .._validation import check_int, check_real
from ..knn import knn_search

__all__ = ["modality_bias", "modality_bias_from_lists", "choose_method", "resolve_auto_method", "rows_all_equal",
           "BIAS_THRESHOLD", "BIAS_K", "BIAS_SAMPLE", "MIN_ROWS_PER_MODALITY"]

logger = logging.getLogger(__name__)

#: ``method="auto"`` picks a modality-aware rule when the cross-modal share of
#: plain kNN lists is below this fraction of the share expected without bias.
BIAS_THRESHOLD = 0.5
#: Length of the plain lists measured (each row itself left out).
BIAS_K = 20
#: Rows measured at most (a seeded sample beyond it): the share is a mean, a
#: sample of 2,000 rows pins it to about +-0.01.
BIAS_SAMPLE = 2000


def modality_bias_from_lists(indices: np.ndarray, codes: np.ndarray, rows: np.ndarray | None = None,
                             *, threshold: float = BIAS_THRESHOLD) -> dict:
    """The modality bias of given neighbour lists.

    Parameters
    ----------
    indices : ndarray of int, shape (n_measured, k)
        Plain neighbour lists (indices into ``codes``), nearest first; the
        row itself and negative entries (missing neighbours) are ignored.
    codes : ndarray of int, shape (N,)
        Modality code (0..M-1) of every row.
    rows : ndarray of int, shape (n_measured,), default=None
        The row each list belongs to; ``None`` for ``0..n_measured-1``.
    threshold : float, default=BIAS_THRESHOLD
        See :func:`choose_method`.

    Returns
    -------
    bias : dict
        ``cross_modal_share`` (mean over the measured rows of the share of
        their neighbours in another modality), ``uniform_share`` (the same
        share expected without bias), ``ratio`` (their quotient; 1.0 where
        only one modality exists), ``biased`` (``ratio < threshold``),
        ``threshold``, ``k`` and ``rows_measured``.
    """
    indices = np.asarray(indices)
    codes = np.asarray(codes)
    threshold = check_real(threshold, "threshold", low=0.0)
    n = codes.shape[0]
    rows = np.arange(indices.shape[0]) if rows is None else np.asarray(rows)
    valid = (indices >= 0) & (indices != rows[:, None])
    safe = np.where(valid, indices, 0)
    cross = (codes[safe] != codes[rows][:, None]) & valid
    n_valid = valid.sum(axis=1)
    measured = n_valid > 0
    share = float(np.mean(cross.sum(axis=1)[measured] / n_valid[measured])) if measured.any() else 0.0
    sizes = np.bincount(codes, minlength=int(codes.max()) + 1 if n else 1)
    uniform = float(np.mean((n - sizes[codes[rows]]) / max(n - 1, 1))) if rows.size else 0.0
    ratio = share / uniform if uniform > 0 else 1.0
    return {
        "cross_modal_share": share,
        "uniform_share": uniform,
        "ratio": float(ratio),
        "biased": bool(ratio < threshold),
        "threshold": float(threshold),
        "k": int(n_valid.max()) if n_valid.size else 0,
        "rows_measured": int(measured.sum()),
    }


def modality_bias(X: np.ndarray | None, codes: np.ndarray, *, k: int = BIAS_K, sample: int = BIAS_SAMPLE,
                  seed: int = 0, threshold: float = BIAS_THRESHOLD, knn: str = "auto", device: str = "cpu",
                  search=None) -> dict:
    """Measure the modality bias of features: plain kNN lists of a sample of rows against all rows.

    Parameters
    ----------
    X : ndarray of float32, shape (N, d), or None
        Validated features (L2-normalised rows; inner product ranks them);
        None with ``search``.
    codes : ndarray of int, shape (N,)
        Modality code (0..M-1) per row.
    k : int, default=BIAS_K
        Neighbours per measured row (capped at ``N - 1``).
    sample : int, default=BIAS_SAMPLE
        Rows measured at most; beyond it a seeded random sample.
    seed : int, default=0
        Seed of the sample (the measurement is deterministic).
    threshold : float, default=BIAS_THRESHOLD
        See :func:`choose_method`.
    knn, device : str
        Exact kNN engine and device, as in :func:`xmrank.knn.knn_search`.
    search : callable, default=None
        ``search(rows, k) -> indices (len(rows), k)``: the plain lists of
        ``rows`` another way (precomputed distances, :func:`xmrank.rerank`);
        None searches ``X``.

    Returns
    -------
    bias : dict
        As :func:`modality_bias_from_lists`.
    """
    n = codes.shape[0]
    k = min(check_int(k, "k", minimum=1), n - 1)
    sample = check_int(sample, "sample", minimum=1)
    if k < 1:
        return modality_bias_from_lists(np.zeros((0, 0), dtype=np.int64), codes, np.zeros(0, dtype=np.int64),
                                        threshold=threshold)
    if n > sample:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    else:
        rows = np.arange(n)
    if search is None:
        engine = knn if knn in ("auto", "faiss", "numpy", "bf16") else "auto"
        _, idx = knn_search(X[rows], X, k + 1, knn=engine, device=device)
    else:
        idx = search(rows, k + 1)
    return modality_bias_from_lists(idx, codes, rows, threshold=threshold)


def choose_method(bias: dict, *, cameras: bool = False) -> tuple[str, str]:
    """The rule ``method="auto"`` picks from a measured bias, and why.

    Parameters
    ----------
    bias : dict
        From :func:`modality_bias` (or ``None`` where no modalities are given).
    cameras : bool, default=False
        Whether camera labels are given.

    Returns
    -------
    method : str
        ``"modality"`` when the lists are biased, else ``"vanilla"``. Without
        a measurement (no modalities given) ``"camera"`` when cameras are
        given, else ``"vanilla"``, as before the measurement existed. Camera
        labels beside unbiased modalities do not select the camera-aware rule:
        what is measured is the modality bias, and the user's ``k1``/``k2``
        (which the camera rule does not read) then apply; ``method="camera"``
        asks for that rule by name.
    reason : str
        One sentence with the measurement.
    """
    if bias is None:
        method = "camera" if cameras else "vanilla"
        return method, "no modalities given"
    share, uniform, ratio = bias["cross_modal_share"], bias["uniform_share"], bias["ratio"]
    if bias["biased"]:
        method = "modality"
        verdict = "below"
    else:
        method = "vanilla"
        verdict = "not below"
    reason = (f"cross-modal share of plain {bias['k']}-NN lists {share:.3f} against {uniform:.3f} without bias "
              f"(ratio {ratio:.2f}, {verdict} the threshold {bias['threshold']:.2f})")
    if cameras and method == "vanilla":
        reason += "; camera bias is not measured: method='camera' asks for the camera-aware rule"
    return method, reason


def rows_all_equal(X) -> bool:
    """Whether every row of ``X`` (numpy or cupy, finite) is the same: nothing to measure.

    Column maxima against column minima: O(d) extra memory, where comparing
    every row with the first would hold an ``n x d`` mask.
    """
    return bool((X.max(axis=0) == X.min(axis=0)).all())


#: Fewest rows of the smallest modality on which ``method="auto"`` measures a bias (below it: the
#: documented default ``"modality"``, with a warning). The list-length estimate's floor
#: (:data:`xmrank.jaccard.list_lengths.MIN_ROWS`) is the same number.
MIN_ROWS_PER_MODALITY = 6


def resolve_auto_method(X, codes, *, classes=None, cameras: bool = False, threshold: float = BIAS_THRESHOLD,
                        knn: str = "auto", device: str = "cpu", search=None, constant: bool | None = None,
                        fallback=None) -> tuple[str, dict | None]:
    """What ``method="auto"`` stands for, and the measurement behind it: the one resolver.

    :func:`xmrank.jaccard_distance`, :func:`xmrank.cluster` (through
    :func:`xmrank.jaccard.plan.resolve_method`) and :func:`xmrank.rerank`
    (with its own ``threshold`` and, for precomputed distances, ``search``)
    all resolve ``"auto"`` here.

    Parameters
    ----------
    X : array of shape (n, d) or None
        Checked features (host or device); None with ``search`` given.
    codes : ndarray of int or None
        Modality codes ``0..M-1``; None: no modalities given.
    classes : sequence, default=None
        The modality labels, for messages.
    cameras : bool, default=False
        Whether camera labels are given.
    threshold : float, default=BIAS_THRESHOLD
        The bias ratio below which the modality-aware rule is chosen
        (re-ranking uses a higher one, see
        :data:`xmrank.retrieval._auto.RERANK_BIAS_THRESHOLD`).
    knn, device : str
        Where the measurement's search runs.
    search : callable, default=None
        ``search(rows, k) -> indices`` in place of a kNN search over ``X``.
    constant : bool, default=None
        Whether every row is the same; None: read from ``X``.
    fallback : callable, default=None
        Called with the sentence of a fallback (no measurement possible);
        default: :func:`xmrank._validation.warn_user`.

    Returns
    -------
    method : str
    chosen : dict or None
        ``{"value", "reason", "measurement"}`` (the measurement: the dict of
        :func:`modality_bias`, None where nothing could be measured); None
        when no modalities are given.

    Notes
    -----
    Where nothing can be measured the documented defaults apply, each with
    one warning: one modality only: ``"camera"`` with cameras, else
    ``"vanilla"``; all rows equal, or fewer than
    :data:`MIN_ROWS_PER_MODALITY` rows in a modality: ``"modality"``.
    """
    from .._validation import plain, warn_user

    warn = warn_user if fallback is None else fallback
    if codes is None:
        method, _ = choose_method(None, cameras=cameras)
        return method, None
    sizes = np.bincount(np.asarray(codes))
    if sizes.size < 2 or int((sizes > 0).sum()) < 2:
        method, _ = choose_method(None, cameras=cameras)
        label = f" ({plain(classes[0])})" if classes is not None and len(classes) else ""
        warn(f"method='auto': modalities holds a single modality{label}, so there is no modality bias to measure; "
             f"using method={method!r}.")
        return method, {"value": method, "reason": "one modality only: nothing to measure", "measurement": None}
    if constant is None and X is not None:
        constant = rows_all_equal(X)
    if constant:
        warn("method='auto': all rows are equal, so no modality bias can be measured; using the documented "
             "default 'modality' (modalities are given).")
        return "modality", {"value": "modality", "reason": "all rows equal: nothing to measure", "measurement": None}
    if int(sizes.min()) < MIN_ROWS_PER_MODALITY:
        warn(f"method='auto': {int(sizes.min())} row(s) in the smallest modality are too few to measure a modality "
             f"bias (at least {MIN_ROWS_PER_MODALITY}); using the documented default 'modality' (modalities are "
             "given).")
        return "modality", {"value": "modality", "reason": "too few rows to measure a bias", "measurement": None}
    bias = modality_bias(X, codes, threshold=threshold, knn=knn, device=device, search=search)
    method, reason = choose_method(bias, cameras=cameras)
    logger.info("method='auto' chose %r: %s", method, reason)
    return method, {"value": method, "reason": reason, "measurement": bias}
