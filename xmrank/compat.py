"""Drop-in replacements for the Jaccard and re-ranking functions that ReID code pastes in.

Swap one import line and get the same matrix, faster and without the dense
intermediates::

    # from utils.faiss_rerank import compute_jaccard_distance
    from xmrank.compat import compute_jaccard_distance

    # from torchreid.utils import re_ranking
    from xmrank.compat import re_ranking

    # from gnn_reranking import gnn_reranking   (GPU-Re-Ranking, CUDA extension)
    from xmrank.compat import gnn_reranking

All accept numpy arrays and torch tensors (CPU or CUDA; torch is
never imported unless a tensor is passed) and return a dense N x N numpy
array, as the originals do. The search-engine arguments of the originals
(``search_option`` 0-3: faiss GPU/CPU variants) only choose where the exact
search runs; xmrank always runs an exact search, so they give the same result.
"""

from __future__ import annotations

import logging

import numpy as np

from ._validation import InputError, check_features, check_int, check_label_values, check_real, plain
from .jaccard import jaccard_distance

logger = logging.getLogger(__name__)

__all__ = ["compute_jaccard_distance", "compute_jaccard_distance_xmodal", "re_ranking", "gnn_reranking"]


def _finish(D: np.ndarray, use_float16: bool) -> np.ndarray:
    return D.astype(np.float16) if use_float16 else D


def compute_jaccard_distance(target_features, k1=20, k2=6, print_flag=True, search_option=0, use_float16=False):
    """cluster-contrast's ``compute_jaccard_distance``, same signature and result.

    Parameters
    ----------
    target_features : ndarray or torch.Tensor, shape (N, d)
    k1, k2 : int, default=20, 6
    print_flag : bool, default=True
        Logged at INFO level instead of printed.
    search_option : int, default=0
        Accepted for compatibility; the search is always exact.
    use_float16 : bool, default=False
        Return float16, as the original's matrices are then.

    Returns
    -------
    jaccard_dist : ndarray of shape (N, N)
    """
    check_int(search_option, "search_option", minimum=0)
    D = jaccard_distance(target_features, method="vanilla", k1=k1, k2=k2, dense=True, progress=False)
    D = _finish(D, use_float16)
    if print_flag:
        logger.info("Jaccard distance computed for %d rows (xmrank, vanilla)", D.shape[0])
    return D


def compute_jaccard_distance_xmodal(target_features, k1=20, k2=6, print_flag=True, search_option=0,
                                    use_float16=False, all_file_name=None, rgbNum=0):
    """BMIL's ``compute_jaccard_distance_xmodal``, same signature and result.

    Parameters
    ----------
    target_features : ndarray or torch.Tensor, shape (N, d)
        The first ``rgbNum`` rows are visible, the rest infrared.
    k1, k2 : int, default=20, 6
    print_flag : bool, default=True
    search_option : int, default=0
        ``>= 4``: the modality-aware Jaccard (``k1 // 2`` neighbours per
        modality, balanced expansion), modalities from ``rgbNum``.
        ``0-3``: global neighbour lists with modality-balanced query
        expansion only, modalities read from ``all_file_name`` (names
        containing ``"ir_modify"`` are infrared, ``"rgb_modify"`` visible).
    use_float16 : bool, default=False
    all_file_name : sequence of str, default=None
        Needed when ``search_option < 4``.
    rgbNum : int, default=0
        Number of visible rows (they come first); needed when ``search_option >= 4``.

    Returns
    -------
    jaccard_dist : ndarray of shape (N, N)
    """
    X = check_features(target_features, "target_features")
    n = X.shape[0]
    search_option = check_int(search_option, "search_option", minimum=0)
    if search_option >= 4:
        rgb = check_int(rgbNum, "rgbNum", minimum=1, maximum=n - 1)
        modalities = np.repeat([0, 1], [rgb, n - rgb])
        D = jaccard_distance(X, modalities=modalities, method="modality", k1=k1, k2=k2, dense=True, progress=False)
    else:
        if all_file_name is None or isinstance(all_file_name, (str, bytes)) or np.ndim(all_file_name) != 1:
            raise InputError(
                f"all_file_name must list one file name per row ({n}) when search_option < 4 (the published "
                f"default is 0); got {'None' if all_file_name is None else type(all_file_name).__name__}. "
                f"For the modality-aware distance with the first rgbNum rows visible, pass search_option=5 and rgbNum."
            )
        names = check_label_values(all_file_name, "all_file_name", n, what="row", word="file name")
        if names.dtype.kind != "U":
            raise InputError(f"all_file_name must hold file names (strings); got dtype {names.dtype}.")
        is_ir = np.char.find(names, "ir_modify") >= 0
        is_rgb = np.char.find(names, "rgb_modify") >= 0
        if not np.all(is_ir ^ is_rgb):
            bad = int(np.flatnonzero(~(is_ir ^ is_rgb))[0])
            raise InputError(
                f"all_file_name[{bad}] = {plain(names[bad])} contains neither 'ir_modify' nor 'rgb_modify' (or both)."
            )
        D = jaccard_distance(X, modalities=is_ir.astype(np.int64), method="modality-qe", k1=k1, k2=k2, dense=True,
                             progress=False)
    if print_flag:
        logger.info("Jaccard distance computed for %d rows (xmrank, cross-modal)", n)
    return _finish(D, use_float16)


def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """torchreid's ``re_ranking`` (Zhong et al., CVPR 2017), same signature and result, sparse inside.

    Parameters
    ----------
    q_g_dist : ndarray or torch.Tensor, shape (n_query, n_gallery)
        Query x gallery distances (torchreid passes Euclidean distances).
    q_q_dist : ndarray or torch.Tensor, shape (n_query, n_query)
    g_g_dist : ndarray or torch.Tensor, shape (n_gallery, n_gallery)
        Non-negative and finite.
    k1 : int, default=20
        Forward list length: each row's ``k1 + 1`` nearest rows, itself included.
    k2 : int, default=6
        Query expansion over each row's first ``k2`` neighbours; 1 disables it.
    lambda_value : float in [0, 1], default=0.3
        Weight of the original distance.

    Returns
    -------
    final_dist : ndarray of float32, shape (n_query, n_gallery)
        ``(1 - lambda_value) * jaccard + lambda_value * original``.

    Raises
    ------
    xmrank.InputError
        Non-square ``q_q_dist``/``g_g_dist``, shapes that disagree, NaN,
        infinite or negative distances, ``k1 >= n_query + n_gallery``,
        ``k2 > n_query + n_gallery``, ``lambda_value`` outside [0, 1].

    Notes
    -----
    Exactly what torchreid computes: the three blocks form one
    (n_query + n_gallery)² matrix whose entries are squared and whose rows
    are each divided by their maximum ("original"); forward lists have
    ``k1 + 1`` columns, the 2/3 expansion uses ``round(k1 / 2) + 1``; the
    weights are ``exp(-original)`` normalised over each set; query expansion
    averages the weight rows of the first ``k2`` neighbours; the Jaccard
    term is computed for query rows only. The result matches torchreid's to
    1e-5 (``tests/compat/test_compat_rerank.py``, on torchreid's own output);
    neighbour orders can differ only between exactly tied distances.

    torchreid builds five (n_query + n_gallery)² arrays and a full argsort
    (about 20 GB at 10,000 queries x 20,000 gallery items, float32); this
    version reads the blocks a few rows at a time and keeps neighbour lists
    only, so its memory is the inputs, the output and
    O((n_query + n_gallery) · k1 · k2). torch tensors are read on the CPU
    (CUDA tensors are copied to the host first).

    Examples
    --------
    >>> import numpy as np
    >>> from xmrank.compat import re_ranking
    >>> rng = np.random.default_rng(0)
    >>> q, g = rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    >>> dist = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    >>> re_ranking(dist(q, g), dist(q, q), dist(g, g), k1=10, k2=3).shape
    (30, 50)
    """
    from .retrieval._distances import check_blocks, zhong_rerank

    blocks = check_blocks(q_g_dist, q_q_dist, g_g_dist)
    n = blocks.n
    k1 = check_int(k1, "k1", minimum=1)
    if k1 >= n:
        raise InputError(f"k1={k1} must be smaller than n_query + n_gallery = {n} (each list holds k1 + 1 rows).")
    k2 = check_int(k2, "k2", minimum=1, maximum=n)
    lam = check_real(lambda_value, "lambda_value", low=0.0, high=1.0)
    return zhong_rerank(blocks.transposed(), k1, k2, lam)


def gnn_reranking(X_q, X_g, k1, k2, lamb=0.3, *, return_similarity=False, n_jobs=-1, device="cpu"):
    """GNN re-ranking (Zhang et al.), the published ``gnn_reranking``'s signature and result, sparse, no CUDA build.

    Parameters
    ----------
    X_q : ndarray or torch.Tensor, shape (n_query, d)
    X_g : ndarray or torch.Tensor, shape (n_gallery, d)
        L2-normalised embeddings, as the published code expects (used as given).
    k1 : int
        Neighbour-list length over query ∪ gallery, each row itself included (the published
        Market-1501 setting is 26), ``1 <= k1 <= n_query + n_gallery``.
    k2 : int
        Propagation length (the published 7), ``1 <= k2 <= k1``; 1 skips the propagation.
    lamb : float in [0, 1], default=0.3
        Weight of the original similarity ``Q Gᵀ`` in the result.
    return_similarity : bool, default=False
        Also return the query x gallery similarity matrix the ranking sorts.
    n_jobs : int or None, default=-1
        Threads, scikit-learn's meaning (-1: all cores).
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        "cuda": the search and the graph on the GPU (the graph by torch.sparse;
        experimental, see :func:`xmrank.retrieval.gnn._torch_similarity`).

    Returns
    -------
    ranking : ndarray of int64, shape (n_query, n_gallery)
        Gallery indices of each query, most similar first: ``argsort(-similarity)``, what the
        published function returns (exactly tied similarities in an unspecified order, as
        the published ``torch.sort``).
    similarity : ndarray of float32, shape (n_query, n_gallery)
        Only with ``return_similarity=True``:
        ``(1 − lamb) · A[q] A[g]ᵀ + lamb · X_q X_gᵀ``.

    Raises
    ------
    xmrank.InputError
        NaN or infinite features, feature widths that differ, ``k1`` outside
        ``[1, n_query + n_gallery]``, ``k2`` outside ``[1, k1]``, ``lamb`` outside [0, 1].

    Notes
    -----
    The published code (layumi/Person_reID_baseline_pytorch ``GPU-Re-Ranking/``; see
    :mod:`xmrank.retrieval.gnn` for its four steps) builds five dense
    (n_query + n_gallery)² matrices on the GPU. Here the neighbour lists come
    from xmrank's exact kNN search (faiss or bfloat16 candidates, exactly
    re-scored: ties by the smaller index), the adjacency stays sparse and only
    the query x gallery block is computed, on the CPU. The similarities match
    the published code's to 1e-5 and the rankings match except between
    similarities tied in float32 (``tests/retrieval/test_gnn_rerank.py``, on the
    published code's own output).

    Examples
    --------
    >>> import numpy as np
    >>> from xmrank.compat import gnn_reranking
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 16)).astype("float32")
    >>> X /= np.linalg.norm(X, axis=1, keepdims=True)
    >>> ranking, sim = gnn_reranking(X[:30], X[30:], k1=10, k2=3, return_similarity=True)
    >>> ranking.shape, sim.shape
    ((30, 50), (30, 50))
    """
    from ._params import PARAMS
    from .backend import resolve_device
    from .knn import knn_search
    from .retrieval.gnn import check_gnn_lengths, gnn_similarity

    Q = check_features(X_q, "X_q", min_rows=1)
    G = check_features(X_g, "X_g", min_rows=1)
    if Q.shape[1] != G.shape[1]:
        raise InputError(f"X_q and X_g must have the same number of features; got {Q.shape[1]} and {G.shape[1]}.")
    k1 = check_int(k1, "k1", minimum=1)
    k2 = check_int(k2, "k2", minimum=1)
    lam = check_real(lamb, "lamb", low=0.0, high=1.0)
    if not isinstance(return_similarity, (bool, np.bool_)):
        raise InputError(f"return_similarity must be True or False; got {plain(return_similarity)}.")
    n_jobs = PARAMS["n_jobs"](n_jobs)
    on_gpu = resolve_device(device) == "cuda"
    U = np.concatenate([Q, G], axis=0)
    check_gnn_lengths(k1, k2, U.shape[0])
    sims, rank = knn_search(U, U, k1, device=device)
    S = Q @ G.T
    prop_idx, prop_w = np.ascontiguousarray(rank[:, :k2]), np.square(sims[:, :k2])
    sim = gnn_similarity(rank, prop_idx, prop_w, Q.shape[0], base=S, lam=lam, propagate=k2 != 1, n_jobs=n_jobs,
                         device=device if on_gpu else "cpu")
    ranking = _ranking(sim, n_jobs)
    return (ranking, sim) if return_similarity else ranking


def _ranking(sim: np.ndarray, n_jobs: int) -> np.ndarray:
    """``argsort(-sim, axis=1)`` in blocks of rows over ``n_jobs`` threads (numpy's sort releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty(sim.shape, dtype=np.int64)
    step = max(1, min(256, -(-sim.shape[0] // max(1, n_jobs))))

    def rows(lo):
        out[lo:lo + step] = np.argsort(-sim[lo:lo + step], axis=1)

    with ThreadPoolExecutor(max(1, n_jobs)) as pool:
        list(pool.map(rows, range(0, sim.shape[0], step)))
    return out
