"""k-reciprocal Jaccard distances; the kernel lives in :mod:`xmrank.jaccard.kernels`."""

from .distance import METHODS, jaccard_distance

__all__ = ["jaccard_distance", "METHODS"]
