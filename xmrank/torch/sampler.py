"""The pseudo-identity batch sampler of the published code: groups of ``num_instances`` images per pseudo-identity."""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_int

__all__ = ["PseudoIdentitySampler"]


def _int_array(values, name: str) -> np.ndarray:
    """``values`` as a 1-D int64 array, or raise InputError naming ``name``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of integers; got {arr.ndim} dimensions.")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise InputError(f"{name} must hold integers; got an array of dtype {arr.dtype}.")
    return arr.astype(np.int64)


class PseudoIdentitySampler:
    """Batches of pseudo-identities for a DataLoader's ``batch_sampler``.

    Works as the published code's ``RandomMultipleGallerySampler``: each
    pass visits the pseudo-identities in a random order and cuts them into
    batches of ``batch_size // num_instances`` identities (the identities
    left over at the end of a pass are dropped, so no identity appears twice
    in a batch); a new pass starts when one is used up. For each identity
    the batch holds one group of ``num_instances`` rows:

    1. an anchor, drawn uniformly from the identity's rows;
    2. ``num_instances - 1`` rows of the identity taken by the anchor's
       camera's complement: the rows from **other cameras** than the
       anchor's when there are any, else the identity's other rows (the
       anchor excluded). They are drawn without replacement when the pool
       holds at least ``num_instances`` rows, with replacement otherwise
       (the published threshold). A one-row identity repeats its anchor.

    Without ``cams`` there is no camera constraint: step 2 draws from the
    identity's other rows. Rows labelled -1 (noise) are never drawn.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Pseudo label of each dataset row; -1 = left out.
    cams : array-like of int, shape (n,), optional
        Camera of each row.
    batch_size : int
        Images per batch; ``batch_size // num_instances`` identities each
        (the remainder of the division is not used). When there are fewer
        identities, every batch holds all of them.
    num_instances : int, default=16
    iterations : int
        Batches yielded per iteration over the sampler (its length).
    seed : int or numpy Generator, default=None
        Source of every draw.

    Yields
    ------
    list of int
        Row indices of one batch, group after group.
    """

    def __init__(self, labels, cams=None, *, batch_size: int, num_instances: int = 16, iterations: int, seed=None):
        labels = _int_array(labels, "labels")
        self.num_instances = check_int(num_instances, "num_instances", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=self.num_instances)
        self.iterations = check_int(iterations, "iterations", minimum=1)
        if cams is not None:
            cams = _int_array(cams, "cams")
            if cams.shape != labels.shape:
                raise InputError(f"cams must have one entry per label ({labels.size}); got {cams.size}.")
        rows = np.flatnonzero(labels >= 0)
        if rows.size == 0:
            raise InputError("labels hold no cluster (every row is -1); nothing to sample.")
        order = rows[np.argsort(labels[rows], kind="stable")]
        self.clusters, starts = np.unique(labels[order], return_index=True)
        self.members = np.split(order, starts[1:])
        self.member_cams = None if cams is None else [cams[m] for m in self.members]
        self.per_batch = min(batch_size // self.num_instances, len(self.clusters))
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.iterations

    def _group(self, c: int) -> list:
        """Anchor plus ``num_instances - 1`` rows of cluster ``c``."""
        rng = self.rng
        members = self.members[c]
        a = int(rng.integers(members.size))
        pool = None
        if self.member_cams is not None:
            cams = self.member_cams[c]
            pool = members[cams != cams[a]]
        if pool is None or pool.size == 0:
            pool = np.delete(members, a)
        k = self.num_instances - 1
        if pool.size == 0:
            rest = np.full(k, members[a])
        else:
            rest = rng.choice(pool, k, replace=pool.size < self.num_instances)
        return [int(members[a])] + rest.tolist()

    def __iter__(self):
        done = 0
        while True:
            order = self.rng.permutation(len(self.clusters))
            for start in range(0, len(order) - self.per_batch + 1, self.per_batch):
                batch = []
                for c in order[start:start + self.per_batch]:
                    batch.extend(self._group(int(c)))
                yield batch
                done += 1
                if done == self.iterations:
                    return
