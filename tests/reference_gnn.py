"""A dense numpy port of the published GNN re-ranking (Zhang et al.; layumi/Person_reID_baseline_pytorch
``GPU-Re-Ranking/gnn_reranking.py`` and its two CUDA kernels), the same steps on N x N arrays.

The tests compare xmrank's sparse version with it on inputs the golden file does not cover (modality
lists, camera weights), and ``benchmarks/bench_rerank.py`` times it as the dense baseline. Optional
arguments replace the published lists / weights by xmrank's so that the same dense steps check them.
"""

import numpy as np


def dense_gnn_reranking(X_q, X_g, k1, k2, lamb=0.3, *, rank=None, prop_idx=None, prop_w=None, adjacency=None,
                        block=2048):
    """``(ranking, similarity)`` as the published function computes them, every matrix dense (float32)."""
    Q = np.asarray(X_q, np.float32)
    G = np.asarray(X_g, np.float32)
    U = np.concatenate([Q, G])
    n, nq = U.shape[0], Q.shape[0]
    if rank is None:
        score = U @ U.T                                    # original_score, N x N
        part = np.argpartition(-score, k1 - 1, axis=1)[:, :k1] if k1 < n else np.tile(np.arange(n), (n, 1))
        vals = np.take_along_axis(score, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)          # topk: largest first, ties by the smaller index
        rank, S = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
        del score
        prop_idx, prop_w = rank[:, :k2], S[:, :k2] ** 2
    A = np.zeros((n, n), np.float32)                      # build_adjacency_matrix
    A[np.arange(n)[:, None], rank] = 1.0 if adjacency is None else adjacency
    if k2 != 1:
        for _ in range(2):
            A = A + A.T
            out = np.zeros_like(A)                        # gnn_propagate, a block of rows at a time
            for lo in range(0, n, block):
                hi = min(n, lo + block)
                for j in range(prop_idx.shape[1]):
                    r = prop_idx[lo:hi, j]
                    ok = r >= 0
                    out[lo:hi][ok] += prop_w[lo:hi, j][ok, None] * A[r[ok]]
            A = out
            A /= np.linalg.norm(A, axis=1, keepdims=True)
    sim = (1 - lamb) * (A[:nq] @ A[nq:].T) + lamb * (Q @ G.T)
    return np.argsort(-sim, axis=1, kind="stable"), sim.astype(np.float32)
