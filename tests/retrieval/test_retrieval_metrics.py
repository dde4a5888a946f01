"""xmrank.evaluate: hand-checked cases, the protocol rules, and a per-query oracle."""

import numpy as np
import pytest

import xmrank.retrieval.metrics as metrics
from xmrank import InputError
from xmrank.retrieval import evaluate


def oracle(distmat, q_ids, g_ids, q_cams, g_cams, protocol, max_rank):
    """A straightforward per-query loop written from the published evaluation code's description."""
    nq, ng = distmat.shape
    max_rank = min(max_rank, ng)
    aps, inps, cmcs = [], [], []
    for i in range(nq):
        order = np.argsort(distmat[i], kind="stable")
        ids = g_ids[order]
        if protocol == "sysu":
            remove = (q_cams[i] == 3) & (g_cams[order] == 2)
        elif protocol == "market":
            remove = (ids == q_ids[i]) & (g_cams[order] == q_cams[i])
        else:
            remove = np.zeros(ng, dtype=bool)
        ids = ids[~remove]
        match = (ids == q_ids[i]).astype(int)
        if not match.any():
            continue
        hits = 0
        precisions = []
        for r, m in enumerate(match, start=1):
            if m:
                hits += 1
                precisions.append(hits / r)
        aps.append(np.mean(precisions))
        last = np.flatnonzero(match).max() + 1
        inps.append(match.sum() / last)
        if protocol == "sysu":
            seen, dedup = set(), []
            for pid in ids:
                if pid not in seen:
                    seen.add(pid)
                    dedup.append(pid)
            first = dedup.index(q_ids[i]) + 1
        else:
            first = np.flatnonzero(match)[0] + 1
        cmcs.append([1.0 if first <= k else 0.0 for k in range(1, max_rank + 1)])
    return np.mean(aps), np.mean(inps), np.mean(cmcs, axis=0), len(aps)


def random_case(rng, nq, ng, n_ids, ties=False):
    D = rng.random((nq, ng))
    if ties:
        D = np.round(D * 4) / 4
    q_ids = rng.integers(0, n_ids + 2, nq)  # some query ids never appear in the gallery
    g_ids = rng.integers(0, n_ids, ng)
    q_cams = rng.choice([3, 6], nq)
    g_cams = rng.choice([1, 2, 4, 5], ng)
    return D, q_ids, g_ids, q_cams, g_cams


@pytest.mark.parametrize("strategy", ["counting", "sorting"])
@pytest.mark.parametrize("protocol", ["sysu", "regdb", "market"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_per_query_oracle(protocol, seed, ties, strategy, monkeypatch):
    monkeypatch.setattr(metrics, "_COUNTING_FACTOR", 1e9 if strategy == "counting" else -1.0)
    rng = np.random.default_rng(seed)
    D, q_ids, g_ids, q_cams, g_cams = random_case(rng, 40, 60, 12, ties)
    if protocol == "market":  # same-camera positives must exist to exercise the rule
        q_cams = rng.choice([1, 2, 4], 40)
        g_cams = rng.choice([1, 2, 4], 60)
    res = evaluate(D, q_ids, g_ids, q_cams, g_cams, protocol=protocol, max_rank=15)
    mAP, mINP, cmc, n_valid = oracle(D, q_ids, g_ids, q_cams, g_cams, protocol, 15)
    assert res["n_valid"] == n_valid
    assert res["n_skipped"] == 40 - n_valid
    assert res["mAP"] == pytest.approx(mAP, abs=1e-12)
    assert res["mINP"] == pytest.approx(mINP, abs=1e-12)
    np.testing.assert_allclose(res["cmc"], cmc, atol=1e-12)


def test_hand_computed_regdb():
    # ranking: pos, neg, pos, neg -> AP = (1/1 + 2/3)/2, INP = 2/3, first positive at rank 1
    D = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.1, 0.3, 0.2]])
    res = evaluate(D, [1, 1], [1, 2, 1, 3], protocol="regdb", max_rank=4)
    # second query ranks 2, 3, 1, 1 -> positives at 3 and 4: AP = (1/3 + 2/4)/2, INP = 2/4
    assert res["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + (1 / 3 + 1 / 2) / 2) / 2)
    assert res["mINP"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    np.testing.assert_allclose(res["cmc"], [0.5, 0.5, 1.0, 1.0])


def test_sysu_drops_cam2_only_for_cam3_queries():
    # the only positive is a camera-2 image: valid for the cam-6 query, removed for the cam-3 query
    D = np.array([[0.5, 0.1], [0.5, 0.1]])
    res = evaluate(D, [7, 7], [7, 8], [3, 6], [2, 1], protocol="sysu")
    assert res["n_valid"] == 1 and res["n_skipped"] == 1
    assert res["mAP"] == pytest.approx(0.5)  # cam-6 query: negative first, positive second


def test_sysu_cmc_is_on_deduplicated_identities_map_is_not():
    # ranking: id 5, id 5, id 5, positive 7 -> raw rank 4, deduplicated rank 2
    D = np.array([[0.1, 0.2, 0.3, 0.4]])
    args = ([7], [5, 5, 5, 7], [6], [1, 4, 5, 1])
    sysu = evaluate(D, *args, protocol="sysu", max_rank=4)
    regdb = evaluate(D, *args, protocol="regdb", max_rank=4)
    np.testing.assert_allclose(sysu["cmc"], [0, 1, 1, 1])
    np.testing.assert_allclose(regdb["cmc"], [0, 0, 0, 1])
    assert sysu["mAP"] == pytest.approx(0.25) == regdb["mAP"]
    assert sysu["mINP"] == pytest.approx(0.25)


def test_sysu_dedup_skips_removed_items():
    # the removed cam-2 items must not count as distinct identities either
    D = np.array([[0.1, 0.2, 0.3, 0.4]])
    res = evaluate(D, [7], [1, 2, 3, 7], [3], [2, 2, 1, 4], protocol="sysu", max_rank=3)
    np.testing.assert_allclose(res["cmc"], [0, 1, 1])
    assert res["mAP"] == pytest.approx(0.5)


def test_market_drops_same_id_same_camera():
    D = np.array([[0.1, 0.2, 0.3]])
    res = evaluate(D, [1], [1, 2, 1], [4], [4, 1, 2], protocol="market", max_rank=3)
    # gallery 0 (same id, same camera) is removed: ranking = neg, pos
    assert res["mAP"] == pytest.approx(0.5)
    np.testing.assert_allclose(res["cmc"], [0, 1, 1])


def test_string_ids_and_cmc_length_cut_at_gallery_size():
    D = np.array([[0.3, 0.1, 0.2]])
    res = evaluate(D, ["a"], ["a", "b", "c"], protocol="regdb", max_rank=20)
    assert res["cmc"].shape == (3,)
    np.testing.assert_allclose(res["cmc"], [0, 0, 1])
    assert 0.0 <= res["mAP"] <= 1.0 and 0.0 <= res["mINP"] <= 1.0


@pytest.mark.parametrize("factor", [1e9, -1.0])
def test_ties_are_broken_by_gallery_index(monkeypatch, factor):
    monkeypatch.setattr(metrics, "_COUNTING_FACTOR", factor)
    D = np.zeros((1, 3))
    res = evaluate(D, [2], [1, 2, 2], protocol="regdb", max_rank=3)
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_many_positives_take_the_sorting_path_and_agree():
    rng = np.random.default_rng(9)
    D, q_ids, g_ids, q_cams, g_cams = random_case(rng, 20, 200, 2)  # ~100 positives per query
    res = evaluate(D, q_ids, g_ids, q_cams, g_cams, protocol="sysu")
    mAP, mINP, cmc, _ = oracle(D, q_ids, g_ids, q_cams, g_cams, "sysu", 20)
    assert res["mAP"] == pytest.approx(mAP) and res["mINP"] == pytest.approx(mINP)
    np.testing.assert_allclose(res["cmc"], cmc)


def test_gallery_permutation_invariance():
    rng = np.random.default_rng(5)
    D, q_ids, g_ids, q_cams, g_cams = random_case(rng, 30, 50, 8)
    perm = rng.permutation(50)
    a = evaluate(D, q_ids, g_ids, q_cams, g_cams, protocol="sysu")
    b = evaluate(D[:, perm], q_ids, g_ids[perm], q_cams, g_cams[perm], protocol="sysu")
    assert a["mAP"] == pytest.approx(b["mAP"])
    np.testing.assert_allclose(a["cmc"], b["cmc"])


@pytest.mark.parametrize("factor", [1e9, -1.0])
def test_query_blocks_give_the_same_result(monkeypatch, factor):
    monkeypatch.setattr(metrics, "_COUNTING_FACTOR", factor)
    rng = np.random.default_rng(6)
    D, q_ids, g_ids, q_cams, g_cams = random_case(rng, 37, 20, 6)
    whole = evaluate(D, q_ids, g_ids, q_cams, g_cams, protocol="sysu")
    monkeypatch.setattr(metrics, "_BLOCK_ENTRIES", 45)  # 2 queries per block
    blocked = evaluate(D, q_ids, g_ids, q_cams, g_cams, protocol="sysu")
    assert blocked["mAP"] == pytest.approx(whole["mAP"])
    assert blocked["mINP"] == pytest.approx(whole["mINP"])
    np.testing.assert_allclose(blocked["cmc"], whole["cmc"])


def test_perfect_and_worst_rankings():
    ids = np.arange(10)
    D = 1.0 - np.eye(10)
    best = evaluate(D, ids, ids, protocol="regdb")
    worst = evaluate(np.eye(10), ids, ids, protocol="regdb")
    assert best["mAP"] == 1.0 and best["mINP"] == 1.0 and best["cmc"][0] == 1.0
    assert worst["mAP"] == pytest.approx(0.1) and worst["cmc"][-1] == 1.0 and worst["cmc"][0] == 0.0


# --- bad input -----------------------------------------------------------------------------

def test_unknown_protocol_lists_valid_ones():
    with pytest.raises(InputError, match="protocol.*'sysu', 'regdb', 'market'"):
        evaluate(np.zeros((1, 2)), [1], [1, 2], protocol="duke")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(query_ids=[1, 2]), "query_ids must have one entry per row of distmat \\(1\\)"),
        (dict(gallery_ids=[1]), "gallery_ids must have one entry per column of distmat \\(2\\)"),
        (dict(query_cams=[3, 3]), "query_cams must have one entry per row"),
        (dict(gallery_cams=[1, 2, 4]), "gallery_cams must have one entry per column"),
        (dict(query_cams=None), "needs query_cams and gallery_cams"),
        (dict(distmat=np.zeros(3)), "distmat must be a non-empty 2-D array"),
        (dict(distmat=np.array([[0.0, np.nan]])), "distmat contains 1 NaN"),
        (dict(query_ids=["a"]), "both be integers or both be strings"),
        (dict(query_cams=[3.5]), "query_cams must hold integer"),
        (dict(max_rank=0), "max_rank must be >= 1"),
    ],
)
def test_bad_input(kwargs, message):
    args = dict(distmat=np.zeros((1, 2)), query_ids=[1], gallery_ids=[1, 2], query_cams=[3], gallery_cams=[1, 4])
    args.update(kwargs)
    D = args.pop("distmat")
    with pytest.raises(InputError, match=message):
        evaluate(D, protocol="sysu", **args)


def test_no_valid_query_is_an_error():
    with pytest.raises(InputError, match="No query has a valid match"):
        evaluate(np.zeros((2, 2)), [1, 2], [3, 4], protocol="regdb")


def test_sparse_distmat_rejected():
    import scipy.sparse as sp

    with pytest.raises(InputError, match="dense array"):
        evaluate(sp.csr_matrix(np.ones((1, 2))), [1], [1, 2], protocol="regdb")


def test_regdb_needs_no_cameras():
    res = evaluate(np.array([[0.2, 0.1]]), [1], [1, 2], protocol="regdb")
    assert res["n_valid"] == 1 and res["cmc"][0] == 0.0
