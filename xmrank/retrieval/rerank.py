"""``rerank``: k-reciprocal re-ranking of query x gallery distances (Zhong et al., CVPR 2017).

The Jaccard part is :func:`xmrank.jaccard_distance` over query ∪ gallery, so
the vanilla, modality-aware and camera-aware neighbour rules are exactly the
core ones; only the query x gallery block of its sparse result is densified.
The "original" distance is computed directly for that block; no
(n_query + n_gallery)^2 array is ever built.
"""

from __future__ import annotations

import logging
import time

import numba as nb
import numpy as np

from .._jit import njit
from .._validation import InputError, _to_numpy, check_features, check_label_values, check_option, check_real
from ..jaccard import METHODS, jaccard_distance
from ..jaccard.distance import check_arguments as check_jaccard_arguments

logger = logging.getLogger("xmrank")

__all__ = ["rerank", "original_distance", "NORMALIZE"]

#: Accepted ``normalize=`` values of the original distance.
NORMALIZE = ("gallery", "union")

#: float32 entries of the query-block x (query ∪ gallery) similarity held at once.
_BLOCK_ENTRIES = 1 << 24
#: Stored Jaccard entries scattered into the output at once.
_SCATTER_ENTRIES = 1 << 18


def rerank(
    query,
    gallery,
    *,
    query_modalities=None,
    gallery_modalities=None,
    query_cameras=None,
    gallery_cameras=None,
    method: str = "auto",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    normalize: str = "gallery",
    k1_intra: int = 5,
    k1_inter: int = 20,
    k2_intra: int = 2,
    k2_inter: int = 4,
    self_in_k1: bool = True,
    knn: str = "auto",
    device: str = "cpu",
    n_jobs: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Re-ranked query x gallery distance ``(1 - λ) · Jaccard + λ · original``.

    Parameters
    ----------
    query : array-like of shape (n_query, n_features)
    gallery : array-like of shape (n_gallery, n_features)
        Embeddings, used as given (the Jaccard weights assume L2-normalised rows).
    query_modalities, gallery_modalities : int, str or array-like, default=None
        Modality of each query / gallery row, or one label for the whole side
        (``query_modalities=1, gallery_modalities=0`` for infrared queries
        against a visible gallery). Give both or neither.
    query_cameras, gallery_cameras : int, str or array-like, default=None
        Camera of each row (or one per side), for ``method="camera"``.
    method : {"auto", "vanilla", "modality", "modality-qe", "camera"}, default="auto"
        Neighbour rule of the Jaccard part, as in :func:`xmrank.jaccard_distance`;
        ``"auto"`` is ``"modality"`` when modalities are given, else
        ``"camera"`` when cameras are given, else ``"vanilla"``.
    k1, k2 : int, default=20, 6
        Zhong et al.'s re-ranking defaults. With ``"modality"`` each list takes
        ``k1 // 2`` neighbours per modality and ``k2`` per modality in the
        query expansion.
    lambda_value : float in [0, 1], default=0.3
        Weight of the original distance. 0 gives the pure Jaccard distance,
        1 the original distance (the Jaccard part is then skipped).
    normalize : {"gallery", "union"}, default="gallery"
        Normaliser of the original distance, see :func:`original_distance`.
    k1_intra, k1_inter, k2_intra, k2_inter, self_in_k1, knn, device, n_jobs, progress
        Passed to :func:`xmrank.jaccard_distance`.

    Returns
    -------
    distance : ndarray of float32, shape (n_query, n_gallery)
        Smaller is more similar; values lie in [0, 1].

    Notes
    -----
    The **original distance** is the squared Euclidean distance ``‖q − g‖²``
    (``2 − 2 q·g`` for L2-normalised rows) divided, for each query, by its
    largest value over the gallery, so every query's farthest gallery item is
    at 1. Zhong et al. divide by the largest value over query ∪ gallery
    (their code divides each column of the symmetric (query ∪ gallery)²
    matrix by its maximum and transposes); ``normalize="union"`` does exactly
    that at the cost of an extra query x query product. The two agree
    whenever a query's farthest item is in the gallery, the rule in
    cross-modal retrieval. See :func:`original_distance`.

    The **Jaccard part** is :func:`xmrank.jaccard_distance` on the stacked
    rows ``[query; gallery]``: pairs that share no k-reciprocal neighbour are at
    distance 1. Two documented differences from Zhong et al.'s script, both
    inherited from the core (cluster-contrast's variant): the softmax weights
    use ``2 − 2 q·x`` rather than the normalised distance, and with
    ``self_in_k1=True`` a row counts itself among its ``k1`` neighbours
    (Zhong: ``k1 + 1`` columns including itself, i.e. ``self_in_k1=False``).

    In cross-modal retrieval every query is of one modality and the whole
    gallery of the other; plain ("vanilla") neighbour lists then hold almost
    only same-side rows and the Jaccard part stays near 1 for every
    query/gallery pair. ``method="modality"`` draws each list half from
    each modality, which is what makes re-ranking work across modalities.

    Examples
    --------
    >>> import numpy as np, xmrank
    >>> rng = np.random.default_rng(0)
    >>> q = rng.normal(size=(50, 8)).astype("float32")
    >>> g = rng.normal(size=(60, 8)).astype("float32")
    >>> D = xmrank.rerank(q, g, query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    >>> D.shape
    (50, 60)
    """
    Q = check_features(query, "query", min_rows=1)
    G = check_features(gallery, "gallery", min_rows=1)
    if Q.shape[1] != G.shape[1]:
        raise InputError(
            f"query and gallery must have the same number of features; got {Q.shape[1]} and {G.shape[1]}."
        )
    lam = check_real(lambda_value, "lambda_value", low=0.0, high=1.0)
    check_option(method, "method", METHODS)
    nq, ng = Q.shape[0], G.shape[0]
    mods = _stack_labels(query_modalities, gallery_modalities, nq, ng, "modalities")
    cams = _stack_labels(query_cameras, gallery_cameras, nq, ng, "cameras")

    t0 = time.perf_counter()
    check_option(normalize, "normalize", NORMALIZE)
    if lam == 1.0:
        # the Jaccard part is skipped, but its arguments are still checked
        check_jaccard_arguments(
            np.concatenate([Q, G], axis=0), modalities=mods, cameras=cams, method=method, k1=k1, k2=k2,
            k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter, self_in_k1=self_in_k1,
            knn=knn, device=device, n_jobs=n_jobs, combined=False,
        )
        return _original_into(Q, G, normalize=normalize, scale=1.0, shift=0.0)
    out = _original_into(Q, G, normalize=normalize, scale=lam, shift=1.0 - lam)  # λ·original + (1 − λ)·1
    t_orig = time.perf_counter() - t0
    X = np.concatenate([Q, G], axis=0)
    J = jaccard_distance(
        X, modalities=mods, cameras=cams, method=method, k1=k1, k2=k2,
        k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
        self_in_k1=self_in_k1, dense=False, knn=knn, device=device, n_jobs=n_jobs, progress=progress,
    )
    # add (1 − λ)·(J − 1) where J stores a value: J = 1 wherever the sparse matrix stores nothing
    _add_query_gallery_block(out, J, np.float32(1.0 - lam))
    logger.info(
        "rerank(method=%r, %d x %d): %.2fs (original distance %.2fs)", method, nq, ng, time.perf_counter() - t0, t_orig
    )
    return out


def original_distance(query, gallery, *, normalize: str = "gallery") -> np.ndarray:
    """Normalised squared Euclidean distance between query and gallery rows.

    ``d(q, g) = ‖q − g‖² / max_x ‖q − x‖²`` (0 where that maximum is 0), the
    maximum running over the gallery (``normalize="gallery"``) or over
    query ∪ gallery (``"union"``, Zhong et al.'s exact choice). For
    L2-normalised rows ``‖q − g‖² = 2 − 2 q·g``, so each row ranks the
    gallery as cosine similarity does.

    Parameters
    ----------
    query : array-like of shape (n_query, n_features)
    gallery : array-like of shape (n_gallery, n_features)
    normalize : {"gallery", "union"}, default="gallery"
        ``"gallery"``: every query's farthest gallery item is at exactly 1,
        and a query's row does not depend on the other queries. ``"union"``:
        Zhong et al.'s normaliser; it costs an extra query x query product
        and equals ``"gallery"`` whenever a query's farthest item is a
        gallery item, which is the rule in cross-modal retrieval (queries of
        one modality, gallery of the other: on the bundled CLIP
        image/caption features it holds for every query in both directions).

    Returns
    -------
    distance : ndarray of float32, shape (n_query, n_gallery), values in [0, 1]

    Notes
    -----
    Computed block by block of queries; nothing of size
    (n_query + n_gallery)² is built.
    """
    Q = check_features(query, "query", min_rows=1)
    G = check_features(gallery, "gallery", min_rows=1)
    if Q.shape[1] != G.shape[1]:
        raise InputError(
            f"query and gallery must have the same number of features; got {Q.shape[1]} and {G.shape[1]}."
        )
    check_option(normalize, "normalize", NORMALIZE)
    return _original_into(Q, G, normalize=normalize, scale=1.0, shift=0.0)


def _original_into(Q, G, *, normalize, scale, shift):
    """``scale * original_distance(Q, G) + shift`` as a new float32 array, block by block of queries."""
    nq, ng = Q.shape[0], G.shape[0]
    q_sq = np.einsum("ij,ij->i", Q, Q)
    g_sq = np.einsum("ij,ij->i", G, G)
    out = np.empty((nq, ng), dtype=np.float32)
    rows = max(1, _BLOCK_ENTRIES // (nq + ng))
    for lo in range(0, nq, rows):
        hi = min(nq, lo + rows)
        block = out[lo:hi]
        np.matmul(Q[lo:hi], G.T, out=block)
        if normalize == "union":
            qq = Q[lo:hi] @ Q.T
            qq *= -2.0
            qq += q_sq[lo:hi, None]
            qq += q_sq[None, :]
            extra = qq.max(axis=1).astype(np.float32)
        else:
            extra = np.zeros(hi - lo, dtype=np.float32)
        _scale_rows(block, q_sq[lo:hi], g_sq, extra, np.float32(scale), np.float32(shift))
    return out


@njit(parallel=True, cache=True, nogil=True)
def _scale_rows(S, q_sq, g_sq, extra_max, scale, shift):
    """In place: ``S[i, j] = q·g`` becomes ``scale * d_ij / max(max_j d_ij, extra_max[i]) + shift``.

    ``d_ij = max(q_sq[i] + g_sq[j] - 2 S[i, j], 0)``; rows whose maximum is 0 get ``shift``.
    Two passes over each row (the second from cache).
    """
    n, m = S.shape
    for i in nb.prange(n):
        top = extra_max[i]
        for j in range(m):
            d = q_sq[i] + g_sq[j] - np.float32(2.0) * S[i, j]
            if d > top:
                top = d
        f = scale / top if top > 0 else np.float32(0.0)
        for j in range(m):
            d = q_sq[i] + g_sq[j] - np.float32(2.0) * S[i, j]
            if d < 0:
                d = np.float32(0.0)
            S[i, j] = d * f + shift


def _add_query_gallery_block(out, J, weight):
    """``out[i, j] += weight * (J[i, nq + j] - 1)`` over the stored entries of the query rows of CSR ``J``.

    Reads ``J``'s arrays in place, a few thousand stored entries at a time,
    so no copy of the (mostly query x query) query rows is made.
    """
    nq = out.shape[0]
    indptr, indices, data = J.indptr, J.indices, J.data
    # row boundaries of chunks holding about _SCATTER_ENTRIES stored entries each
    marks = np.arange(0, int(indptr[nq]), _SCATTER_ENTRIES)
    bounds = np.unique(np.concatenate([np.searchsorted(indptr[: nq + 1], marks, side="right") - 1, [nq]]))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        a, b = int(indptr[lo]), int(indptr[hi])
        cols = indices[a:b]
        keep = cols >= nq
        rows = np.repeat(np.arange(lo, hi, dtype=np.int64), np.diff(indptr[lo : hi + 1]))[keep]
        out[rows, cols[keep] - nq] += weight * (data[a:b][keep] - np.float32(1.0))


def _stack_labels(q_labels, g_labels, nq, ng, what):
    """Stack per-side labels (scalars or arrays) into one array of length nq + ng, or None."""
    if q_labels is None and g_labels is None:
        return None
    if q_labels is None or g_labels is None:
        raise InputError(f"query_{what} and gallery_{what} must be given together; got only one of them.")
    parts = []
    for labels, n, side in ((q_labels, nq, "query"), (g_labels, ng, "gallery")):
        arr = _to_numpy(labels, f"{side}_{what}")
        if arr.ndim == 0:
            arr = np.full(n, arr.item())
        elif arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InputError(
                f"{side}_{what} must be one label or one label per {side} row ({n}); got shape {arr.shape}."
            )
        parts.append(check_label_values(arr, f"{side}_{what}", n, what=f"{side} row"))
    if (parts[0].dtype.kind in "USO") != (parts[1].dtype.kind in "USO"):
        raise InputError(f"query_{what} and gallery_{what} must both be numbers or both be strings.")
    return np.concatenate(parts)
