"""Shared pieces of the association modules: input checks, prototypes, union-find, relabelling."""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_cluster_labels, check_features, check_labels, plain


def check_inputs(features, labels, modalities):
    """``(X, labels, modality codes, modality classes)``, or an InputError naming the argument."""
    X = check_features(features)
    n = X.shape[0]
    lab = check_cluster_labels(labels, "labels", n, what="row of features")
    if modalities is None:
        raise InputError("modalities is required: one modality label per row.")
    codes, classes = check_labels(modalities, n, "modalities")
    if classes.size < 2:
        raise InputError(f"modalities must hold at least two modalities to associate; got only {plain(classes[0])}.")
    return X, lab, codes, classes


def find_modality(classes, value, name="anchor"):
    """Index of ``value`` among the sorted modality labels ``classes``; None gives 0 (the first)."""
    if value is None:
        return 0
    if isinstance(value, np.generic):
        value = value.item()
    if np.ndim(value) == 0 and not isinstance(value, (dict, set, list, tuple)):
        for g, c in enumerate(classes.tolist()):
            same_kind = type(c) is type(value) or (
                isinstance(c, int) and isinstance(value, (int, float)) and not isinstance(value, bool))
            if same_kind and c == value:
                return g
    listed = ", ".join(plain(c) for c in classes.tolist())
    raise InputError(f"{name}={plain(value)} is not among the modalities ({listed}).")


def cluster_table(X, lab, codes):
    """Clusters of a per-modality clustering: ids, modality code, size and unit prototype of each.

    A cluster holding rows of two modalities is an InputError: matching needs one clustering per modality.
    """
    keep = lab >= 0
    ids, inverse = np.unique(lab[keep], return_inverse=True)
    k = ids.size
    mod = np.full(k, -1, dtype=np.int64)
    pair = np.unique(np.stack([inverse, codes[keep]]), axis=1) if k else np.zeros((2, 0), dtype=np.int64)
    per = np.bincount(pair[0], minlength=k)
    if (per > 1).any():
        bad = ids[int(np.argmax(per > 1))]
        raise InputError(
            f"labels must be per-modality clusters; cluster {plain(bad)} holds rows of more than one modality "
            "(use xmrank.cluster_per_modality)."
        )
    mod[pair[0]] = pair[1]
    sizes = np.bincount(inverse, minlength=k).astype(np.float64)
    protos = np.zeros((k, X.shape[1]), dtype=np.float64)
    np.add.at(protos, inverse, X[keep].astype(np.float64))
    norms = np.linalg.norm(protos, axis=1, keepdims=True)
    protos = np.divide(protos, norms, out=np.zeros_like(protos), where=norms > 0)
    return ids, inverse, mod, sizes, protos


def unit_rows(X):
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


class UnionFind:
    def __init__(self, n):
        self.parent = np.arange(n)

    def find(self, i):
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i, j):
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def roots(self):
        return np.array([self.find(i) for i in range(self.parent.size)], dtype=np.int64)


def dense(labels):
    """Labels renumbered 0..K-1 in order of first appearance; -1 stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape[0], -1, dtype=np.int64)
    keep = labels >= 0
    if keep.any():
        uniq, first, inverse = np.unique(labels[keep], return_index=True, return_inverse=True)
        order = np.empty(uniq.size, dtype=np.int64)
        order[np.argsort(first, kind="stable")] = np.arange(uniq.size)
        out[keep] = order[inverse.reshape(-1)]
    return out
