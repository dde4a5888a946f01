"""The golden Jaccard cases (tests/data/golden_*.npz) as the tests call them: keyword arguments per published
method, the planner's parameters, and a dense view of CSR arrays. Shared by tests/jaccard and tests/knn."""

import numpy as np

from xmrank.jaccard import plan_jaccard

#: xmrank's method -> the golden matrix the published code computed for it.
GOLDEN_KEYS = {
    "vanilla": "cc_vanilla_jaccard",
    "modality": "bmil_modality_aware_jaccard",
    "modality-qe": "bmil_qe_only_jaccard",
    "camera": "caj_full_jaccard",
}


def golden_kwargs(g, key):
    """``jaccard_distance`` keywords that reproduce the golden matrix ``key`` of the case ``g``."""
    k1, k2 = int(g["k1"]), int(g["k2"])
    m = g["modalities"]
    return {
        "cc_vanilla_jaccard": dict(method="vanilla", k1=k1, k2=k2),
        "caj_plain_jaccard": dict(method="vanilla", k1=k1, k2=k2, self_in_k1=False),
        "bmil_modality_aware_jaccard": dict(method="modality", modalities=m, k1=k1, k2=k2),
        "bmil_qe_only_jaccard": dict(method="modality-qe", modalities=m, k1=k1, k2=k2),
        "caj_full_jaccard": dict(method="camera", cameras=m, k1_intra=int(g["caj_k1_intra"]),
                                 k1_inter=int(g["caj_k1_inter"]), k2_intra=int(g["caj_k2_intra"]),
                                 k2_inter=int(g["caj_k2_inter"])),
    }[key]


def golden_params(g):
    """Every planning and run parameter of the case ``g`` (faiss kNN, CPU, sparse output)."""
    return dict(k1=int(g["k1"]), k2=int(g["k2"]), k1_intra=int(g["caj_k1_intra"]), k1_inter=int(g["caj_k1_inter"]),
                k2_intra=int(g["caj_k2_intra"]), k2_inter=int(g["caj_k2_inter"]), self_in_k1=True, knn="faiss",
                device="cpu", dense=False, max_distance=None, n_jobs=None, progress=None)


def golden_plan(g, method):
    """The ``JaccardPlan`` of the case ``g`` for ``method``."""
    m = g["modalities"]
    p = {k: v for k, v in golden_params(g).items() if k not in ("dense", "max_distance", "n_jobs", "progress")}
    return plan_jaccard(g["X"], modalities=m, cameras=m, method=method, **p)


def dense_rows(ptr, idx, val, n):
    """CSR arrays as a dense ``n x n`` float32 matrix, unstored entries 1."""
    D = np.ones((n, n), dtype=np.float32)
    D[np.repeat(np.arange(n), np.diff(ptr)), idx] = val
    return D
