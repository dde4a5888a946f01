"""The ``"auto"`` choices of :func:`xmrank.rerank`: the neighbour rule and the list lengths, with the measurements behind them.

Everything here reads the data through a *source* (``rerank``'s ``_Source``:
features or precomputed distance blocks) and returns plain dicts; the caller
reports them (``rerank(..., return_chosen=True)``, :func:`xmrank.retrieval.auto_k`,
the command line's ``--json``).

**Method.** ``method="auto"`` measures the modality bias of plain kNN lists
(:func:`xmrank.jaccard.modality_bias.modality_bias`) and takes the
modality-aware rule where the cross-modal share is below
:data:`RERANK_BIAS_THRESHOLD` times the unbiased share.

**List lengths.** :func:`xmrank.jaccard.list_lengths.choose_lengths`, the
estimator ``jaccard_distance(k1="auto")`` uses too. Three outcomes, each named
in the returned ``k_reason``:

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

from .._validation import InputError, check_labels, warn_user
from .._validation import is_auto as _is_auto
from ..jaccard.list_lengths import (DEFAULT_K1, DEFAULT_K2, PAIRING_Z, choose_lengths,
                                    group_size, pairing)
from ..jaccard import modality_bias as _bias

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
        search = None if source.blocks is None else _block_search(source.blocks)
        chosen["method"], record = _bias.resolve_auto_method(
            source.X if source.blocks is None else None, codes, classes=classes, cameras=cams is not None,
            threshold=RERANK_BIAS_THRESHOLD, search=search, constant=constant,
            fallback=fallback)
        if record is None:
            chosen["method_reason"] = "no modalities given"
        else:
            chosen["method_reason"], chosen["bias"] = record["reason"], record["measurement"]
        logger.info("rerank: method='auto' -> %r (%s)", chosen["method"], chosen["method_reason"])
    resolved = chosen["method"]
    if not (_is_auto(k1) or _is_auto(k2)):
        return chosen
    if resolved in ("modality", "modality-qe", "modality-camera") and codes is None:
        raise InputError(f"method={resolved!r} needs modalities: query_modalities and gallery_modalities.")
    cam_codes = check_labels(cams, n, "cameras")[0] if resolved == "modality-camera" and cams is not None else None
    lengths = choose_lengths(source, n, codes, classes, resolved, k1, k2,
                             self_in_k1=self_in_k1, cam_codes=cam_codes, fallback=fallback)
    chosen.update(lengths)
    logger.info("rerank: k1=%r -> %s, k2=%r -> %s (%s)", k1, chosen["k1"], k2, chosen["k2"], chosen["k_reason"])
    return chosen


def _block_search(blocks):
    """``search(rows, k) -> indices``: the plain lists of precomputed distance blocks, for the bias measurement."""
    from ._distances import select

    return lambda rows, k: select(blocks, k, rows=rows)[1]
