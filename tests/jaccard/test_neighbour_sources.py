"""One planning stage: the planners read a neighbour source (feature kNN or precomputed distance blocks)."""

import numpy as np
import pytest

from xmrank.jaccard import NumbaExecutor, jaccard_distance, plan_jaccard, run_stages
from xmrank.jaccard.neighbors import FeatureNeighbours, NeighbourSource, as_source
from xmrank.jaccard.plan import build_plan, check_request
from xmrank.jaccard.stages import QueryGalleryExecutor, to_output
from xmrank.retrieval import _distances
from xmrank.retrieval._distances import DistanceBlocks

from conftest import assert_same_sparse, unit_rows

X, MODS = unit_rows(240, 12, seed=3, n_ids=30, gap=0.4)
CAMS = np.arange(240) % 3
NQ = 90

KW = {
    "vanilla": dict(method="vanilla", k1=12, k2=4),
    "modality": dict(method="modality", modalities=MODS, k1=12, k2=4),
    "modality-qe": dict(method="modality-qe", modalities=MODS, k1=12, k2=4),
    "camera": dict(method="camera", cameras=CAMS, k1_intra=4, k1_inter=10, k2_intra=2, k2_inter=3),
    "modality-camera": dict(method="modality-camera", modalities=MODS, cameras=CAMS, k1=12, k2=4),
}


def euclid(A, B):
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T
    return np.sqrt(np.maximum(sq, 0))


def request_for(method):
    args = dict(modalities=None, cameras=None, k1=30, k2=6, k1_intra=5, k1_inter=20, k2_intra=2, k2_inter=4)
    args.update(KW[method])
    return check_request(len(X), self_in_k1=True, knn="numpy", device="cpu", **args)


def distance_blocks():
    Q, G = X[:NQ].astype(np.float64), X[NQ:].astype(np.float64)
    return DistanceBlocks(euclid(Q, G), euclid(Q, Q), euclid(G, G))


def test_both_sources_follow_the_protocol():
    assert isinstance(FeatureNeighbours(X), NeighbourSource)
    assert isinstance(distance_blocks(), NeighbourSource)
    assert isinstance(as_source(X), FeatureNeighbours)
    blocks = distance_blocks()
    assert as_source(blocks) is blocks
    assert not hasattr(_distances, "_PLANS")  # one set of planners: xmrank.jaccard.plan's


@pytest.mark.parametrize("method", list(KW))
def test_distance_blocks_give_the_feature_plan(method):
    """The same planner on either source: the same lists, sets and expansion (unit rows, no exact ties)."""
    request = request_for(method)
    a = build_plan(X, request)
    b = build_plan(distance_blocks(), request)
    np.testing.assert_array_equal(a.rank, b.rank)
    np.testing.assert_array_equal(a.reciprocal, b.reciprocal)
    assert (a.expansion is None) == (b.expansion is None)
    if a.expansion is not None:
        assert abs(a.expansion - b.expansion).max() == 0
    np.testing.assert_allclose(-b.sims, 2 - 2 * a.sims, atol=1e-5)  # scores: -d² against x·y


@pytest.mark.parametrize("method", list(KW))
def test_query_gallery_executor_is_the_query_gallery_block_of_the_full_stages(method):
    plan = plan_jaccard(X, **KW[method])
    full = to_output(*run_stages(X, plan, NumbaExecutor(2)), len(X), dense=True)
    out = np.full((NQ, len(X) - NQ), 0.25, dtype=np.float32)
    got = run_stages(X, plan, QueryGalleryExecutor(out, 0.5, 2))
    assert got is out
    np.testing.assert_allclose(out, 0.25 + 0.5 * (full[:NQ, NQ:] - 1), atol=1e-6)
    # from distance blocks: the same, through the same stages
    blocks = distance_blocks()
    out_d = np.full_like(out, 0.25)
    run_stages(blocks, build_plan(blocks, request_for(method)), QueryGalleryExecutor(out_d, 0.5, 2))
    np.testing.assert_allclose(out_d, out, atol=1e-5)


def test_a_new_neighbour_source_plugs_in():
    """Any object with n, ranked, ranked_groups and softmax_weights is planned and run like features."""
    calls = []

    class Recording(FeatureNeighbours):
        def ranked(self, k, *, rows=None, cols=None, k_read=1):
            calls.append(("ranked", k))
            return super().ranked(k, rows=rows, cols=cols, k_read=k_read)

        def ranked_groups(self, codes, n_groups, k, *, k_read=1):
            calls.append(("ranked_groups", k))
            return super().ranked_groups(codes, n_groups, k, k_read=k_read)

    source = Recording(X, knn="numpy")
    request = request_for("modality")
    out = run_stages(source, build_plan(source, request), NumbaExecutor(2))
    assert calls == [("ranked_groups", 6)]
    assert_same_sparse(to_output(*out, len(X), dense=False), jaccard_distance(X, knn="numpy", **KW["modality"]))


def test_rerank_from_distances_refuses_a_dense_result_that_cannot_fit(monkeypatch):
    import xmrank
    from xmrank.compat import re_ranking

    blocks = distance_blocks()
    D = (blocks.qg, blocks.qq, blocks.gg)
    monkeypatch.setenv("XMRANK_MEMORY_LIMIT", "20K")
    with pytest.raises(xmrank.OutputTooLarge, match="re-ranked distance matrix"):
        xmrank.rerank(distances=D, method="vanilla", k1=10, k2=3)
    with pytest.raises(xmrank.OutputTooLarge, match="re-ranked distance matrix"):
        re_ranking(*D, k1=10, k2=3)
