"""GNN re-ranking (Zhang et al.): the published result to 1e-5, xmrank's neighbour rules, camera weights, bad input."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import xmrank
from reference_gnn import dense_gnn_reranking
from xmrank import InputError
from xmrank.compat import gnn_reranking
from xmrank.retrieval import gnn
from xmrank.retrieval.rerank import auto_k

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "gnn_rerank.npz"
SETTINGS = [(26, 7, 0.3), (12, 4, 0.0), (20, 1, 0.3)]


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


def euclid(A, B):
    return np.sqrt(np.maximum(2.0 - 2.0 * A @ B.T, 0.0)).astype(np.float32)


def two_modalities(nq=60, ng=90, d=24, n_ids=15, gap=0.8, seed=0):
    """Unit rows of two modalities with a modality offset: queries modality 1, gallery modality 0."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d))
    offset = rng.standard_normal((2, d))
    offset *= gap / np.linalg.norm(offset, axis=1, keepdims=True)

    def rows(n, m):
        ids = rng.integers(0, n_ids, n)
        X = centres[ids] + 0.8 * rng.standard_normal((n, d)) + offset[m] * np.sqrt(d) / 3
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), ids

    (Q, qi), (G, gi) = rows(nq, 1), rows(ng, 0)
    return Q, G, qi, gi


def same_order_up_to_ties(sim_ref, ranking_ref, ranking):
    """Both rankings read the reference similarities in the same order: they differ only inside exact ties."""
    return np.array_equal(np.take_along_axis(sim_ref, ranking, 1), np.take_along_axis(sim_ref, ranking_ref, 1))


@pytest.mark.parametrize("case", ["a", "b"])
@pytest.mark.parametrize("k1, k2, lamb", SETTINGS)
def test_compat_matches_the_published_output(golden, case, k1, k2, lamb):
    key = f"{case}_k1{k1}_k2{k2}_l{lamb}"
    ranking, sim = gnn_reranking(golden[f"{case}_query"], golden[f"{case}_gallery"], k1, k2, lamb,
                                 return_similarity=True)
    ref_sim, ref_rank = golden[key + "_similarity"], golden[key + "_ranking"]
    assert sim.dtype == np.float32 and sim.shape == ref_sim.shape
    assert np.abs(sim - ref_sim).max() <= 1e-5
    assert same_order_up_to_ties(ref_sim, ref_rank, ranking)
    if lamb > 0:  # the cosine term breaks the ties of the graph term: the rankings are equal
        np.testing.assert_array_equal(ranking, ref_rank)
    np.testing.assert_array_equal(gnn_reranking(golden[f"{case}_query"], golden[f"{case}_gallery"], k1, k2, lamb),
                                  ranking)


def test_default_lambda_is_the_published_one(golden):
    ranking = gnn_reranking(golden["b_query"], golden["b_gallery"], 26, 7)
    np.testing.assert_array_equal(ranking, golden["b_k126_k27_l0.3_ranking"])


def test_the_dense_port_is_the_published_code(golden):
    """The benchmark's dense baseline reproduces the golden output too."""
    _, sim = dense_gnn_reranking(golden["b_query"], golden["b_gallery"], 26, 7, 0.3)
    assert np.abs(sim - golden["b_k126_k27_l0.3_similarity"]).max() <= 1e-5


@pytest.mark.parametrize("k1, k2, lamb", SETTINGS)
def test_rerank_gnn_vanilla_is_the_negated_published_similarity(golden, k1, k2, lamb):
    Q, G = golden["a_query"], golden["a_gallery"]
    ref = golden[f"a_k1{k1}_k2{k2}_l{lamb}_similarity"]
    D = xmrank.rerank(Q, G, method="vanilla", algorithm="gnn", k1=k1, k2=k2, lambda_value=lamb)
    assert D.dtype == np.float32 and np.abs(-D - ref).max() <= 1e-5
    if lamb > 0:
        np.testing.assert_array_equal(np.argsort(D, axis=1, kind="stable"), golden[f"a_k1{k1}_k2{k2}_l{lamb}_ranking"])
    D2 = xmrank.rerank(distances=(euclid(Q, G), euclid(Q, Q), euclid(G, G)), method="vanilla", algorithm="gnn",
                       k1=k1, k2=k2, lambda_value=lamb)
    assert np.abs(D2 - D).max() <= 1e-5


def _labels(nq, ng):
    cams = np.arange(nq + ng) % 3
    return dict(query_modalities=1, gallery_modalities=0, query_cameras=cams[:nq], gallery_cameras=cams[nq:])


@pytest.mark.parametrize("method", ["modality", "modality-qe", "camera", "modality-camera"])
def test_rules_from_distances_equal_rules_from_features(method):
    Q, G, _, _ = two_modalities()
    kw = dict(method=method, algorithm="gnn", k1=12, k2=3, k1_intra=3, k1_inter=8, k2_intra=2, k2_inter=3,
              **_labels(len(Q), len(G)))
    D = xmrank.rerank(Q, G, **kw)
    D2 = xmrank.rerank(distances=(euclid(Q, G), euclid(Q, Q), euclid(G, G)), **kw)
    assert np.abs(D - D2).max() <= 1e-5


def test_modality_rule_balances_the_propagation_per_modality():
    Q, G, _, _ = two_modalities()
    X = np.concatenate([Q, G])
    mods = np.repeat([1, 0], [len(Q), len(G)])
    plan = xmrank.jaccard.plan_jaccard(X, modalities=mods, method="modality", k1=12, k2=4)
    idx, w = gnn.propagation_lists("modality", plan.rank, plan.sims, k2=4, mod_codes=mods)
    assert idx.shape == (len(X), 8)
    for m in (0, 1):  # four rows of each modality, the first four of that modality in the merged list
        cols = mods[idx] == m
        assert (cols.sum(1) == 4).all()
        np.testing.assert_allclose(np.where(cols, w, 0).sum(1), 0.5, atol=1e-6)
    i = 5
    first = [r for r in plan.rank[i] if mods[r] == 0][:4]
    np.testing.assert_array_equal(idx[i][mods[idx[i]] == 0], first)
    ratio = w[i][mods[idx[i]] == 0] / (plan.sims[i][np.isin(plan.rank[i], first)] ** 2)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)  # within a modality: proportional to S²


@pytest.mark.parametrize("method, camera_weight", [("modality", None), ("modality", 0.5), ("vanilla", 0.3),
                                                   ("camera", None)])
def test_sparse_equals_the_dense_steps_on_xmranks_lists(method, camera_weight):
    """The same dense steps as the published code, fed xmrank's lists, weights and CEIL's adjacency values."""
    Q, G, _, _ = two_modalities(nq=40, ng=70)
    X = np.concatenate([Q, G])
    labels = _labels(len(Q), len(G))
    mods = np.repeat([1, 0], [len(Q), len(G)])
    cams = np.concatenate([labels["query_cameras"], labels["gallery_cameras"]])
    kw = dict(k1=10, k2=3, k1_intra=3, k1_inter=8, k2_intra=2, k2_inter=3)
    plan = xmrank.jaccard.plan_jaccard(X, modalities=mods, cameras=cams, method=method, **kw)
    idx, w = gnn.propagation_lists(method, plan.rank, plan.sims, k2=3, mod_codes=mods, k1_intra=3, k2_intra=2,
                                   k2_inter=3)
    adj = None if camera_weight is None else gnn.camera_adjacency_weights(plan.rank, cams, camera_weight)
    _, ref = dense_gnn_reranking(Q, G, None, 3, 0.3, rank=plan.rank, prop_idx=idx, prop_w=w, adjacency=adj)
    D = xmrank.rerank(Q, G, method=method, algorithm="gnn", camera_weight=camera_weight, **kw, **labels)
    assert np.abs(-D - ref).max() <= 1e-5


def test_camera_weights_change_the_graph_and_one_is_off():
    Q, G, _, _ = two_modalities()
    labels = _labels(len(Q), len(G))
    kw = dict(method="vanilla", algorithm="gnn", k1=12, k2=3, **labels)
    plain = xmrank.rerank(Q, G, **kw)
    np.testing.assert_array_equal(xmrank.rerank(Q, G, camera_weight=1.0, **kw), plain)
    assert np.abs(xmrank.rerank(Q, G, camera_weight=0.5, **kw) - plain).max() > 1e-3


def test_modality_rule_links_the_modalities_where_vanilla_cannot():
    """Queries of one modality, gallery of the other, a gap larger than the identity spread: vanilla lists hold
    one modality only, the graph never links query to gallery and the ranking is lost; per-modality lists keep it."""
    from xmrank.datasets import make_biased

    X, ids, mods = make_biased(30, 8, gap=1.5, seed=0)[:3]
    Q, G, qi, gi = X[mods == 1], X[mods == 0], ids[mods == 1], ids[mods == 0]
    score = lambda D: xmrank.evaluate(D, qi, gi, protocol="regdb")["mAP"]  # noqa: E731
    cosine = score(-(Q @ G.T))
    vanilla = score(xmrank.rerank(Q, G, method="vanilla", algorithm="gnn", k1=12, k2=3, lambda_value=0.0))
    modality = score(xmrank.rerank(Q, G, query_modalities=1, gallery_modalities=0, algorithm="gnn", k1=12, k2=3,
                                   lambda_value=0.0))
    assert vanilla < 0.3 and modality >= cosine - 0.01


def test_auto_lengths_are_the_k_reciprocal_ones():
    Q, G, _, _ = two_modalities()
    side = dict(query_modalities=1, gallery_modalities=0)
    chosen = auto_k(Q, G, **side)
    D = xmrank.rerank(Q, G, algorithm="gnn", k1="auto", k2="auto", **side)
    np.testing.assert_array_equal(D, xmrank.rerank(Q, G, algorithm="gnn", k1=chosen["k1"], k2=chosen["k2"], **side))


@pytest.mark.slow
def test_memory_grows_with_the_lists_not_with_n_squared():
    """Doubling the gallery (200 queries) doubles the peak, output included: a dense N x N step would quadruple it."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200 + 4000, 32)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    gnn_reranking(X[:50], X[50:100], 10, 3)  # kernels loaded
    peaks = []
    for ng in (2000, 4000):
        tracemalloc.start()
        gnn_reranking(X[:200], X[200:200 + ng], 20, 6)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] / peaks[0] < 2.6, peaks
    assert peaks[1] < (4200**2 * 4) / 2, peaks  # below half of ONE dense float32 N x N matrix


# --- bad input: one clear line ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(k1=50, k2=4, method="modality"), r"k1 // 2 modalities.*smallest modality"),
    (dict(k1=12, k2=7, method="modality"), r"k2=7 must not exceed the per-modality list length"),
    (dict(k1=12, k2=3, lambda_value=1.5), r"lambda_value must be <= 1"),
    (dict(k1=12, k2=3, lambda_value=-0.1), r"lambda_value must be >= 0"),
    (dict(k1=12, k2=3, camera_weight=0.5), r"camera_weight needs cameras"),
    (dict(k1=12, k2=3, camera_weight=2.0), r"camera_weight must be <= 1"),
    (dict(k1=12, k2=3, algorithm="graph"), r"algorithm"),
])
def test_rerank_gnn_refuses(kwargs, match):
    Q, G, _, _ = two_modalities(nq=20, ng=40)
    with pytest.raises(InputError, match=match):
        xmrank.rerank(Q, G, query_modalities=1, gallery_modalities=0, algorithm=kwargs.pop("algorithm", "gnn"),
                      **kwargs)


def test_rerank_gnn_refuses_one_modality_and_vanilla_k2_above_k1():
    Q, G, _, _ = two_modalities(nq=20, ng=40)
    with pytest.raises(InputError, match="single modality"):
        xmrank.rerank(Q, G, query_modalities=0, gallery_modalities=0, method="modality", algorithm="gnn", k1=6, k2=2)
    with pytest.raises(InputError, match="k2=8 must not exceed k1=6"):
        xmrank.rerank(Q, G, method="vanilla", algorithm="gnn", k1=6, k2=8)
    with pytest.raises(InputError, match="camera_weight is an option of algorithm='gnn'"):
        xmrank.rerank(Q, G, method="vanilla", k1=6, k2=2, camera_weight=0.5)


def test_nan_features_are_refused():
    Q, G, _, _ = two_modalities(nq=20, ng=40)
    Q[3, 2] = np.nan
    with pytest.raises(InputError, match=r"query contains 1 NaN"):
        xmrank.rerank(Q, G, algorithm="gnn", method="vanilla", k1=6, k2=2)
    with pytest.raises(InputError, match=r"X_q contains 1 NaN"):
        gnn_reranking(Q, G, 6, 2)


@pytest.mark.parametrize("args, match", [
    ((61, 3, 0.3), r"k1=61 must not exceed the number of query \+ gallery rows \(60\)"),
    ((6, 7, 0.3), r"k2=7 must not exceed k1=6"),
    ((6, 2, 1.2), r"lamb must be <= 1"),
    ((0, 1, 0.3), r"k1 must be"),
])
def test_compat_refuses(args, match):
    Q, G, _, _ = two_modalities(nq=20, ng=40)
    with pytest.raises(InputError, match=match):
        gnn_reranking(Q, G, *args)


# --- the torch version (the GPU path): its steps checked on the CPU here, on a GPU where there is one ---

def _torch_case(golden, device):
    pytest.importorskip("torch")
    Q, G = golden["a_query"], golden["a_gallery"]
    U = np.concatenate([Q, G])
    sims, rank = xmrank.knn.knn_search(U, U, 26)
    base = Q @ G.T
    return gnn._torch_similarity(rank, rank[:, :7], sims[:, :7] ** 2, len(Q), base=base, lam=0.3, propagate=True,
                                 adjacency=None, device=device)


@pytest.mark.slow
def test_torch_version_matches_the_published_output_on_the_cpu(golden):
    assert np.abs(_torch_case(golden, "cpu") - golden["a_k126_k27_l0.3_similarity"]).max() <= 1e-5


@pytest.mark.gpu
def test_gpu_version_matches_the_published_output(golden):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    assert np.abs(_torch_case(golden, "cuda") - golden["a_k126_k27_l0.3_similarity"]).max() <= 1e-5
    ranking, sim = gnn_reranking(golden["a_query"], golden["a_gallery"], 26, 7, 0.3, return_similarity=True,
                                 device="cuda")
    assert np.abs(sim - golden["a_k126_k27_l0.3_similarity"]).max() <= 1e-5
