"""The ``"auto"`` choices of :func:`xmrank.rerank`: the neighbour rule and the list lengths, with the measurements behind them.

Everything here reads the data through a *source* (``rerank``'s ``_Source``:
features or precomputed distance blocks) and returns plain dicts; the caller
reports them (``rerank(..., return_chosen=True)``, :func:`xmrank.retrieval.auto_k`,
the command line's ``--json``).

**Method.** ``method="auto"`` measures the modality bias of plain kNN lists
(:func:`xmrank.jaccard.modality_bias.modality_bias`) and takes the
modality-aware rule where the cross-modal share is below
:data:`RERANK_BIAS_THRESHOLD` times the unbiased share.

**List lengths.** Three outcomes, each named in the returned ``k_reason``:

1. *Pairs*: the data are one item per identity and modality, shown by a
   one-sided two-proportion z-test (:func:`pairing`): rows are more often
   mutual nearest neighbours of their nearest row of another modality than of
   their nearest row of their own modality. One neighbour per modality and no
   expansion, which leaves the ranking as it is.
2. *Groups*: the reciprocity of within-modality lists shows identities of
   ``m >= 2`` items per modality (:func:`group_size`): ``max(10, 2m + 2)``
   neighbours per modality, ``k2 = max(6, m + 1)``.
3. *Otherwise* (the usual case for loose identities: neither test is
   conclusive): Zhong et al.'s published ``k1 = 20, k2 = 6``.
"""

from __future__ import annotations

import logging
import math
from numbers import Integral

import numpy as np

from .._validation import InputError, check_labels, plain, warn_user
from ..jaccard.modality_bias import BIAS_K, BIAS_SAMPLE, choose_method, modality_bias, modality_bias_from_lists

logger = logging.getLogger(__name__)

__all__ = ["RERANK_BIAS_THRESHOLD", "PAIRING_Z", "DEFAULT_K1", "DEFAULT_K2", "choose", "group_size", "pairing"]

#: ``method="auto"`` re-ranks modality-aware below this bias ratio (cross-modal share of plain 20-NN lists over
#: the share expected without bias). Higher than the clustering threshold
#: (:data:`xmrank.jaccard.modality_bias.BIAS_THRESHOLD`) on purpose: in cross-modal retrieval every relevant
#: gallery item is of another modality than the query, so the modality-aware rule, which puts ``k1 // M``
#: rows of each modality in every list, never removes a relevant item from it. On the real two-view
#: protocols of ``benchmarks/bench_real.py`` (CCA-aligned, ratios 0.28-0.95) the modality-aware rule at
#: the published 20/6 matched or beat the vanilla one on every set but one direction, up to ratio 0.95;
#: only lists already near balance (ratio >= 0.9, where the two rules draw nearly the same rows) keep
#: the vanilla rule, with room for the sampling error of the measurement (about +-0.03) on unbiased data.
RERANK_BIAS_THRESHOLD = 0.9

#: One-sided z of the pairing test (:func:`pairing`) that calls the data one item per identity and modality:
#: about a 2 % false-positive rate where the two mutual-neighbour shares are equal.
PAIRING_Z = 2.0

#: Zhong et al.'s published re-ranking lengths: the choice where the data show no group size.
DEFAULT_K1, DEFAULT_K2 = 20, 6

#: Rows of a modality below which no group size is estimated (reciprocity over fewer than 4 ranks).
MIN_ROWS = 6

#: Rows per modality measured by the pairing test at most (a seeded sample beyond it).
PAIRING_SAMPLE = BIAS_SAMPLE


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == "auto"


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _modality_codes(mods, n):
    """(codes, classes) of the modalities, or (None, None)."""
    if mods is None:
        return None, None
    return check_labels(mods, n, "modalities")


def choose(source, mods, cams, method, k1, k2, self_in_k1) -> dict:
    """Resolve ``method``, ``k1`` and ``k2`` (each maybe ``"auto"``) for :func:`xmrank.rerank`.

    Returns
    -------
    chosen : dict
        ``method``, ``k1``, ``k2`` (as used); ``requested`` (as given);
        ``method_reason`` and ``bias`` (the modality-bias measurement, or
        None); ``k_reason``, ``group_size`` and ``per_modality`` (the
        reciprocity estimates), ``pairing`` (the pairing test, or None);
        ``fallbacks``: the sentences of the warnings issued where a
        measurement was impossible.
    """
    for value, name in ((k1, "k1"), (k2, "k2")):
        if isinstance(value, str) and not _is_auto(value):
            raise InputError(f"{name} must be an integer; got {value!r} (or 'auto', to choose it from the data).")
    n = source.nq + source.ng
    codes, classes = _modality_codes(mods, n)
    n_mod = 0 if classes is None else len(classes)
    chosen = {"method": method, "k1": k1, "k2": k2, "requested": {"method": method, "k1": k1, "k2": k2},
              "method_reason": "given", "bias": None, "k_reason": "given", "group_size": None,
              "per_modality": None, "pairing": None, "fallbacks": []}
    measuring = method == "auto" or _is_auto(k1) or _is_auto(k2)
    constant = measuring and source.constant()

    def fallback(sentence):
        chosen["fallbacks"].append(sentence)
        warn_user(sentence)
        logger.warning(sentence)

    if method == "auto":
        if codes is None:
            chosen["method"], chosen["method_reason"] = choose_method(None, cameras=cams is not None)
        elif n_mod < 2:
            chosen["method"] = "camera" if cams is not None else "vanilla"
            chosen["method_reason"] = "one modality only"
            fallback(f"method='auto': the modalities hold one modality only ({plain(classes[0])}), so no modality "
                     f"bias can be measured; using {chosen['method']!r}.")
        elif constant:
            chosen["method"] = "modality"
            chosen["method_reason"] = "all rows equal"
            fallback("method='auto': all rows are equal, so no modality bias can be measured; using the "
                     "documented default 'modality' (modalities are given).")
        elif np.bincount(codes).min() < MIN_ROWS:
            chosen["method"] = "modality"
            chosen["method_reason"] = "too few rows to measure a bias"
            fallback(f"method='auto': {int(np.bincount(codes).min())} row(s) in the smallest modality are too few to "
                     f"measure a modality bias (at least {MIN_ROWS}); using the documented default 'modality' "
                     "(modalities are given).")
        else:
            bias = _bias(source, codes)
            chosen["bias"] = bias
            chosen["method"], chosen["method_reason"] = choose_method(bias, cameras=cams is not None)
        logger.info("rerank: method='auto' -> %r (%s)", chosen["method"], chosen["method_reason"])
    resolved = chosen["method"]
    if not (_is_auto(k1) or _is_auto(k2)):
        return chosen
    if resolved == "camera":
        chosen["k1"] = DEFAULT_K1 if _is_auto(k1) else k1
        chosen["k2"] = DEFAULT_K2 if _is_auto(k2) else k2
        chosen["k_reason"] = ("method 'camera' reads k1_intra, k1_inter, k2_intra and k2_inter, not k1 and k2: "
                              "'auto' keeps the documented defaults")
        logger.info("rerank: k1/k2 'auto' with the camera rule: %s", chosen["k_reason"])
        return chosen
    modality_rule = resolved in ("modality", "modality-qe", "modality-camera")
    if modality_rule:
        if codes is None:
            raise InputError(f"method={resolved!r} needs modalities: query_modalities and gallery_modalities.")
        groups = [np.flatnonzero(codes == g) for g in range(n_mod)]
        names = [plain(c) for c in classes]
    else:
        groups, names = [np.arange(n)], ["0"] if codes is None or n_mod != 1 else [plain(classes[0])]
    n_groups = len(groups)
    smallest = min(rows.size for rows in groups)
    cap = smallest if n_groups > 1 else n - 1
    default_per = max(1, DEFAULT_K1 // n_groups)
    if constant:
        per, chosen_k2 = default_per, DEFAULT_K2
        chosen["k_reason"] = "all rows equal: the published defaults"
        fallback("k1/k2='auto': all rows are equal, so no group size can be estimated; using the published "
                 f"defaults k1={DEFAULT_K1}, k2={DEFAULT_K2} (as the rows allow).")
    elif smallest < MIN_ROWS:
        per, chosen_k2 = default_per, DEFAULT_K2
        chosen["k_reason"] = f"too few rows ({smallest}) to estimate a group size: the published defaults"
        fallback(f"k1/k2='auto': {smallest} row(s) in the smallest modality are too few to estimate a group size "
                 f"(at least {MIN_ROWS}); using the published defaults k1={DEFAULT_K1}, k2={DEFAULT_K2} (as the rows "
                 "allow).")
    else:
        sizes = {name: group_size(source, rows) for name, rows in zip(names, groups)}
        m = min(sizes.values())
        chosen["group_size"], chosen["per_modality"] = int(m), sizes
        pair = pairing(source, codes) if codes is not None and n_mod >= 2 else None
        chosen["pairing"] = pair
        if pair is not None and pair["paired"]:
            per, chosen_k2 = 1, 1
            chosen["k_reason"] = (f"one item per identity and modality (pairing test z = {pair['z']:.1f} >= "
                                  f"{pair['threshold']:.1f}): one neighbour per modality, no expansion, which leaves "
                                  "the ranking as it is")
        elif m >= 2:
            per, chosen_k2 = max(default_per, 2 * m + 2), max(DEFAULT_K2, m + 1)
            chosen["k_reason"] = (f"identities of about {m} items per modality (reciprocity of within-modality "
                                  f"lists): max({default_per}, 2m + 2) neighbours per modality, k2 = max(6, m + 1)")
        else:
            per, chosen_k2 = default_per, DEFAULT_K2
            why = "no pairing test (one modality)" if pair is None else f"pairing test z = {pair['z']:.1f}"
            chosen["k_reason"] = (f"no group size shown (reciprocity: {m}; {why}): the published defaults "
                                  f"k1={DEFAULT_K1}, k2={DEFAULT_K2}")
    if resolved == "modality-camera" and cams is not None:
        cam_codes, _ = check_labels(cams, n, "cameras")
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
    chosen["k1"], chosen["k2"] = chosen_k1, max(1, chosen_k2) if _is_auto(k2) else chosen_k2
    logger.info("rerank: k1=%r -> %s, k2=%r -> %s (%s)", k1, chosen["k1"], k2, chosen["k2"], chosen["k_reason"])
    return chosen


def _bias(source, codes) -> dict:
    """The modality bias (:func:`modality_bias`) of the source's plain lists, at the re-ranking threshold."""
    if source.blocks is None:
        return modality_bias(source.X, codes, threshold=RERANK_BIAS_THRESHOLD)
    from ._distances import select

    n = source.blocks.n
    k = min(BIAS_K, n - 1)
    if k < 1:
        return modality_bias_from_lists(np.zeros((0, 0), dtype=np.int64), codes, np.zeros(0, dtype=np.int64),
                                        threshold=RERANK_BIAS_THRESHOLD)
    rows = np.arange(n)
    if n > BIAS_SAMPLE:  # the rows modality_bias samples
        rows = np.sort(np.random.default_rng(0).choice(n, size=BIAS_SAMPLE, replace=False))
    _, idx = select(source.blocks, k + 1, rows=rows)
    return modality_bias_from_lists(idx, codes, rows, threshold=RERANK_BIAS_THRESHOLD)


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
