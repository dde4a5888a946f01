"""Summaries of a clustering: counts, noise, modality mixing, sizes and each cluster's members."""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_cluster_labels, check_labels

__all__ = ["cluster_summary", "cluster_sizes", "cluster_contents"]


def cluster_sizes(labels) -> dict:
    """The distribution of cluster sizes (noise excluded).

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Cluster labels, -1 for noise.

    Returns
    -------
    sizes : dict
        ``min``, ``median``, ``mean``, ``max`` (None without clusters),
        ``largest_share`` (rows of the largest cluster over all rows),
        ``singletons`` (clusters of one row) and ``histogram``: the number
        of clusters of each size, as ``{"size": count}`` in increasing size.
    """
    labels = check_cluster_labels(labels, "labels")
    ok = labels >= 0
    counts = np.bincount(labels[ok]) if ok.any() else np.zeros(0, dtype=np.int64)
    counts = counts[counts > 0]
    if counts.size == 0:
        return {"min": None, "median": None, "mean": None, "max": None, "largest_share": 0.0, "singletons": 0,
                "histogram": {}}
    values, freq = np.unique(counts, return_counts=True)
    return {
        "min": int(counts.min()),
        "median": float(np.median(counts)),
        "mean": float(counts.mean()),
        "max": int(counts.max()),
        "largest_share": float(counts.max() / labels.size),
        "singletons": int((counts == 1).sum()),
        "histogram": {str(int(v)): int(f) for v, f in zip(values, freq)},
    }


def cluster_summary(labels, modalities=None) -> dict:
    """Count clusters and noise, the share of clusters that mix modalities, and the cluster sizes.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Cluster labels, -1 for noise.
    modalities : array-like, shape (n,), default=None
        Modality label of each row (integers or strings, no missing values).

    Returns
    -------
    summary : dict
        ``n_samples``, ``n_clusters``, ``n_noise``, ``noise_share``,
        ``sizes`` (see :func:`cluster_sizes`) and, with modalities,
        ``mixed_share`` (clusters holding more than one modality, over all
        clusters) and ``n_mixed``.
    """
    labels = check_cluster_labels(labels, "labels")
    n = labels.shape[0]
    clustered = labels >= 0
    ids = np.unique(labels[clustered])
    out = {
        "n_samples": int(n),
        "n_clusters": int(ids.size),
        "n_noise": int((~clustered).sum()),
        "noise_share": float((~clustered).mean()) if n else 0.0,
    }
    if modalities is not None:
        mod_codes, _ = check_labels(modalities, n, "modalities")
        pairs = np.unique(np.stack([labels[clustered], mod_codes.reshape(-1)[clustered]]), axis=1)
        per_cluster = np.unique(pairs[0], return_counts=True)[1] if pairs.size else np.zeros(0)
        n_mixed = int((per_cluster > 1).sum())
        out["n_mixed"] = n_mixed
        out["mixed_share"] = n_mixed / ids.size if ids.size else 0.0
    out["sizes"] = cluster_sizes(labels)
    return out


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def cluster_contents(labels, modalities=None, names=None, *, include_noise: bool = False) -> list:
    """Each cluster's members, size and modality make-up.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Cluster labels, -1 for noise.
    modalities : array-like, shape (n,), default=None
        Modality label of each row.
    names : array-like of str, shape (n,), default=None
        A name per row (an image path, a file name), listed with its row.
    include_noise : bool, default=False
        Also list the noise rows, as a last entry with ``cluster`` -1.

    Returns
    -------
    clusters : list of dict, largest cluster first (ties by cluster label)
        ``cluster`` (its label), ``size``, ``modalities`` (``{modality:
        rows}``, with modalities) and ``members``: a list of ``{"row": i}``
        dicts (row index into the input), with ``"modality"`` and ``"name"``
        when given.
    """
    labels = check_cluster_labels(labels, "labels")
    n = labels.shape[0]
    mods = None
    if modalities is not None:
        codes, classes = check_labels(modalities, n, "modalities")
        mods = [_plain(c) for c in classes[codes]]
    if names is not None:
        names = np.asarray(names)
        if names.ndim != 1 or names.shape[0] != n:
            raise InputError(f"names must hold one name per row ({n}); got shape {names.shape}.")
        names = [str(_plain(x)) for x in names]
    ids, sizes = np.unique(labels, return_counts=True)
    keep = ids >= 0
    order = np.lexsort((ids[keep], -sizes[keep]))
    chosen = list(ids[keep][order])
    if include_noise and (labels < 0).any():
        chosen.append(-1)
    rows_of = _rows_by_label(labels)
    out = []
    for c in chosen:
        rows = rows_of[int(c)]
        entry = {"cluster": int(c), "size": int(len(rows))}
        if mods is not None:
            makeup = {}
            for r in rows:
                makeup[mods[r]] = makeup.get(mods[r], 0) + 1
            entry["modalities"] = {str(k): v for k, v in sorted(makeup.items(), key=lambda kv: str(kv[0]))}
        members = []
        for r in rows:
            m = {"row": int(r)}
            if mods is not None:
                m["modality"] = mods[r]
            if names is not None:
                m["name"] = names[r]
            members.append(m)
        entry["members"] = members
        out.append(entry)
    return out


def _rows_by_label(labels):
    """``{label: sorted row indices}`` for every label, in one sort."""
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    ends = np.r_[starts[1:], order.size]
    return {int(v): order[s:e] for v, s, e in zip(values, starts, ends)}
