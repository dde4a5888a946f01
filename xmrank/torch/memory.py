"""Prototype memories: the hybrid (mean + hard) cluster memory and the split-and-contrast memory.

Both hold two rows per prototype, a *mean* row and a *hard* row, initialised
to the L2-normalised mean feature of the prototype's members and updated
after every step with momentum ``m`` (0.1 in the recipe)::

    mean_row <- normalise(m * mean_row + (1 - m) * mean of the batch's members)
    hard_row <- normalise(m * hard_row + (1 - m) * the batch member least similar to mean_row)

- :class:`HybridMemory`: one prototype per cluster (the intra-modality memory).
- :class:`SplitContrastMemory`: one prototype per (global cluster, modality
  present in it), so a cluster holding both modalities has two; each image's
  positives are all prototypes of its cluster (BMIL's split-and-contrast).

The losses on these memories are in :mod:`xmrank.torch.losses`.
"""

from __future__ import annotations

import numpy as np

from .._validation import InputError, check_real
from ._require import torch

nn = torch.nn
F = torch.nn.functional

__all__ = ["HybridMemory", "SplitContrastMemory", "cluster_means"]


def cluster_means(features, labels, n_clusters: int):
    """L2-normalised mean of ``features`` rows per label ``0..n_clusters-1`` (a torch tensor)."""
    features = torch.as_tensor(features, dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=features.device)
    sums = torch.zeros(n_clusters, features.shape[1], device=features.device).index_add_(0, labels, features)
    return F.normalize(sums, dim=1)


@torch.no_grad()
def _momentum_update(mean, hard, features, rows, momentum: float):
    """Vectorised update of ``mean``/``hard`` rows ``rows`` (one per feature) in place."""
    features = features.detach().to(mean.dtype)
    uniq, inv = torch.unique(rows, return_inverse=True)
    counts = torch.bincount(inv, minlength=len(uniq)).to(features.dtype).unsqueeze(1)
    batch_mean = torch.zeros(len(uniq), features.shape[1], device=features.device, dtype=features.dtype)
    batch_mean.index_add_(0, inv, features)
    batch_mean /= counts
    # the hardest member: least similar to the prototype's (pre-update) mean row
    sims = (features * mean[rows]).sum(1)
    lowest = torch.full((len(uniq),), float("inf"), device=features.device, dtype=sims.dtype)
    lowest = lowest.scatter_reduce(0, inv, sims, reduce="amin")
    position = torch.arange(len(rows), device=features.device)
    candidate = torch.where(sims == lowest[inv], position, torch.full_like(position, len(rows)))
    first = torch.full((len(uniq),), len(rows), device=features.device, dtype=position.dtype)
    first = first.scatter_reduce(0, inv, candidate, reduce="amin")
    mean[uniq] = F.normalize(momentum * mean[uniq] + (1 - momentum) * batch_mean, dim=1)
    hard[uniq] = F.normalize(momentum * hard[uniq] + (1 - momentum) * features[first], dim=1)


class HybridMemory(nn.Module):
    """Mean and hard rows for each of ``C`` clusters (the intra-modality memory).

    Parameters
    ----------
    centroids : tensor or array of shape (C, D)
        Initial prototypes (normalised here), e.g. from :func:`cluster_means`.
    momentum : float, default=0.1
        Weight of the old row in the update.

    Attributes
    ----------
    mean, hard : tensor of shape (C, D)
        Buffers (they move with ``.to(device)`` and are saved in ``state_dict``).
    """

    def __init__(self, centroids, *, momentum: float = 0.1):
        super().__init__()
        centroids = F.normalize(torch.as_tensor(centroids, dtype=torch.float32), dim=1)
        if centroids.ndim != 2 or centroids.shape[0] < 1:
            raise InputError(f"centroids must be a (n_clusters, dim) array with n_clusters >= 1; got shape {tuple(centroids.shape)}.")
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0)
        self.register_buffer("mean", centroids.clone())
        self.register_buffer("hard", centroids.clone())

    @property
    def n_clusters(self) -> int:
        return self.mean.shape[0]

    def similarities(self, features):
        """``(features @ hard.T, features @ mean.T)``: cosine similarities to both row sets."""
        return features @ self.hard.t(), features @ self.mean.t()

    def update(self, features, targets):
        """Momentum update with a batch's features and cluster indices ``targets``."""
        _momentum_update(self.mean, self.hard, features, targets.to(self.mean.device), self.momentum)


class SplitContrastMemory(nn.Module):
    """Per-modality prototypes of global clusters, mean and hard rows (``2 P`` rows in all).

    Parameters
    ----------
    features : tensor or array of shape (n, D)
        Features of the clustered rows (noise rows left out).
    clusters : array-like of int, shape (n,)
        Global cluster of each row, ``0..C-1``.
    modalities : array-like of int, shape (n,)
        Modality code of each row (0 or 1).
    momentum : float, default=0.1
    split : bool, default=True
        One prototype per modality present in a cluster (split-and-contrast).
        False keeps one prototype per cluster whatever its modalities (the
        ablation without split-and-contrast: a plain cluster memory).

    Attributes
    ----------
    proto_cluster, proto_modality : tensor of shape (P,)
        Cluster and modality of each prototype (sorted by cluster, then modality).
    table : tensor of shape (C, n_modalities)
        Prototype index of each (cluster, modality), -1 where the modality is absent.
    mean, hard : tensor of shape (P, D)
    """

    def __init__(self, features, clusters, modalities, *, momentum: float = 0.1, split: bool = True):
        super().__init__()
        features = torch.as_tensor(features, dtype=torch.float32)
        clusters = np.asarray(clusters, dtype=np.int64).reshape(-1)
        modalities = np.asarray(modalities, dtype=np.int64).reshape(-1)
        self.split = bool(split)
        if not self.split:
            modalities = np.zeros_like(modalities)
        if not (len(clusters) == len(modalities) == features.shape[0]):
            raise InputError("features, clusters and modalities must have the same number of rows.")
        if len(clusters) == 0 or clusters.min() < 0:
            raise InputError("clusters must be non-negative cluster indices (leave noise rows out).")
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0)
        n_mod = int(modalities.max()) + 1
        n_clusters = int(clusters.max()) + 1
        key = clusters * n_mod + modalities
        keys, proto_of_row = np.unique(key, return_inverse=True)
        table = np.full(n_clusters * n_mod, -1, dtype=np.int64)
        table[keys] = np.arange(len(keys))
        self.register_buffer("table", torch.as_tensor(table.reshape(n_clusters, n_mod)))
        self.register_buffer("proto_cluster", torch.as_tensor(keys // n_mod))
        self.register_buffer("proto_modality", torch.as_tensor(keys % n_mod))
        protos = cluster_means(features, proto_of_row, len(keys))
        self.register_buffer("mean", protos.clone())
        self.register_buffer("hard", protos.clone())

    @property
    def n_prototypes(self) -> int:
        return self.mean.shape[0]

    def positives(self, clusters):
        """Boolean ``(B, P)`` mask: the prototypes of each image's cluster (1 or 2 per row)."""
        clusters = clusters.to(self.proto_cluster.device)
        return clusters.unsqueeze(1) == self.proto_cluster.unsqueeze(0)

    def prototype_of(self, clusters, modalities):
        """Index of the (cluster, modality) prototype of each image."""
        return self.table[clusters.to(self.table.device), modalities.to(self.table.device)]

    def similarities(self, features):
        """``(features @ hard.T, features @ mean.T)``."""
        return features @ self.hard.t(), features @ self.mean.t()

    def update(self, features, clusters, modalities):
        """Momentum update: each image updates the prototype of its own cluster and modality."""
        if not self.split:
            modalities = torch.zeros_like(clusters)
        rows = self.prototype_of(clusters, modalities)
        if (rows < 0).any():
            raise InputError("an image's (cluster, modality) has no prototype in this memory.")
        _momentum_update(self.mean, self.hard, features, rows, self.momentum)
