"""Local query expansion as a sparse averaging matrix ``Q``: ``V' = Q V``.

Each method's expansion rule is one function that returns ``Q`` (N x N,
row-stochastic, a few entries per row); the product is done by scipy.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["mean_of_lists", "balanced_over_lists", "balanced_by_label"]


def _matrix(n, rows, cols, weights):
    q = sp.csr_matrix((weights.astype(np.float32), (rows, cols)), shape=(n, n))
    q.sum_duplicates()
    return q


def mean_of_lists(n: int, lists) -> sp.csr_matrix:
    """``V'[i] = mean(V[concat(lists)[i]])``: one plain mean over the concatenated columns.

    ``lists`` is a sequence of (N, k_t) index arrays (vanilla: one list;
    CA-Jaccard's CLQE: the intra list then the inter list).
    """
    cols = np.concatenate(lists, axis=1)
    k = cols.shape[1]
    rows = np.repeat(np.arange(n), k)
    return _matrix(n, rows, cols.ravel(), np.full(n * k, 1.0 / k))


def balanced_over_lists(n: int, lists) -> sp.csr_matrix:
    """``V'[i] = mean_g mean(V[lists[g][i]])``: each list's mean weighted equally.

    The modality-aware expansion: ``lists[g]`` holds each row's first k2
    neighbours of modality ``g``.
    """
    m = len(lists)
    rows, cols, w = [], [], []
    for idx in lists:
        k = idx.shape[1]
        rows.append(np.repeat(np.arange(n), k))
        cols.append(idx.ravel())
        w.append(np.full(n * k, 1.0 / (m * k)))
    return _matrix(n, np.concatenate(rows), np.concatenate(cols), np.concatenate(w))


def balanced_by_label(n: int, idx: np.ndarray, codes: np.ndarray) -> sp.csr_matrix:
    """Average the per-label means over ``idx[i]`` (the "prior" QE-only variant).

    For each row the columns ``idx[i]`` are grouped by ``codes``; each group
    present gets weight ``1/(groups present)``, spread evenly over its members.
    """
    k = idx.shape[1]
    lab = codes[idx]  # (N, k)
    # members of the same label in the row
    same = (lab[:, :, None] == lab[:, None, :]).sum(axis=2)  # (N, k)
    n_present = _count_distinct(lab)
    w = 1.0 / (same * n_present[:, None])
    rows = np.repeat(np.arange(n), k)
    return _matrix(n, rows, idx.ravel(), w.ravel())


def _count_distinct(lab: np.ndarray) -> np.ndarray:
    s = np.sort(lab, axis=1)
    return 1 + (np.diff(s, axis=1) != 0).sum(axis=1)
