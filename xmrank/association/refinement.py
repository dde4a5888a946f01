"""Pseudo-label refinement by independence and compactness (SpCL, as OpenUnReID ships it).

A clustering at radius ``eps`` is compared with the same clustering at a
tighter (``eps - gap``) and a looser (``eps + gap``) radius. For row ``i``
with cluster ``C(i)``, tight cluster ``T(i)`` and loose cluster ``L(i)``
(noise rows are clusters of one):

- compactness(i) = |C(i) & T(i)| / |C(i) | T(i)|: does the cluster stay
  together when the radius shrinks;
- independence(i) = |C(i) & L(i)| / |C(i) | L(i)|: does it stay apart from
  the others when the radius grows.

A cluster's score is the best of its rows'. SpCL's rule, the default here:
drop the clusters whose independence is below the 90th-percentile threshold
SpCL computes over the clusters of more than one row (about the least
independent tenth), and in every cluster keep only the rows whose
compactness equals the cluster's best (the densest core). Dropped rows
become noise (-1), which the trainers leave out of the losses. Clusters of
one row are left as they are, as SpCL does.
"""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_cluster_labels, check_real
from ._labels import dense

__all__ = ["refine_labels"]


def _singletons(labels):
    """Labels with every noise row a cluster of its own (codes beyond the clusters)."""
    out = labels.copy()
    noise = out < 0
    out[noise] = out.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return out


def _sizes(*codes):
    """For each row, the number of rows sharing all of its codes."""
    key = np.stack(codes, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)]


def _iou(c, other):
    inter = _sizes(c, other)
    return inter / (_sizes(c) + _sizes(other) - inter)


def refine_labels(labels, tight, loose, *, min_independence=None, min_compactness=None, return_scores: bool = False):
    """Keep the reliable part of a clustering, given it at a tighter and a looser radius.

    Parameters
    ----------
    labels, tight, loose : array-like of int, shape (n_samples,)
        The clustering to refine and the same clustering made with a
        smaller and a larger eps (-1 = noise), e.g. from
        :func:`xmrank.association.cluster_refined`.
    min_independence : float in [0, 1], default=None
        Keep a cluster only if its independence is at least this; None is
        SpCL's threshold (see the module notes).
    min_compactness : float in [0, 1], default=None
        Keep a row only if its compactness is at least this; None is SpCL's
        rule: only rows as compact as their cluster's most compact row.
    return_scores : bool, default=False

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        Refined labels, 0..K-1 in order of first appearance, -1 for noise.
    scores : dict
        Only with ``return_scores``: per row ``independence`` and
        ``compactness``; the ``min_independence`` applied; ``n_dropped_clusters``
        and ``n_dropped_rows`` (rows that were clustered and are now noise).
    """
    lab = check_cluster_labels(labels, "labels")
    n = lab.shape[0]
    tight = check_cluster_labels(tight, "tight", n, what="row of labels")
    loose = check_cluster_labels(loose, "loose", n, what="row of labels")
    if min_independence is not None:
        min_independence = check_real(min_independence, "min_independence", low=0.0, high=1.0)
    if min_compactness is not None:
        min_compactness = check_real(min_compactness, "min_compactness", low=0.0, high=1.0)
    if n == 0:
        raise InputError("labels is empty: expected at least one row.")
    c = _singletons(lab)
    comp = _iou(c, _singletons(tight))
    indep = _iou(c, _singletons(loose))

    clustered = lab >= 0
    ids, inverse = np.unique(lab[clustered], return_inverse=True)
    inverse = inverse.reshape(-1)
    k = ids.size
    best_comp = np.zeros(k)
    best_indep = np.zeros(k)
    np.maximum.at(best_comp, inverse, comp[clustered])
    np.maximum.at(best_indep, inverse, indep[clustered])
    size = np.bincount(inverse, minlength=k)
    multi = size > 1
    if min_independence is None:
        if multi.any():
            # SpCL: sort R = 1 - independence ascending, threshold at index min(m - 1, round(0.9 m))
            r = np.sort(1.0 - best_indep[multi])
            threshold = 1.0 - float(r[min(r.size - 1, int(np.round(r.size * 0.9)))])
        else:
            threshold = 0.0
    else:
        threshold = min_independence
    keep_cluster = (best_indep >= threshold - 1e-12) | ~multi
    row_comp = comp[clustered]
    if min_compactness is None:
        keep_row = row_comp >= best_comp[inverse] - 1e-12
    else:
        keep_row = row_comp >= min_compactness
    keep_row = (keep_row & keep_cluster[inverse]) | ~multi[inverse]
    out = lab.copy()
    rows = np.flatnonzero(clustered)
    out[rows[~keep_row]] = -1
    out = dense(out)
    if not return_scores:
        return out
    return out, {
        "independence": indep,
        "compactness": comp,
        "min_independence": float(threshold),
        "n_dropped_clusters": int((~keep_cluster).sum()),
        "n_dropped_rows": int((~keep_row).sum()),
    }
