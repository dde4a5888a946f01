"""xmrank.rerank and original_distance: definition, limits, blocks, and the cross-modal gain."""

import sys
import tracemalloc

import numpy as np
import pytest

import xmrank
from xmrank import InputError
from xmrank.retrieval import evaluate, original_distance, rerank

rerank_mod = sys.modules["xmrank.retrieval.rerank"]  # the module, not the function of the same name


def cross_modal_set(n_ids=60, per_id=4, gap=1.5, noise=1.0, dim=32, seed=0):
    """Identity centres + one offset per modality + noise, unit rows; modality 1 = query side."""
    from xmrank.datasets import make_cross_modal

    X, ids, mods = make_cross_modal(n_ids, per_id, gap=gap, noise=noise, dim=dim, seed=seed)
    q, g = mods == 1, mods == 0
    return X[q], X[g], ids[q], ids[g]


@pytest.fixture(scope="module")
def data():
    return cross_modal_set()


def unit(rng, n, d):
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_shape_dtype_range(data):
    Q, G, _, _ = data
    D = rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    assert D.shape == (len(Q), len(G)) and D.dtype == np.float32
    assert D.min() >= 0.0 and D.max() <= 1.0 + 1e-6


def test_lambda_one_is_the_original_distance_and_the_cosine_ranking(data):
    Q, G, _, _ = data
    D = rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=10, lambda_value=1.0)
    np.testing.assert_allclose(D, original_distance(Q, G), atol=1e-6)
    cos_order = np.argsort(-(Q @ G.T), axis=1, kind="stable")
    # same order up to float32 rounding: compare the ranked similarities, not the indices
    np.testing.assert_allclose(
        np.take_along_axis(Q @ G.T, np.argsort(D, axis=1, kind="stable"), axis=1),
        np.take_along_axis(Q @ G.T, cos_order, axis=1),
        atol=1e-5,
    )


@pytest.mark.parametrize("method", ["vanilla", "modality", "camera"])
def test_is_the_mix_of_the_core_jaccard_block_and_the_original(data, method):
    Q, G, _, _ = data
    nq = len(Q)
    X = np.vstack([Q, G])
    mods = np.repeat([1, 0], [nq, len(G)])
    cams = np.concatenate([np.arange(nq) % 2 + 3, np.arange(len(G)) % 2 + 1])
    kw = dict(method=method, k1=12, k2=3)
    J = xmrank.jaccard_distance(X, modalities=mods, cameras=cams, dense=True, **kw)[:nq, nq:]
    O = original_distance(Q, G)
    for lam in (0.0, 0.3, 0.7):
        D = rerank(Q, G, query_modalities=1, gallery_modalities=0, query_cameras=cams[:nq], gallery_cameras=cams[nq:],
                   lambda_value=lam, **kw)
        np.testing.assert_allclose(D, (1 - lam) * J + lam * O, atol=1e-6)


def test_original_distance_definition():
    rng = np.random.default_rng(1)
    Q = rng.standard_normal((7, 5)).astype(np.float32)  # not normalised: true squared Euclidean
    G = rng.standard_normal((9, 5)).astype(np.float32)
    sq = ((Q[:, None, :] - G[None]) ** 2).sum(-1)
    qq = ((Q[:, None, :] - Q[None]) ** 2).sum(-1)
    np.testing.assert_allclose(original_distance(Q, G), sq / sq.max(1, keepdims=True), rtol=1e-4, atol=1e-5)
    union = sq / np.maximum(sq.max(1), qq.max(1))[:, None]
    np.testing.assert_allclose(original_distance(Q, G, normalize="union"), union, rtol=1e-4, atol=1e-5)
    # unit rows: 2 - 2 q.g over its row maximum, and every row's farthest gallery item is at 1
    Qu, Gu = unit(rng, 6, 5), unit(rng, 8, 5)
    D = original_distance(Qu, Gu)
    ref = 2 - 2 * Qu @ Gu.T
    np.testing.assert_allclose(D, ref / ref.max(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(D.max(1), 1.0)


def test_union_normaliser_agrees_when_the_farthest_item_is_a_gallery_item(data):
    Q, G, _, _ = data  # cross-modal: every query's farthest item is on the other side
    np.testing.assert_allclose(original_distance(Q, G, normalize="union"), original_distance(Q, G), atol=1e-6)
    rng = np.random.default_rng(2)
    A, B = unit(rng, 20, 4), unit(rng, 20, 4)
    assert np.all(original_distance(A, B, normalize="union") <= original_distance(A, B) + 1e-6)


def test_blocks_give_the_same_result(data, monkeypatch):
    Q, G, _, _ = data
    whole = [original_distance(Q, G, normalize=n) for n in ("gallery", "union")]
    monkeypatch.setattr(rerank_mod, "_BLOCK_ENTRIES", 3 * (len(Q) + len(G)))
    for n, ref in zip(("gallery", "union"), whole):
        np.testing.assert_allclose(original_distance(Q, G, normalize=n), ref, atol=1e-6)


def test_scatter_chunks_give_the_same_result(data, monkeypatch):
    Q, G, _, _ = data
    whole = rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    monkeypatch.setattr(rerank_mod, "_SCATTER_ENTRIES", 37)
    np.testing.assert_array_equal(rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=10, k2=3), whole)


def test_scalar_labels_equal_per_row_labels(data):
    Q, G, _, _ = data
    a = rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    b = rerank(Q, G, query_modalities=np.ones(len(Q), int), gallery_modalities=np.zeros(len(G), int), k1=10, k2=3)
    c = rerank(Q, G, query_modalities="ir", gallery_modalities="rgb", k1=10, k2=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_auto_picks_modality_when_modalities_are_given(data):
    Q, G, _, _ = data
    a = rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    b = rerank(Q, G, query_modalities=1, gallery_modalities=0, method="modality", k1=10, k2=3)
    c = rerank(Q, G, k1=10, k2=3)  # no labels: vanilla
    d = rerank(Q, G, method="vanilla", k1=10, k2=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c, d)


def test_modality_aware_beats_vanilla_with_several_images_per_identity(data):
    Q, G, q_ids, g_ids = data
    cos = evaluate(-(Q @ G.T), q_ids, g_ids, protocol="regdb")
    van = evaluate(rerank(Q, G, method="vanilla"), q_ids, g_ids, protocol="regdb")
    mod = evaluate(rerank(Q, G, query_modalities=1, gallery_modalities=0), q_ids, g_ids, protocol="regdb")
    # vanilla lists hold only same-side rows: the Jaccard block is all 1 and re-ranking changes nothing
    assert van["mAP"] == pytest.approx(cos["mAP"])
    assert mod["mAP"] > van["mAP"] + 0.1
    assert mod["cmc"][0] > van["cmc"][0]


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_allocates_only_the_query_gallery_block_beyond_the_core_jaccard():
    Q, G, _, _ = cross_modal_set(n_ids=150, per_id=4)
    X = np.vstack([Q, G])
    mods = np.repeat([1, 0], [len(Q), len(G)])
    rerank(Q[:50], G[:50], query_modalities=1, gallery_modalities=0)  # compile outside the measurement
    block = len(Q) * len(G) * 4
    core = peak_bytes(lambda: xmrank.jaccard_distance(X, modalities=mods, k1=20, k2=6))
    ours = peak_bytes(lambda: rerank(Q, G, query_modalities=1, gallery_modalities=0))
    assert ours < core + 3 * block
    # the original distance alone holds the q x g output and nothing of size (n_q + n_g)^2
    assert peak_bytes(lambda: original_distance(Q, G)) < 1.5 * block < 0.5 * len(X) ** 2 * 4


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gallery=np.zeros((5, 3), np.float32)), "same number of features; got 4 and 3"),
        (dict(query_modalities=1), "query_modalities and gallery_modalities must be given together"),
        (dict(query_modalities=np.ones(3), gallery_modalities=0), "query_modalities must be one label or one label per query row \\(6\\)"),
        (dict(query_cameras=1, gallery_cameras=np.ones(2)), "gallery_cameras must be one label or one label per gallery row"),
        (dict(query_modalities=1, gallery_modalities="rgb"), "both be numbers or both be strings"),
        (dict(lambda_value=1.5), "lambda_value must be <= 1.0"),
        (dict(method="zhong"), "Unknown method 'zhong'"),
        (dict(normalize="column"), "Unknown normalize 'column'"),
        (dict(query=np.full((6, 4), np.nan, np.float32)), "query contains 24 NaN"),
        (dict(query=np.zeros(4, np.float32)), "query must be a 2-D array"),
        (dict(k1=50), "k1"),
    ],
)
def test_bad_input(kwargs, message):
    rng = np.random.default_rng(0)
    args = dict(query=unit(rng, 6, 4), gallery=unit(rng, 5, 4))
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        rerank(args.pop("query"), args.pop("gallery"), **{"k1": 4, "k2": 2, **args})
