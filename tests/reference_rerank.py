"""Dense re-statement of torchreid's ``re_ranking`` (Zhong et al.), step by step, for tests and benchmarks.

Written from the algorithm as torchreid runs it (see ``shared/golden/README.md``), with its
dense (n_query + n_gallery)² arrays and its full argsort kept on purpose: the benchmark
measures this memory profile against :func:`xmrank.compat.re_ranking`. Checked against
torchreid's own output in ``tests/compat/test_compat_rerank.py``.
"""

import numpy as np


def dense_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    nq = q_g_dist.shape[0]
    top = np.concatenate([q_q_dist, q_g_dist], axis=1)
    bottom = np.concatenate([q_g_dist.T, g_g_dist], axis=1)
    full = np.concatenate([top, bottom], axis=0)
    del top, bottom
    full = np.power(full, 2).astype(np.float32)
    # each column divided by its maximum, then transposed: row i is column i of the assembled matrix
    original = np.transpose(1.0 * full / np.max(full, axis=0))
    del full
    n = original.shape[0]
    V = np.zeros_like(original).astype(np.float32)
    initial_rank = np.argsort(original).astype(np.int32)
    half = int(np.around(k1 / 2.0))

    def reciprocal(i, k):
        forward = initial_rank[i, :k + 1]
        backward = initial_rank[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    for i in range(n):
        r = reciprocal(i, k1)
        expanded = r
        for c in r:
            rc = reciprocal(c, half)
            if len(np.intersect1d(rc, r)) > 2.0 / 3 * len(rc):
                expanded = np.append(expanded, rc)
        expanded = np.unique(expanded)
        w = np.exp(-original[i, expanded])
        V[i, expanded] = 1.0 * w / np.sum(w)
    original = original[:nq]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(n):
            V_qe[i] = np.mean(V[initial_rank[i, :k2]], axis=0)
        V = V_qe
        del V_qe
    del initial_rank
    inv = [np.where(V[:, j] != 0)[0] for j in range(n)]
    jaccard = np.zeros_like(original, dtype=np.float32)
    for i in range(nq):
        acc = np.zeros((1, n), dtype=np.float32)
        nz = np.where(V[i] != 0)[0]
        for j in nz:
            acc[0, inv[j]] += np.minimum(V[i, j], V[inv[j], j])
        jaccard[i] = 1 - acc / (2.0 - acc)
    final = jaccard * (1 - lambda_value) + original * lambda_value
    return final[:nq, nq:]
