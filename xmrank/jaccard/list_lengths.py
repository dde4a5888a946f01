"""Label-free list lengths ``k1``, ``k2`` from the rows' own neighbour lists: the one estimator behind
``rerank(k1="auto")`` and ``jaccard_distance(k1="auto")``.

Everything here reads the rows through a *source*: an object with
``nearest(rows, cols, k)`` (the ``k`` nearest of ``cols`` to each of
``rows``: distance-like values, smaller closer, and local indices into
``cols``), ``within(rows, k)`` (``nearest(rows, rows, k)[1]``) and
``constant()``. :class:`FeatureSource` is that object over a feature matrix;
:func:`xmrank.rerank` has one over query/gallery features or precomputed
distance blocks.

Three outcomes (:func:`choose_lengths`), each named in the returned
``k_reason``:

1. *Pairs*: the data are one item per identity and modality, shown by a
   one-sided two-proportion z-test (:func:`pairing`): rows are more often
   mutual nearest neighbours of their nearest row of another modality than of
   their nearest row of their own modality. One neighbour per modality and no
   expansion, which leaves a re-ranked ranking as it is.
2. *Groups*: the reciprocity of within-modality lists shows identities of
   ``m >= 2`` items per modality (:func:`group_size`): ``max(10, 2m + 2)``
   neighbours per modality, ``k2 = max(6, m + 1)``.
3. *Otherwise* (the usual case for loose identities: neither test is
   conclusive): Zhong et al.'s published ``k1 = 20, k2 = 6``.

These are retrieval lengths (Zhong et al.'s re-ranking defaults and what the
estimates add to them). :func:`xmrank.cluster` chooses its ``k1`` differently,
by clustering at each of a few candidates (:mod:`xmrank.clustering.auto`),
which needs the clustering layer above this one.
"""

from __future__ import annotations

import logging
import math
from numbers import Integral

import numpy as np

from .._params import DEFAULTS as _D
from .._validation import plain
from .._validation import is_auto as _is_auto
from ..knn import knn_search
from .modality_bias import BIAS_SAMPLE, MIN_ROWS_PER_MODALITY, rows_all_equal

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_K1", "DEFAULT_K2", "MIN_ROWS", "PAIRING_Z", "PAIRING_SAMPLE", "FeatureSource", "choose_lengths",
           "group_size", "pairing"]

#: One-sided z of the pairing test (:func:`pairing`) that calls the data one item per identity and modality:
#: about a 2 % false-positive rate where the two mutual-neighbour shares are equal.
PAIRING_Z = 2.0

#: Zhong et al.'s published re-ranking lengths (:data:`xmrank._params.PARAMS` ``rerank_k1``, ``rerank_k2``):
#: the choice where the data show no group size.
DEFAULT_K1, DEFAULT_K2 = _D["rerank_k1"], _D["rerank_k2"]

#: Rows of a modality below which no group size is estimated (reciprocity over fewer than 4 ranks).
MIN_ROWS = MIN_ROWS_PER_MODALITY

#: Rows per modality measured by the pairing test at most (a seeded sample beyond it).
PAIRING_SAMPLE = BIAS_SAMPLE


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


class FeatureSource:
    """The neighbour lookups of this module over the rows of a host feature matrix (inner-product search).

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Checked features (float32, on the host).
    """

    def __init__(self, X):
        self.X = np.ascontiguousarray(X)

    def constant(self) -> bool:
        """Whether every row is the same: nothing to measure."""
        return rows_all_equal(self.X)

    def nearest(self, rows, cols, k):
        """The ``k`` nearest of ``cols`` to each of ``rows``: (minus the inner product, local indices)."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        sims, idx = knn_search(np.ascontiguousarray(self.X[rows]), np.ascontiguousarray(self.X[cols]), k)
        return -sims, idx

    def within(self, rows, k):
        """The ``k`` nearest rows of ``rows`` to each row of ``rows`` (local indices, nearest first)."""
        return self.nearest(rows, rows, k)[1]


def choose_lengths(source, n: int, codes, classes, resolved: str, k1, k2, *, self_in_k1: bool = True, cam_codes=None,
                   fallback=None) -> dict:
    """``k1`` and ``k2`` (either maybe ``"auto"``) for the resolved ``method``, with the measurements behind them.

    Parameters
    ----------
    source : object or None
        The rows (see the module's text); None: nothing is measured and the
        published lengths are used, capped to what the rows allow (for
        argument checks that compute nothing).
    n : int
        Rows.
    codes : ndarray of int or None
        Modality codes ``0..M-1`` of the rows.
    classes : ndarray or None
        The modality labels as given (for messages).
    resolved : str
        The Jaccard method (never ``"auto"``).
    k1, k2 : int or "auto"
    self_in_k1 : bool, default=True
        The vanilla lists' convention (see :func:`xmrank.jaccard_distance`).
    cam_codes : ndarray of int or None
        Camera codes, for ``"modality-camera"`` (at least one neighbour per
        camera of a modality).
    fallback : callable or None
        ``fallback(sentence)`` where a measurement is impossible (the caller
        warns); None: logged only.

    Returns
    -------
    chosen : dict
        ``k1``, ``k2`` (as to be used), ``k_reason``, ``group_size`` and
        ``per_modality`` (the reciprocity estimates, or None), ``pairing``
        (the pairing test, or None).
    """
    if fallback is None:
        fallback = logger.warning
    out = {"k1": k1, "k2": k2, "k_reason": "given", "group_size": None, "per_modality": None, "pairing": None}
    if not (_is_auto(k1) or _is_auto(k2)):
        return out
    if resolved == "camera":
        out["k1"] = DEFAULT_K1 if _is_auto(k1) else k1
        out["k2"] = DEFAULT_K2 if _is_auto(k2) else k2
        out["k_reason"] = ("method 'camera' reads k1_intra, k1_inter, k2_intra and k2_inter, not k1 and k2: "
                           "'auto' keeps the documented defaults")
        return out
    n_mod = 0 if classes is None else len(classes)
    if resolved in ("modality", "modality-qe", "modality-camera"):
        groups = [np.flatnonzero(codes == g) for g in range(n_mod)]
        names = [plain(c) for c in classes]
    else:
        groups, names = [np.arange(n)], ["0"] if codes is None or n_mod != 1 else [plain(classes[0])]
    n_groups = len(groups)
    smallest = min(rows.size for rows in groups)
    cap = smallest if n_groups > 1 else n - 1
    default_per = max(1, DEFAULT_K1 // n_groups)
    if source is None:
        per, chosen_k2 = default_per, DEFAULT_K2
        out["k_reason"] = "not measured (argument checks only): the published defaults"
    elif source.constant():
        per, chosen_k2 = default_per, DEFAULT_K2
        out["k_reason"] = "all rows equal: the published defaults"
        fallback("k1/k2='auto': all rows are equal, so no group size can be estimated; using the published "
                 f"defaults k1={DEFAULT_K1}, k2={DEFAULT_K2} (as the rows allow).")
    elif smallest < MIN_ROWS:
        per, chosen_k2 = default_per, DEFAULT_K2
        out["k_reason"] = f"too few rows ({smallest}) to estimate a group size: the published defaults"
        fallback(f"k1/k2='auto': {smallest} row(s) in the smallest modality are too few to estimate a group size "
                 f"(at least {MIN_ROWS}); using the published defaults k1={DEFAULT_K1}, k2={DEFAULT_K2} (as the rows "
                 "allow).")
    else:
        sizes = {name: group_size(source, rows) for name, rows in zip(names, groups)}
        m = min(sizes.values())
        out["group_size"], out["per_modality"] = int(m), sizes
        pair = pairing(source, codes) if codes is not None and n_mod >= 2 else None
        out["pairing"] = pair
        if pair is not None and pair["paired"]:
            per, chosen_k2 = 1, 1
            out["k_reason"] = (f"one item per identity and modality (pairing test z = {pair['z']:.1f} >= "
                               f"{pair['threshold']:.1f}): one neighbour per modality, no expansion, which leaves "
                               "the ranking as it is")
        elif m >= 2:
            per, chosen_k2 = max(default_per, 2 * m + 2), max(DEFAULT_K2, m + 1)
            out["k_reason"] = (f"identities of about {m} items per modality (reciprocity of within-modality "
                               f"lists): max({default_per}, 2m + 2) neighbours per modality, k2 = max(6, m + 1)")
        else:
            per, chosen_k2 = default_per, DEFAULT_K2
            why = "no pairing test (one modality)" if pair is None else f"pairing test z = {pair['z']:.1f}"
            out["k_reason"] = (f"no group size shown (reciprocity: {m}; {why}): the published defaults "
                               f"k1={DEFAULT_K1}, k2={DEFAULT_K2}")
    if resolved == "modality-camera" and cam_codes is not None:
        per = max(per, max(np.unique(cam_codes[rows]).size for rows in groups))
    per = max(1, min(per, cap))
    if not _is_auto(k2):
        chosen_k2 = k2
        if _is_int(k2) and _is_auto(k1):
            per = max(per, min(int(k2), cap))
    chosen_k2 = min(chosen_k2, per) if _is_auto(k2) else chosen_k2
    chosen_k1 = k1 if not _is_auto(k1) else n_groups * per if n_groups > 1 else per
    if _is_auto(k2) and _is_int(k1):
        chosen_k2 = max(1, min(chosen_k2, int(k1) // n_groups if n_groups > 1 else int(k1)))
    if resolved == "vanilla" and not self_in_k1 and _is_auto(k1):
        chosen_k1 = max(1, min(chosen_k1, n - 2))
    out["k1"], out["k2"] = chosen_k1, max(1, chosen_k2) if _is_auto(k2) else chosen_k2
    return out


def group_size(source, rows) -> int:
    """Estimated items per identity among ``rows`` (one modality), from the reciprocity of their neighbour lists.

    Within the rows, take every row's ``K`` nearest rows (``K = min(50,
    size - 2)``) and, for each rank ``j``, the share ``f(j)`` of rows that
    are among the first ``j`` neighbours of their ``j``-th neighbour. Items of
    one identity are each other's neighbours, so ``f`` stays high for the
    first ``m - 1`` ranks and falls to its background level (the median of
    ``f`` over the second half of the ranks) after them; ``m`` is one plus
    the number of leading ranks at least 0.1 above it. Loose identities read
    small (1 when no rank stands out): a lower bound, never a proof of one
    item per identity (that is :func:`pairing`'s job).
    """
    size = rows.size
    K = min(50, size - 2)
    if K < 4:
        return 1
    nb_rank = source.within(rows, K + 1)  # (size, K + 1) local indices, nearest first
    local = np.arange(size)
    # drop each row itself (first occurrence), else the last column
    is_self = nb_rank == local[:, None]
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), K)
    keep = np.ones_like(nb_rank, dtype=bool)
    keep[local, drop] = False
    nb_rank = nb_rank[keep].reshape(size, K)
    f = np.empty(K)
    for j in range(1, K + 1):
        y = nb_rank[:, j - 1]
        f[j - 1] = np.mean(np.any(nb_rank[y, :j] == local[:, None], axis=1))
    background = float(np.median(f[K // 2:]))
    above = f >= background + 0.1
    lead = K if above.all() else int(np.argmin(above))
    return 1 + lead


def pairing(source, codes, *, z_threshold: float = PAIRING_Z, sample: int = PAIRING_SAMPLE, seed: int = 0) -> dict:
    """The pairing test: is each item's counterpart of another modality closer, mutually, than any item of its own?

    With one item per identity and modality (image/caption pairs), a row's
    nearest row of another modality is often its own counterpart, which has
    the row as its nearest row of that modality in turn; its nearest row of
    its own modality is another identity, rarely mutual. With ``m >= 2``
    items per identity it is the other way round (same-identity rows share a
    modality, and no modality gap separates them). The test compares the two
    mutual-nearest-neighbour shares over every measured row with a one-sided
    two-proportion z-test.

    Returns
    -------
    pairing : dict
        ``cross_mutual`` and ``within_mutual`` (the two shares), ``z``,
        ``threshold`` (``z_threshold``), ``paired`` (``z >= threshold``) and
        ``rows_measured``.
    """
    rng = np.random.default_rng(seed)
    n_mod = int(codes.max()) + 1
    members = [np.flatnonzero(codes == g) for g in range(n_mod)]
    cross_hits = within_hits = measured = 0
    for g, rows in enumerate(members):
        if rows.size < 2:
            continue
        sample_rows = rows if rows.size <= sample else np.sort(rng.choice(rows, size=sample, replace=False))
        # nearest row of another modality: over each other modality, then the closest of those
        best_d = np.full(sample_rows.size, np.inf)
        best_y = np.zeros(sample_rows.size, dtype=np.int64)
        for h, other in enumerate(members):
            if h == g or other.size == 0:
                continue
            d, loc = source.nearest(sample_rows, other, 1)
            closer = d[:, 0] < best_d
            best_d[closer], best_y[closer] = d[closer, 0], other[loc[closer, 0]]
        # ... and that row's nearest row of this modality
        back = rows[source.nearest(best_y, rows, 1)[1][:, 0]]
        cross_hits += int(np.sum(back == sample_rows))
        # nearest other row of this modality, and its nearest other row
        y = _nearest_other(source, sample_rows, rows)
        yy = _nearest_other(source, y, rows)
        within_hits += int(np.sum(yy == sample_rows))
        measured += sample_rows.size
    if measured == 0:
        return {"cross_mutual": 0.0, "within_mutual": 0.0, "z": 0.0, "threshold": float(z_threshold),
                "paired": False, "rows_measured": 0}
    pc, pw = cross_hits / measured, within_hits / measured
    pooled = (cross_hits + within_hits) / (2 * measured)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / measured)
    z = (pc - pw) / se
    return {"cross_mutual": float(pc), "within_mutual": float(pw), "z": float(z), "threshold": float(z_threshold),
            "paired": bool(z >= z_threshold), "rows_measured": int(measured)}


def _nearest_other(source, query_rows, rows):
    """For each of ``query_rows`` (a subset of ``rows``), its nearest row of ``rows`` other than itself."""
    _, loc = source.nearest(query_rows, rows, 2)
    first, second = rows[loc[:, 0]], rows[loc[:, 1]]
    return np.where(first == query_rows, second, first)
