"""The pseudo-identity batch sampler: ``num_instances`` images of each of ``batch_size // num_instances`` clusters."""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_int

__all__ = ["PseudoIdentitySampler"]


class PseudoIdentitySampler:
    """Batches of pseudo-identities for a DataLoader's ``batch_sampler``.

    Clusters are visited in a random order, ``batch_size // num_instances``
    per batch, reshuffled when all have been visited; from each, ``num_instances``
    members are drawn (without replacement when the cluster is large enough,
    with replacement otherwise). Rows labelled -1 (noise) are never drawn.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Pseudo label of each dataset row; -1 = left out.
    batch_size : int
        Images per batch; a multiple of ``num_instances`` is expected (the
        remainder is dropped).
    num_instances : int, default=16
    iterations : int
        Batches per pass (the length of the sampler).
    seed : int or numpy Generator, default=None

    Yields
    ------
    list of int
        Row indices of one batch.
    """

    def __init__(self, labels, *, batch_size: int, num_instances: int = 16, iterations: int, seed=None):
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.num_instances = check_int(num_instances, "num_instances", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=self.num_instances)
        self.iterations = check_int(iterations, "iterations", minimum=1)
        rows = np.flatnonzero(labels >= 0)
        if rows.size == 0:
            raise InputError("labels hold no cluster (every row is -1); nothing to sample.")
        order = rows[np.argsort(labels[rows], kind="stable")]
        self.clusters, starts = np.unique(labels[order], return_index=True)
        self.members = np.split(order, starts[1:])
        self.per_batch = min(batch_size // self.num_instances, len(self.clusters))
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.iterations

    def __iter__(self):
        queue = np.zeros(0, dtype=np.int64)
        for _ in range(self.iterations):
            if queue.size < self.per_batch:
                queue = np.concatenate([queue, self.rng.permutation(len(self.clusters))])
            chosen, queue = queue[: self.per_batch], queue[self.per_batch:]
            batch = []
            for c in chosen:
                members = self.members[c]
                replace = members.size < self.num_instances
                batch.extend(self.rng.choice(members, self.num_instances, replace=replace).tolist())
            yield batch
