"""A slow, dense, literal transcription of the method (``docs/method.rst``), used as a test oracle.

Written for clarity, not speed: Python loops over rows and dense N x N
arrays. It generalises the modality-aware method to M modalities the way
xmrank documents it (k1 // M neighbours per modality, 1/M weight each).
"""

import numpy as np


def _order(sim_row, candidates):
    candidates = np.asarray(candidates)
    return candidates[np.lexsort((candidates, -sim_row[candidates]))]


def _recip(rank, i, k):
    fwd = rank[i][: k + 1]
    return [j for j in fwd if i in list(rank[j][: k + 1])]


def _weights(S, sets):
    n = S.shape[0]
    V = np.zeros((n, n), dtype=np.float64)
    for i, E in enumerate(sets):
        E = np.unique(np.asarray(E, dtype=np.int64))
        if E.size == 0:
            continue
        d = 2.0 - 2.0 * S[i, E]
        w = np.exp(-(d - d.min()))
        V[i, E] = w / w.sum()
    return V


def _jaccard(Vq):
    n = Vq.shape[0]
    J = np.ones((n, n))
    for i in range(n):
        m = np.minimum(Vq[i][None, :], Vq).sum(axis=1)
        J[i] = np.maximum(0.0, 1.0 - m / (2.0 - m))
    np.fill_diagonal(J, 0.0)
    return J


def _expand(rank, k1):
    n = len(rank)
    half = int(np.around(k1 / 2))
    R = [_recip(rank, i, k1) for i in range(n)]
    H = [_recip(rank, i, half) for i in range(n)]
    sets = []
    for i in range(n):
        E = list(R[i])
        for c in R[i]:
            if len(np.intersect1d(H[c], R[i])) > 2 / 3 * len(H[c]):
                E.extend(H[c])
        sets.append(E)
    return sets


def reference_jaccard(X, *, method, k1=20, k2=6, modalities=None, cameras=None, self_in_k1=True,
                      k1_intra=5, k1_inter=20, k2_intra=2, k2_inter=4):
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    S = X @ X.T
    allrows = np.arange(n)
    if method in ("vanilla", "modality-qe"):
        width = k1 if self_in_k1 else k1 + 1
        rank = [_order(S[i], allrows)[:width] for i in range(n)]
        V = _weights(S, _expand(rank, k1))
        Vq = np.zeros_like(V)
        for i in range(n):
            cols = rank[i][:k2]
            if method == "vanilla":
                Vq[i] = V[cols].mean(axis=0)
            else:
                groups = [cols[modalities[cols] == g] for g in np.unique(modalities[cols])]
                Vq[i] = np.mean([V[g].mean(axis=0) for g in groups], axis=0)
        return _jaccard(Vq if k2 > 1 else V)
    if method == "modality":
        mods = np.unique(modalities)
        per = k1 // len(mods)
        lists = [[_order(S[i], allrows[modalities == g])[:per] for g in mods] for i in range(n)]
        rank = [_order(S[i], np.concatenate(lists[i])) for i in range(n)]
        V = _weights(S, _expand(rank, k1))
        Vq = np.zeros_like(V)
        for i in range(n):
            Vq[i] = np.mean([V[lst[:k2]].mean(axis=0) for lst in lists[i]], axis=0)
        return _jaccard(Vq if k2 > 1 else V)
    if method == "camera":
        intra = [_order(S[i], allrows[cameras == cameras[i]])[: k1_intra + 1] for i in range(n)]
        inter = [_order(S[i], allrows[cameras != cameras[i]])[: k1_inter + 1] for i in range(n)]
        sets = [_recip(intra, i, k1_intra) + _recip(inter, i, k1_inter) for i in range(n)]
        V = _weights(S, sets)
        Vq = np.stack([V[np.concatenate([intra[i][:k2_intra], inter[i][:k2_inter]])].mean(axis=0) for i in range(n)])
        return _jaccard(Vq)
    raise ValueError(method)
