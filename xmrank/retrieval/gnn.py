"""GNN re-ranking (Zhang et al., "Understanding Image Retrieval Re-Ranking: A Graph Neural Network Perspective"), sparse.

What the published ``gnn_reranking(X_q, X_g, k1, k2, lamb)`` computes
(layumi/Person_reID_baseline_pytorch, ``GPU-Re-Ranking/``), over
``U = [queries; gallery]`` (N rows):

1. ``S, R = topk(U Uᵀ, k1)``: each row's ``k1`` most similar rows, itself included;
2. ``A[i, R[i, j]] = 1`` (N x N); ``S = S²``;
3. unless ``k2 == 1``, twice: ``A = A + Aᵀ``;
   ``A'[i] = Σ_{j < k2} S[i, j] · A[R[i, j]]``; each row of ``A'`` divided by its L2 norm;
4. similarity ``(1 − lamb) · A[q] A[g]ᵀ + lamb · Q Gᵀ``; the ranking is the argsort of its negation.

The published code builds every one of these N x N matrices densely (and
needs a hand-compiled CUDA extension). Here:

- ``A`` stays a ``scipy.sparse`` CSR matrix: ``k1`` entries per row, about
  ``2 k1`` after the symmetrisation, ``O(k1 k2)`` after the first
  propagation; the second propagation (``O(k1 k2²)`` entries per row) is
  never stored.
- only the query x gallery block is computed, by a numba kernel: for a
  query ``q`` it forms the propagated row ``x = A2[q]`` (a dense scratch
  row of length N per thread), ``y = x Bᵀ`` with ``B = A1 + A1ᵀ`` the
  sparse matrix of the last symmetrisation (so ``y[b] = ⟨A2[q], B[b]⟩``),
  and then ``A2[q]·A2[g] = Σ_j w[g, j] y[R[g, j]]`` for every gallery row
  ``g``: the gallery's propagated rows are never formed, only their norms.

Memory: the neighbour lists, the sparse ``A`` (``O(N k1 k2)``), one
scratch row of length N per thread, and the ``n_query x n_gallery``
output. Work: ``O(n_query · nnz(A2[q]) · nnz(B[c]) + n_query · n_gallery · k2)``.

Neighbour rules (xmrank's, :mod:`xmrank.jaccard.plan`): the lists ``R``
come from the same planners as the k-reciprocal Jaccard, so vanilla,
modality-aware (``k1 // M`` per modality), camera-aware and
modality-camera lists are all available. The propagation ("expansion")
uses the first ``k2`` columns of each group of the list (each modality for
the modality rules; the same-camera and other-camera lists for the camera
rule, with ``k2_intra`` / ``k2_inter``): within a group the weights are the
published ``S²``, scaled to sum to one; every group present gets the same
total weight. With one group (vanilla) that is the published rule: a
row's propagation weights are scaled by a constant, which the L2
normalisation removes.

Camera weights (CEIL, TCSVT 2025, its "Graph network-based Camera
constraint adjustment Re-ranking"): the initial adjacency holds ``la``
(``camera_weight``) instead of 1 for a neighbour of the same camera and
``1 / la`` for one of another camera; see :func:`gnn_similarity`.
"""

from __future__ import annotations

import logging

import numba as nb
import numpy as np
import scipy.sparse as sp

from .._jit import njit
from .._validation import InputError

logger = logging.getLogger(__name__)

__all__ = ["gnn_similarity", "propagation_lists", "camera_adjacency_weights"]

_PARALLEL = dict(parallel=True, cache=True, nogil=True)


# --- the propagation lists of each neighbour rule ---------------------------------------------

def _first_per_group(rank, sims, groups, n_groups, k):
    """For every row: the first ``k`` columns of ``rank`` of each group (``groups[i, j]`` in 0..n_groups-1).

    Returns ``(idx, sim, gid)``, each (N, n_groups * k); a group with fewer than ``k`` columns in a row
    leaves ``-1`` in ``idx`` (weight 0).
    """
    n, width = rank.shape
    idx = np.full((n, n_groups * k), -1, dtype=np.int64)
    sim = np.zeros((n, n_groups * k), dtype=np.float32)
    gid = np.repeat(np.arange(n_groups), k)[None, :].repeat(n, axis=0)
    # position of each column within its group: a running count per group along the row
    onehot = groups[:, :, None] == np.arange(n_groups)[None, None, :]  # (N, width, G)
    position = (np.cumsum(onehot, axis=1) - 1)[np.arange(n)[:, None], np.arange(width)[None, :], groups]
    keep = position < k
    r, c = np.nonzero(keep)
    slot = groups[r, c] * k + position[r, c]
    idx[r, slot] = rank[r, c]
    sim[r, slot] = sims[r, c]
    return idx, sim, gid


def _balanced_weights(idx, sim, gid, n_groups):
    """``S²`` scaled to sum to 1 within each group of a row; each group present weighted 1 / (groups present)."""
    w = np.where(idx >= 0, sim.astype(np.float64) ** 2, 0.0)
    present = idx >= 0
    totals = np.zeros((idx.shape[0], n_groups))
    counts = np.zeros((idx.shape[0], n_groups))
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    np.add.at(totals, (rows, gid.ravel()), w.ravel())
    np.add.at(counts, (rows, gid.ravel()), present.ravel())
    n_present = (counts > 0).sum(axis=1, keepdims=True)
    t = np.take_along_axis(totals, gid, axis=1)
    c = np.take_along_axis(counts, gid, axis=1)
    # a group whose similarities are all 0 spreads its share evenly
    share = np.where(t > 0, w / np.where(t > 0, t, 1.0), np.where(present, 1.0 / np.maximum(c, 1), 0.0))
    return (share / n_present).astype(np.float32)


def propagation_lists(method, rank, sims, *, k2, mod_codes=None, k1_intra=None, k2_intra=None, k2_inter=None):
    """The rows each row's propagation sums over, and their weights.

    Parameters
    ----------
    method : str
        The resolved neighbour rule ("vanilla", "modality", "modality-qe", "camera", "modality-camera").
    rank, sims : ndarray of shape (N, width)
        The neighbour lists of that rule (:class:`xmrank.jaccard.JaccardPlan`'s ``rank`` and ``sims``).
    k2 : int
        Propagation length (per modality for the modality rules).
    mod_codes : ndarray of int, default=None
        Modality code of each row (the modality rules).
    k1_intra, k2_intra, k2_inter : int, default=None
        The camera rule's lengths: its lists are ``k1_intra + 1`` same-camera columns, then the other cameras'.

    Returns
    -------
    idx : ndarray of int64, shape (N, p)
        Rows summed (``-1``: none).
    weight : ndarray of float32, shape (N, p)
        Their weights: ``S²`` (vanilla, exactly the published weights), or ``S²`` balanced over the groups.
    """
    n = rank.shape[0]
    if method == "vanilla":
        return np.ascontiguousarray(rank[:, :k2]), np.ascontiguousarray(sims[:, :k2] ** 2, dtype=np.float32)
    if method == "camera":
        a = k1_intra + 1
        idx = np.concatenate([rank[:, :k2_intra], rank[:, a:a + k2_inter]], axis=1)
        sim = np.concatenate([sims[:, :k2_intra], sims[:, a:a + k2_inter]], axis=1)
        gid = np.repeat([[0] * k2_intra + [1] * k2_inter], n, axis=0)
        return idx, _balanced_weights(idx, sim, gid, 2)
    n_mod = int(mod_codes.max()) + 1
    if method == "modality-qe":  # global lists, the first k2 columns balanced over the modalities present
        idx = np.ascontiguousarray(rank[:, :k2])
        gid = mod_codes[idx]
        return idx, _balanced_weights(idx, sims[:, :k2], gid, n_mod)
    # "modality", "modality-camera": the first k2 columns of each modality in the merged list
    idx, sim, gid = _first_per_group(rank, sims, mod_codes[rank], n_mod, k2)
    return idx, _balanced_weights(idx, sim, gid, n_mod)


def camera_adjacency_weights(rank, cam_codes, la):
    """CEIL's adjacency values: ``la`` for a neighbour of the row's own camera, ``1 / la`` for another camera."""
    same = cam_codes[rank] == cam_codes[:, None]
    return np.where(same, np.float32(la), np.float32(1.0 / la)).astype(np.float32)


# --- compiled kernels ---------------------------------------------------------------------------

@njit(inline="always", cache=True)
def _gather_row(i, L, W, indptr, indices, data, x, touched, mark):
    """``x = Σ_j W[i, j] · B[L[i, j]]`` into the dense scratch ``x``; returns the number of touched columns."""
    n_t = 0
    for j in range(L.shape[1]):
        r = L[i, j]
        if r < 0:
            continue
        w = np.float64(W[i, j])
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            if not mark[c]:
                mark[c] = True
                touched[n_t] = c
                n_t += 1
            x[c] += w * data[p]
    return n_t


@njit(**_PARALLEL)
def _row_norms(L, W, indptr, indices, data, n_cols, n_threads):
    """L2 norm of every propagated row ``Σ_j W[i, j] B[L[i, j]]``."""
    n = L.shape[0]
    out = np.empty(n, dtype=np.float64)
    step = (n + n_threads - 1) // n_threads
    for t in nb.prange(n_threads):
        x = np.zeros(n_cols, dtype=np.float64)
        mark = np.zeros(n_cols, dtype=np.bool_)
        touched = np.empty(n_cols, dtype=np.int64)
        for i in range(t * step, min(n, (t + 1) * step)):
            n_t = _gather_row(i, L, W, indptr, indices, data, x, touched, mark)
            s = 0.0
            for p in range(n_t):
                c = touched[p]
                s += x[c] * x[c]
                x[c] = 0.0
                mark[c] = False
            out[i] = np.sqrt(s)
    return out


@njit(**_PARALLEL)
def _query_gallery(out, nq, L, W, indptr, indices, data, t_indptr, t_indices, t_data, norms, lam, n_threads):
    """``out[q, g] = (1 − lam) · ⟨X[q], X[g]⟩ / (norms[q] norms[g]) + lam · out[q, g]``.

    ``X[i] = Σ_j W[i, j] B[L[i, j]]`` (rows of ``B``: ``indptr, indices, data``); ``Bᵀ`` is
    ``t_indptr, t_indices, t_data``. For each query: ``x = X[q]`` (dense scratch),
    ``y = x Bᵀ`` (so ``y[b] = ⟨X[q], B[b]⟩``), then ``⟨X[q], X[g]⟩ = Σ_j W[g, j] y[L[g, j]]``.
    """
    n_cols = norms.shape[0]
    ng = out.shape[1]
    step = (nq + n_threads - 1) // n_threads
    one_minus = 1.0 - lam
    for t in nb.prange(n_threads):
        x = np.zeros(n_cols, dtype=np.float64)
        y = np.zeros(n_cols, dtype=np.float64)
        mark = np.zeros(n_cols, dtype=np.bool_)
        touched = np.empty(n_cols, dtype=np.int64)
        for q in range(t * step, min(nq, (t + 1) * step)):
            n_t = _gather_row(q, L, W, indptr, indices, data, x, touched, mark)
            for p in range(n_t):
                c = touched[p]
                v = x[c]
                for r in range(t_indptr[c], t_indptr[c + 1]):
                    y[t_indices[r]] += v * t_data[r]
                x[c] = 0.0
                mark[c] = False
            nqn = norms[q]
            for g in range(ng):
                i = nq + g
                s = 0.0
                for j in range(L.shape[1]):
                    r = L[i, j]
                    if r >= 0:
                        s += W[i, j] * y[r]
                d = nqn * norms[i]
                core = s / d if d > 0 else 0.0
                out[q, g] = np.float32(one_minus * core + lam * out[q, g])
            y[:] = 0.0


# --- the algorithm ------------------------------------------------------------------------------

def _csr(n, rows, cols, vals):
    keep = cols >= 0
    M = sp.csr_matrix((vals[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n, n))
    M.sum_duplicates()
    return M


def _normalise_rows(M):
    norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1), dtype=np.float64).ravel())
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ M)


def gnn_similarity(rank, prop_idx, prop_w, nq, *, base, lam, propagate=True, adjacency=None, n_jobs=1,
                   device="cpu"):
    """The GNN re-ranking similarity of the query x gallery block.

    Parameters
    ----------
    rank : ndarray of int64, shape (N, k1)
        Each row's neighbour list (rows of ``[queries; gallery]``), itself included.
    prop_idx, prop_w : ndarray, shape (N, p)
        Rows and weights of each propagation step (:func:`propagation_lists`; -1: none).
    nq : int
        Number of query rows (the first ``nq``).
    base : ndarray of float32, shape (nq, N - nq)
        The original query x gallery similarity (``Q Gᵀ``); overwritten with the result.
    lam : float
        Weight of ``base`` in the result.
    propagate : bool, default=True
        False: the published ``k2 == 1`` rule, no propagation (``A`` is the adjacency as built).
    adjacency : ndarray of float32, shape (N, k1), default=None
        Values of the initial adjacency (CEIL's camera weights); None: 1 everywhere (published).
    n_jobs : int, default=1
        Threads.
    device : str, default="cpu"
        "cuda" / "cuda:N": the torch version (:func:`_torch_similarity`), same steps with
        ``torch.sparse`` on that device. Any other value: the CPU kernels.

    Returns
    -------
    similarity : ndarray of float32, shape (nq, N - nq)
        ``(1 − lam) · A[q] A[g]ᵀ + lam · base`` (``base``, written in place).
    """
    n, k1 = rank.shape
    if isinstance(device, str) and device.startswith("cuda"):
        return _torch_similarity(rank, prop_idx, prop_w, nq, base=base, lam=lam, propagate=propagate,
                                 adjacency=adjacency, device=device)
    vals = np.ones(n * k1, np.float32) if adjacency is None else np.ascontiguousarray(adjacency, np.float32).ravel()
    A0 = _csr(n, np.repeat(np.arange(n), k1), rank.ravel(), vals)
    lam = float(lam)
    if not propagate:
        # A = A0: X[i] = A0[i] (L = i, W = 1), unnormalised
        L = np.arange(n, dtype=np.int64)[:, None]
        W = np.ones((n, 1), np.float32)
        B, BT, norms = A0, A0.T.tocsr(), np.ones(n)
    else:
        P = _csr(n, np.repeat(np.arange(n), prop_idx.shape[1]), prop_idx.ravel(), prop_w.ravel())
        A1 = _normalise_rows(P @ (A0 + A0.T).tocsr())
        B = (A1 + A1.T).tocsr()  # symmetric
        del A1
        L, W, BT = np.ascontiguousarray(prop_idx, np.int64), np.ascontiguousarray(prop_w, np.float32), B
        norms = None
    B.sort_indices()
    threads = max(1, min(int(n_jobs), nb.config.NUMBA_NUM_THREADS))
    args = _csr_arrays(B)
    if norms is None:
        norms = _row_norms(L, W, *args, n, threads)
    t_args = args if BT is B else _csr_arrays(BT)
    logger.debug("gnn: %d rows, %.1f adjacency entries per row", n, B.nnz / max(n, 1))
    _query_gallery(base, nq, L, W, *args, *t_args, norms, lam, threads)
    return base


def _torch_similarity(rank, prop_idx, prop_w, nq, *, base, lam, propagate, adjacency, device):
    """GPU version of :func:`gnn_similarity` (torch; ``device`` any torch device).

    EXPERIMENTAL, kept deliberately simple: the same steps as the CPU path with
    ``torch.sparse`` matrices (sparse x sparse products for the two propagations),
    then the query rows (sparse) times the gallery rows made dense
    (``n_gallery x N`` float32 on the device: 2.4 GB at 20,000 x 30,000). The tests
    run it with ``device="cpu"`` on every machine (``tests/retrieval/test_gnn_rerank.py``) and
    on a CUDA GPU only where one is present (``@pytest.mark.gpu``); its speed on a
    GPU has not been measured.
    """
    import torch

    dev = torch.device(device)
    n, k1 = rank.shape

    def sparse(rows, cols, vals):
        keep = cols >= 0
        index = torch.as_tensor(np.stack([rows[keep], cols[keep]]), device=dev)
        return torch.sparse_coo_tensor(index, torch.as_tensor(vals[keep], dtype=torch.float32, device=dev),
                                       (n, n)).coalesce()

    def unit_rows(M):
        sq = torch.zeros(n, dtype=torch.float32, device=dev).index_add_(0, M.indices()[0], M.values() ** 2)
        scale = torch.where(sq > 0, sq.rsqrt(), torch.zeros_like(sq))
        return torch.sparse_coo_tensor(M.indices(), M.values() * scale[M.indices()[0]], M.shape).coalesce()

    vals = np.ones(n * k1, np.float32) if adjacency is None else np.asarray(adjacency, np.float32).ravel()
    A = sparse(np.repeat(np.arange(n), k1), rank.ravel(), vals)
    if propagate:
        import warnings

        P = sparse(np.repeat(np.arange(n), prop_idx.shape[1]), prop_idx.ravel(), np.asarray(prop_w).ravel())
        with warnings.catch_warnings():  # torch's notice that its sparse CSR support is "in beta"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            for _ in range(2):
                A = unit_rows(torch.sparse.mm(P, (A + A.t()).coalesce()).coalesce())
    rows = torch.arange(n, device=dev)
    Aq = A.index_select(0, rows[:nq])
    Ag = A.index_select(0, rows[nq:]).to_dense()
    core = torch.sparse.mm(Aq, Ag.t()).cpu().numpy()
    base *= np.float32(lam)
    base += np.float32(1.0 - lam) * core
    return base


def _csr_arrays(M):
    """``(indptr int64, indices int32, data float32)`` of a CSR matrix: one kernel signature, no wider copies."""
    return (M.indptr.astype(np.int64, copy=False), M.indices.astype(np.int32, copy=False),
            M.data.astype(np.float32, copy=False))


def check_gnn_lengths(k1, k2, n):
    """The published function's limits: ``1 <= k2 <= k1 <= n`` (raises :class:`InputError`)."""
    if k1 > n:
        raise InputError(f"k1={k1} must not exceed the number of query + gallery rows ({n}).")
    if k2 > k1:
        raise InputError(f"k2={k2} must not exceed k1={k1}.")
