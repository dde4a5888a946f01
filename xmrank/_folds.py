"""Cross-validation over identities: the folds that :func:`xmrank.select_rerank` and :func:`xmrank.select_clustering` share.

Identities (not rows) are shuffled with a seed and dealt into ``n_splits``
folds, so that every row of one identity lands in the same fold and no
identity is both selected on and scored.
"""

from __future__ import annotations

import numpy as np

__all__ = ["identity_folds"]


def identity_folds(id_codes: np.ndarray, n_ids: int, n_splits: int, seed) -> np.ndarray:
    """The fold (``0 .. n_splits - 1``) of every row.

    Parameters
    ----------
    id_codes : ndarray of int, shape (n_rows,)
        Identity code ``0 .. n_ids - 1`` of each row.
    n_ids : int
        Number of identities.
    n_splits : int
        Number of folds (at most ``n_ids``; checked by the caller).
    seed : int or numpy Generator seed
        Seed of the shuffle of the identities.

    Returns
    -------
    fold : ndarray of int64, shape (n_rows,)
    """
    order = np.random.default_rng(seed).permutation(n_ids)
    fold_of = np.empty(n_ids, dtype=np.int64)
    fold_of[order] = np.arange(n_ids) % n_splits
    return fold_of[np.asarray(id_codes)]
