"""Cluster-level and instance-level matching of per-modality clusterings (the association baselines).

The competitors of the modality-aware Jaccard cluster each modality alone and
then join the clusters across modalities:

- ``"hungarian"`` (PGM, PCLHD): one-to-one assignment maximising the cosine
  similarity of cluster prototypes (scipy's ``linear_sum_assignment``); the
  clusters of the side with more clusters that get no partner stay
  modality-specific.
- ``"ot"`` (RPNR-style): entropic optimal transport between the clusters
  (masses = cluster sizes, cost = 1 - prototype cosine); each cluster is
  joined to the cluster that receives most of its mass, if that is at least
  ``min_share`` of it. Many-to-one joins are allowed, so an over-clustered
  modality's fragments of one identity can all join one cluster.
- ``"ot-instance"`` (OTLA-style): every clustered row of the other
  modalities is sent by OT to the anchor modality's prototypes (rows
  uniform, prototypes weighted by cluster size) and takes the label of the
  prototype that receives most of its mass, if at least ``min_share``; the
  rest keep their own modality-specific cluster.

Prototypes are the L2-normalised sums of a cluster's rows. Both solvers are
unmoved by a constant added to every similarity of one cluster (or row):
Hungarian because every assignment contains each row once, Sinkhorn because
its plan absorbs per-row and per-column constants. ``min_similarity``, a
plain cosine threshold, does not have that property: across a modality gap
every cross-modal cosine is low, so it is off by default.

With more than two modalities each one is matched to the ``anchor``
modality (default: the first in sorted label order).
"""

from __future__ import annotations

import numpy as np

from .._params import ASSOCIATIONS as _ASSOCIATIONS
from .._validation import check_option, check_real, plain
from ._labels import UnionFind, check_inputs, cluster_table, dense, find_modality, unit_rows
from .sinkhorn import sinkhorn

__all__ = ["ASSOCIATIONS", "match_clusters"]

#: Matching methods of :func:`match_clusters` (declared in :mod:`xmrank._params`).
ASSOCIATIONS = _ASSOCIATIONS


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


def match_clusters(features, labels, modalities, *, method: str = "hungarian", anchor=None, min_similarity=None,
                   min_share: float = 0.5, reg: float = 0.1, return_info: bool = False):
    """Join per-modality clusters across modalities; unified labels in the form of :func:`xmrank.cluster`.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    labels : array-like of int, shape (n_samples,)
        Per-modality clusters (-1 = noise), e.g. from
        :func:`xmrank.cluster_per_modality`; no cluster may hold two modalities.
    modalities : array-like of shape (n_samples,)
        At least two modalities.
    method : {"hungarian", "ot", "ot-instance"}, default="hungarian"
        See the module notes.
    anchor : modality label, default=None
        The modality the others are matched to; None is the first in
        sorted label order.
    min_similarity : float in [-1, 1], default=None
        Refuse a join whose prototype (``ot-instance``: row-to-prototype)
        cosine is below this; None accepts every join the solver makes.
    min_share : float in [0, 1], default=0.5
        ``ot`` and ``ot-instance``: smallest share of a cluster's (row's)
        transported mass that must go to the partner.
    reg : float, default=0.1
        Sinkhorn's entropic regularisation, relative to the spread of the
        costs (:func:`~xmrank.association.sinkhorn` with ``relative=True``).
    return_info : bool, default=False
        Also return what was matched.

    Returns
    -------
    labels : ndarray of int64, shape (n_samples,)
        0..K-1 in order of first appearance, -1 for noise (noise stays noise).
    info : dict
        Only with ``return_info``: ``method``, ``anchor``, ``n_matches`` and
        ``matches`` (cluster-level: anchor cluster, other cluster, its
        modality, cosine, share of the mass (None for Hungarian), in the input's labels) or, for
        ``ot-instance``, ``n_assigned_rows`` of ``n_candidate_rows``.
    """
    X, lab, codes, classes = check_inputs(features, labels, modalities)
    method = check_option(method, "method", ASSOCIATIONS)
    a = find_modality(classes, anchor)
    if min_similarity is not None:
        min_similarity = check_real(min_similarity, "min_similarity", low=-1.0, high=1.0)
    min_share = check_real(min_share, "min_share", low=0.0, high=1.0)
    reg = check_real(reg, "reg", low=0.0, low_open=True)

    ids, inverse, mod, sizes, protos = cluster_table(X, lab, codes)
    keep = lab >= 0
    index = np.full(lab.shape[0], -1, dtype=np.int64)  # row -> cluster index (into ids)
    index[keep] = inverse.reshape(-1)
    uf = UnionFind(ids.size)
    A = np.flatnonzero(mod == a)
    info = {"method": method, "anchor": _py(classes[a]), "matches": [], "n_assigned_rows": 0, "n_candidate_rows": 0}
    for g in range(classes.size):
        B = np.flatnonzero(mod == g)
        if g == a or A.size == 0 or B.size == 0:
            continue
        if method == "ot-instance":
            rows = np.flatnonzero(keep & (codes == g))
            S = unit_rows(X[rows]) @ protos[A].T
            plan = sinkhorn(1.0 - S, None, sizes[A], reg=reg)
            j = np.argmax(plan, axis=1)
            r = np.arange(rows.size)
            ok = plan[r, j] * rows.size >= min_share
            if min_similarity is not None:
                ok &= S[r, j] >= min_similarity
            index[rows[ok]] = A[j[ok]]
            info["n_assigned_rows"] += int(ok.sum())
            info["n_candidate_rows"] += int(rows.size)
            continue
        S = protos[A] @ protos[B].T
        if method == "hungarian":
            from scipy.optimize import linear_sum_assignment

            r, c = linear_sum_assignment(S, maximize=True)
            edges = {(int(i), int(j)): None for i, j in zip(r, c)}
        else:
            plan = sinkhorn(1.0 - S, sizes[A], sizes[B], reg=reg)
            edges = {}
            rows_best = np.argmax(plan, axis=1)
            share = plan[np.arange(A.size), rows_best] / plan.sum(axis=1)
            for i, (j, s) in enumerate(zip(rows_best, share)):
                if s >= min_share:
                    edges[(i, int(j))] = float(s)
            cols_best = np.argmax(plan, axis=0)
            share = plan[cols_best, np.arange(B.size)] / plan.sum(axis=0)
            for j, (i, s) in enumerate(zip(cols_best, share)):
                if s >= min_share:
                    edges[(int(i), j)] = max(edges.get((int(i), j), 0.0), float(s))
        for (i, j), s in sorted(edges.items()):
            if min_similarity is not None and S[i, j] < min_similarity:
                continue
            uf.union(A[i], B[j])
            info["matches"].append({"anchor_cluster": int(ids[A[i]]), "cluster": int(ids[B[j]]),
                                    "modality": _py(classes[g]), "similarity": float(S[i, j]), "share": s})
    roots = uf.roots()
    out = np.where(index >= 0, roots[np.maximum(index, 0)], -1)
    out = dense(out)
    if not return_info:
        return out
    info["n_matches"] = len(info["matches"])
    if method != "ot-instance":
        del info["n_assigned_rows"], info["n_candidate_rows"]
    else:
        del info["matches"]
    return out, info


def describe(info) -> str:
    """One line on what :func:`match_clusters` joined (for logs and the CLI)."""
    if "n_assigned_rows" in info:
        return (f"{info['method']}: {info['n_assigned_rows']} of {info['n_candidate_rows']} rows assigned to "
                f"anchor {plain(info['anchor'])} clusters")
    return f"{info['method']}: {info['n_matches']} cross-modal cluster matches"
