"""Intra- vs inter-modality distance histograms (the BMIL paper's Figure 6).

For a distance between all rows, pairs of rows of the same modality
("intra") and of different modalities ("inter") are histogrammed
separately. A modality-biased distance puts the inter-modality pairs far
away from the intra-modality ones; the modality-aware Jaccard distance
narrows that gap.

Two sources of distances are handled without an N x N array:

- the original distance ``2 - 2 x.y`` (squared Euclidean for unit rows):
  every pair when there are at most ``max_pairs`` of them, else a uniform
  random sample of ``max_pairs`` pairs;
- a sparse Jaccard matrix, whose unstored pairs all have distance 1: the
  stored pairs are histogrammed and the unstored count is added to the bin
  that holds 1 (the last one), so the counts are exact.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._params import MAX_BINS as _MAX_BINS
from .._validation import InputError, check_distance, check_int, check_seed

#: Entries of a block held at once (float64: 8 MB): the histograms' memory does not grow with N².
_BLOCK_ENTRIES = 1 << 20

__all__ = ["original_histogram", "jaccard_histogram", "histogram_summary", "pair_counts", "MAX_BINS"]

#: Most histogram bins accepted (declared with ``bins`` in :mod:`xmrank._params`).
MAX_BINS = _MAX_BINS


def pair_counts(codes: np.ndarray) -> tuple[int, int]:
    """Number of unordered intra-modality and inter-modality pairs of distinct rows."""
    sizes = np.bincount(codes).astype(np.int64)
    n = int(sizes.sum())
    intra = int((sizes * (sizes - 1) // 2).sum())
    return intra, n * (n - 1) // 2 - intra


def _sample_pairs(n: int, m: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``m`` uniformly random unordered pairs ``i != j`` (with replacement)."""
    i = rng.integers(0, n, size=m)
    j = rng.integers(0, n - 1, size=m)
    j = j + (j >= i)  # skip the diagonal, uniform over j != i
    return i, j


def original_histogram(X: np.ndarray, codes: np.ndarray, *, bins: int = 50, max_pairs: int = 2_000_000, seed=0):
    """Histogram ``2 - 2 x_i . x_j`` over intra- and inter-modality pairs.

    Parameters
    ----------
    X : ndarray of float32, shape (N, d)
        Validated features.
    codes : ndarray of int, shape (N,)
        Modality code per row.
    bins : int, default=50
        Equal-width bins over ``[0, 4]`` (the range for unit rows; widened
        when rows are longer).
    max_pairs : int, default=2_000_000
        Use every pair if there are at most this many, else this many
        random pairs.
    seed : int, default=0
        Seed of the pair sample.

    Returns
    -------
    hist : dict
        ``edges`` (bins + 1), ``intra`` and ``inter`` counts, ``intra_sum`` /
        ``inter_sum`` (sums of the distances), ``intra_pairs`` /
        ``inter_pairs`` (pairs counted) and ``sampled`` (bool).
    """
    n = X.shape[0]
    bins = check_int(bins, "bins", minimum=1, maximum=MAX_BINS)
    max_pairs = check_int(max_pairs, "max_pairs", minimum=1)
    seed = check_seed(seed)
    total = n * (n - 1) // 2
    sampled = total > max_pairs
    sq = float(np.max(np.einsum("ij,ij->i", X, X))) if n else 1.0
    edges = np.linspace(min(0.0, 2.0 - 2.0 * sq), max(4.0, 2.0 + 2.0 * sq), bins + 1)
    out = {"edges": edges, "sampled": bool(sampled)}
    acc = {"intra": np.zeros(bins, np.int64), "inter": np.zeros(bins, np.int64),
           "intra_sum": 0.0, "inter_sum": 0.0, "intra_pairs": 0, "inter_pairs": 0}
    for d, same in _original_chunks(X, codes, sampled, max_pairs, seed):
        for name, mask in (("intra", same), ("inter", ~same)):
            acc[name] += np.histogram(d[mask], bins=edges)[0]
            acc[f"{name}_sum"] += float(d[mask].sum())
            acc[f"{name}_pairs"] += int(mask.sum())
    out.update(acc)
    return out


def _original_chunks(X, codes, sampled, max_pairs, seed, chunk=1 << 21):
    """Yield (distances, same-modality mask) for every pair i < j, or for a random sample."""
    n = X.shape[0]
    if sampled:
        rng = np.random.default_rng(seed)
        rows = max(1, _BLOCK_ENTRIES // max(X.shape[1], 1))  # X[i] and X[j] a few MB at a time, whatever d is
        for start in range(0, max_pairs, chunk):
            i, j = _sample_pairs(n, min(chunk, max_pairs - start), rng)
            d = np.concatenate([2.0 - 2.0 * np.einsum("ij,ij->i", X[i[s:s + rows]], X[j[s:s + rows]],
                                                      dtype=np.float64) for s in range(0, i.size, rows)])
            yield d, codes[i] == codes[j]
        return
    block = max(1, chunk // max(n, 1))
    for lo in range(0, n - 1, block):
        hi = min(n, lo + block)
        G = 2.0 - 2.0 * (X[lo:hi].astype(np.float64) @ X[lo:].T.astype(np.float64))
        r, c = np.triu_indices(hi - lo, k=1, m=n - lo)
        yield G[r, c], codes[lo + r] == codes[lo + c]


def jaccard_histogram(D, codes: np.ndarray, *, bins: int = 50):
    """Exact histogram of a (sparse) Jaccard distance over intra- and inter-modality pairs.

    Parameters
    ----------
    D : scipy.sparse matrix or ndarray, shape (N, N)
        Symmetric Jaccard distance as :func:`xmrank.jaccard_distance`
        returns it; for a sparse matrix every unstored pair is 1.
    codes : ndarray of int, shape (N,)
    bins : int, default=50
        Equal-width bins over ``[0, 1]``; 1 falls in the last bin.

    Returns
    -------
    hist : dict
        As :func:`original_histogram`, with ``sampled=False``, plus
        ``intra_below_one`` / ``inter_below_one``: pairs closer than 1 (the
        pairs that share any k-reciprocal neighbour). Only pairs ``i < j``
        are counted (the matrix is symmetric).
    """
    D = check_distance(D, "D")
    n = D.shape[0]
    codes = np.asarray(codes)
    if codes.shape != (n,):
        raise InputError(f"codes must have one modality code per row of D ({n}); got shape {codes.shape}.")
    bins = check_int(bins, "bins", minimum=1, maximum=MAX_BINS)
    edges = np.linspace(0.0, 1.0, bins + 1)
    if not sp.issparse(D):
        return _dense_jaccard_histogram(D, codes, edges)
    D = D.tocsr()
    n_intra, n_inter = pair_counts(codes)
    out = {"edges": edges, "sampled": False, "intra_pairs": n_intra, "inter_pairs": n_inter}
    acc = {name: [np.zeros(bins, np.int64), 0.0, 0, 0] for name in ("intra", "inter")}  # counts, sum, below, stored
    # a block of rows at a time, a few million stored pairs each: the Jaccard distance of clustered features
    # stores most pairs (about 60% of N² on a biased synthetic set), so per-pair temporaries of the whole
    # matrix would cost several times the matrix itself
    for lo, hi in _row_blocks(D.indptr, 4 * _BLOCK_ENTRIES):
        start, stop = D.indptr[lo], D.indptr[hi]
        rows = np.repeat(np.arange(lo, hi), np.diff(D.indptr[lo:hi + 1]))
        cols = D.indices[start:stop]
        upper = rows < cols
        i, j, d = rows[upper], cols[upper], D.data[start:stop][upper].astype(np.float64)
        same = codes[i] == codes[j]
        for name, mask in (("intra", same), ("inter", ~same)):
            dm = d[mask]
            a = acc[name]
            a[0] += np.histogram(np.clip(dm, 0.0, 1.0), bins=edges)[0]
            a[1] += float(dm.sum())
            a[2] += int((dm < 1.0).sum())
            a[3] += int(mask.sum())
    for (name, total), (counts, dsum, below, stored) in zip((("intra", n_intra), ("inter", n_inter)), acc.values()):
        unstored = total - stored
        counts[-1] += unstored
        out[name] = counts
        out[f"{name}_sum"] = dsum + unstored
        out[f"{name}_below_one"] = below
    return out


def _row_blocks(indptr, entries):
    """``(lo, hi)`` row ranges of a CSR matrix holding about ``entries`` stored values each (one row at least)."""
    n = indptr.size - 1
    lo = 0
    while lo < n:
        hi = int(np.searchsorted(indptr, indptr[lo] + entries, side="right")) - 1
        hi = min(n, max(hi, lo + 1))
        yield lo, hi
        lo = hi


def _dense_jaccard_histogram(D, codes, edges):
    """:func:`jaccard_histogram` of a dense matrix, a block of rows at a time (no N² index arrays)."""
    n = D.shape[0]
    n_intra, n_inter = pair_counts(codes)
    out = {"edges": edges, "sampled": False, "intra_pairs": n_intra, "inter_pairs": n_inter}
    acc = {name: [np.zeros(edges.size - 1, np.int64), 0.0, 0] for name in ("intra", "inter")}
    rows = max(1, _BLOCK_ENTRIES // max(n, 1))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        block = np.asarray(D[lo:hi], dtype=np.float64)
        upper = np.arange(n)[None, :] > np.arange(lo, hi)[:, None]
        same = codes[lo:hi, None] == codes[None, :]
        for name, mask in (("intra", upper & same), ("inter", upper & ~same)):
            d = block[mask]
            acc[name][0] += np.histogram(np.clip(d, 0.0, 1.0), bins=edges)[0]
            acc[name][1] += float(d.sum())
            acc[name][2] += int((d < 1.0).sum())
    for name, (counts, total, below) in acc.items():
        out[name], out[f"{name}_sum"], out[f"{name}_below_one"] = counts, total, below
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two histograms normalised to unit mass: 1 = same shape, 0 = disjoint."""
    sa, sb = a.sum(), b.sum()
    if sa == 0 or sb == 0:
        return float("nan")
    return float(np.minimum(a / sa, b / sb).sum())


def histogram_summary(hist: dict) -> dict:
    """Means of the intra- and inter-modality distances, their gap and the histograms' overlap.

    For a Jaccard histogram also ``intra_modality_share_below_one`` and
    ``inter_modality_share_below_one``: the share of pairs at distance < 1.
    On large sets most pairs of either kind sit at 1 and the means converge;
    these shares still show the bias (the vanilla Jaccard leaves *no*
    inter-modality pair below 1 when the lists are single-modality).
    """
    intra = hist["intra_sum"] / hist["intra_pairs"] if hist["intra_pairs"] else float("nan")
    inter = hist["inter_sum"] / hist["inter_pairs"] if hist["inter_pairs"] else float("nan")
    extra = {}
    if "intra_below_one" in hist:
        for name in ("intra", "inter"):
            total = hist[f"{name}_pairs"]
            extra[f"{name}_modality_share_below_one"] = hist[f"{name}_below_one"] / total if total else float("nan")
    return {
        "intra_modality_mean": float(intra),
        "inter_modality_mean": float(inter),
        "inter_minus_intra": float(inter - intra),
        "histogram_overlap": _overlap(hist["intra"], hist["inter"]),
        "intra_modality_pairs": int(hist["intra_pairs"]),
        "inter_modality_pairs": int(hist["inter_pairs"]),
        "sampled": bool(hist["sampled"]),
        **extra,
    }
