"""Association baselines: Sinkhorn, Hungarian / OT cluster matching, OT row assignment, refinement."""

import numpy as np
import pytest

import xmrank
from xmrank import InputError, associate, cluster_refined, cluster_scores, match_clusters, refine_labels
from xmrank.association import ASSOCIATIONS, sinkhorn
from xmrank.datasets import make_biased


# ------------------------------------------------------------------ helpers

def _blobs(n_per=6, dim=16, seed=0, gap=1.5, centres=3):
    """``centres`` identities, two modalities, each modality shifted by its own offset."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centres, dim))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    off = np.linalg.qr(rng.standard_normal((dim, 2)))[0].T * gap
    rows, ids, mods = [], [], []
    for m in range(2):
        for i in range(centres):
            rows.append(C[i] + off[m] + 0.05 * rng.standard_normal((n_per, dim)))
            ids += [i] * n_per
            mods += [m] * n_per
    return np.vstack(rows).astype(np.float32), np.array(ids), np.array(mods)


def _spcl_reference(labels, tight, loose):
    """SpCL / OpenUnReID's refinement written as published (N x N label-similarity matrices)."""
    def singletons(x):
        x = x.copy()
        noise = x < 0
        x[noise] = x.max(initial=-1) + 1 + np.arange(noise.sum())
        return x

    c, t, lo = singletons(labels), singletons(tight), singletons(loose)
    sim = (c[:, None] == c[None, :]).astype(float)
    sim_t = (t[:, None] == t[None, :]).astype(float)
    sim_l = (lo[:, None] == lo[None, :]).astype(float)
    r_comp = 1 - np.minimum(sim, sim_t).sum(1) / np.maximum(sim, sim_t).sum(1)
    r_indep = 1 - np.minimum(sim, sim_l).sum(1) / np.maximum(sim, sim_l).sum(1)
    out = labels.copy()
    clusters = sorted(set(labels[labels >= 0].tolist()))
    comp = {k: r_comp[labels == k].min() for k in clusters}
    indep = {k: r_indep[labels == k].min() for k in clusters}
    size = {k: int((labels == k).sum()) for k in clusters}
    noins = np.sort([indep[k] for k in clusters if size[k] > 1])
    thres = noins[min(len(noins) - 1, int(np.round(len(noins) * 0.9)))]
    for i, k in enumerate(labels):
        if k < 0 or size[k] == 1:
            continue
        if not (indep[k] <= thres and r_comp[i] <= comp[k]):
            out[i] = -1
    return out


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert ((a < 0) == (b < 0)).all()
    keep = a >= 0
    pairs = set(zip(a[keep].tolist(), b[keep].tolist()))
    assert len(pairs) == len(set(a[keep].tolist())) == len(set(b[keep].tolist()))


# ------------------------------------------------------------------ sinkhorn

def test_sinkhorn_meets_its_marginals_and_ignores_row_and_column_constants():
    rng = np.random.default_rng(0)
    C = rng.random((7, 5))
    a, b = rng.random(7) + 0.1, rng.random(5) + 0.1
    P = sinkhorn(C, a, b, reg=0.1)
    assert np.allclose(P.sum(1), a / a.sum(), atol=1e-4) and np.allclose(P.sum(0), b / b.sum(), atol=1e-6)
    shifted = 3.0 * C + rng.random((7, 1)) + rng.random((1, 5))  # relative reg: scale-free too
    assert np.allclose(sinkhorn(shifted, a, b, reg=0.1), P, atol=1e-6)
    absolute = sinkhorn(C + rng.random((7, 1)), a, b, reg=0.05, relative=False)
    assert np.allclose(absolute, sinkhorn(C, a, b, reg=0.05, relative=False), atol=1e-6)


def test_sinkhorn_log_domain_agrees_and_small_reg_is_the_permutation():
    rng = np.random.default_rng(1)
    perm = rng.permutation(6)
    C = np.ones((6, 6))
    C[np.arange(6), perm] = 0.0
    C += 0.01 * rng.random((6, 6))
    P = sinkhorn(C, reg=1e-3, relative=False, max_iter=5000)  # exp(-1/1e-3) underflows: log domain
    assert np.isfinite(P).all()
    assert (np.argmax(P, axis=1) == perm).all()
    assert np.allclose(P[np.arange(6), perm], 1 / 6, atol=1e-3)


def test_sinkhorn_matches_pot_when_installed():
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(2)
    C = rng.random((9, 6))
    a, b = rng.random(9) + 0.1, rng.random(6) + 0.1
    ours = sinkhorn(C, a, b, reg=0.05, relative=False, tol=1e-10, max_iter=10000)
    theirs = ot.sinkhorn(a / a.sum(), b / b.sum(), C, 0.05, numItermax=10000, stopThr=1e-10)
    assert np.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(cost=np.zeros((0, 3))), "non-empty"),
    (dict(cost=np.array([[np.nan, 1.0]])), "NaN"),
    (dict(cost=np.ones((2, 2)), reg=0), "reg"),
    (dict(cost=np.ones((2, 2)), a=[1, -1]), "non-negative"),
    (dict(cost=np.ones((2, 2)), b=[1, 1, 1]), "2 finite"),
])
def test_sinkhorn_rejects_bad_input(kwargs, message):
    with pytest.raises(InputError, match=message):
        sinkhorn(**kwargs)


# ------------------------------------------------------------------ matching

@pytest.mark.parametrize("method", ASSOCIATIONS)
def test_every_method_joins_the_identities_of_a_clean_set(method):
    X, ids, mods = _blobs()
    per = np.where(mods == 0, ids, ids + 10)  # the perfect per-modality clustering
    labels, info = match_clusters(X, per, mods, method=method, return_info=True)
    assert labels.dtype == np.int64
    assert set(labels.tolist()) == {0, 1, 2}
    _same_partition(labels, ids)
    assert info["method"] == method and info["anchor"] == 0
    if method == "ot-instance":
        assert info["n_assigned_rows"] == info["n_candidate_rows"] == 18
    else:
        assert info["n_matches"] == 3
        assert {(m["anchor_cluster"], m["cluster"]) for m in info["matches"]} == {(0, 10), (1, 11), (2, 12)}


def test_hungarian_is_one_to_one_and_ot_joins_the_fragments_of_an_identity():
    X, ids, mods = _blobs(n_per=8)
    per = np.where(mods == 0, ids, ids + 10)
    # the visible identity 0 over-clustered in two fragments: 0 and 5
    frag = np.flatnonzero((mods == 0) & (ids == 0))[:4]
    per[frag] = 5
    hung = match_clusters(X, per, mods, method="hungarian")
    ot = match_clusters(X, per, mods, method="ot")
    s_h = cluster_scores(ids, hung, modalities=mods)
    s_o = cluster_scores(ids, ot, modalities=mods)
    assert s_h["n_clusters"] == 4 and s_h["pairwise_precision"] == 1.0  # one fragment left visible-only
    assert s_o["n_clusters"] == 3 and s_o["ari"] == pytest.approx(1.0)


def test_noise_stays_noise_and_unmatched_clusters_stay_modality_specific():
    X, ids, mods = _blobs()
    per = np.where(mods == 0, ids, ids + 10)
    per[(mods == 1) & (ids == 2)] = -1  # the infrared rows of identity 2 are noise
    per[0] = -1
    labels = match_clusters(X, per, mods, method="hungarian")
    assert (labels[per < 0] == -1).all()
    s = cluster_scores(ids, labels, modalities=mods)
    assert s["n_clusters"] == 3 and s["mixed_modality_cluster_share"] == pytest.approx(2 / 3)


def test_min_similarity_and_anchor():
    X, ids, mods = _blobs()
    per = np.where(mods == 0, ids, ids + 10)
    labels = match_clusters(X, per, mods, min_similarity=1.0)  # nothing is that close: no join
    assert len(set(labels.tolist())) == 6
    # string modalities, anchor named by its label
    smods = np.where(mods == 0, "rgb", "ir")
    a = match_clusters(X, per, smods, method="ot-instance", anchor="rgb")
    _same_partition(a, ids)
    with pytest.raises(InputError, match="anchor='depth' is not among the modalities"):
        match_clusters(X, per, smods, anchor="depth")


@pytest.mark.parametrize("change, message", [
    (dict(labels="mixed"), "more than one modality"),
    (dict(modalities="one"), "at least two modalities"),
    (dict(method="kmeans"), "Unknown method"),
    (dict(labels="short"), "labels must have one label per row"),
    (dict(min_share=1.5), "min_share"),
    (dict(min_similarity=2), "min_similarity"),
    (dict(reg=0), "reg"),
    (dict(labels="below"), ">= -1"),
])
def test_match_clusters_rejects_bad_input(change, message):
    X, ids, mods = _blobs()
    per = np.where(mods == 0, ids, ids + 10)
    kw = dict(features=X, labels=per, modalities=mods)
    if change.get("labels") == "mixed":
        kw["labels"] = ids  # one cluster per identity across both modalities
    elif change.get("labels") == "short":
        kw["labels"] = per[:-1]
    elif change.get("labels") == "below":
        kw["labels"] = per - 5
    elif change.get("modalities") == "one":
        kw["modalities"] = np.zeros_like(mods)
    else:
        kw.update(change)
    with pytest.raises(InputError, match=message):
        match_clusters(**kw)


def test_associate_on_a_biased_set_beats_per_modality_and_trails_modality_jaccard():
    X, ids, mods, _ = make_biased(n_ids=50, per_id=8, gap=1.5, seed=0)
    per = cluster_scores(ids, xmrank.cluster_per_modality(X, mods, progress=False), modalities=mods)
    modality = cluster_scores(ids, xmrank.cluster(X, modalities=mods, progress=False), modalities=mods)
    for method in ASSOCIATIONS:
        labels = associate(X, mods, method=method, progress=False)
        s = cluster_scores(ids, labels, modalities=mods)
        assert s["cross_modal_pair_recall"] > 0.8 > per["cross_modal_pair_recall"]
        assert per["ari"] < s["ari"] <= modality["ari"] + 1e-9


# ------------------------------------------------------------------ refinement

def test_refinement_is_spcl_on_random_clusterings():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(20, 80))
        labels = rng.integers(-1, 8, n)
        tight = np.where(rng.random(n) < 0.3, -1, labels * 2 + rng.integers(0, 2, n))
        tight[labels < 0] = -1
        loose = np.where(rng.random(n) < 0.2, labels // 2, labels)
        ours = refine_labels(labels, tight, loose)
        _same_partition(ours, _spcl_reference(labels, tight, loose))


def test_refinement_keeps_the_dense_core_and_drops_unstable_clusters():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, -1])
    tight = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, -1])   # cluster 0: a core of 4 and 2 others
    loose = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, -1])   # clusters 1 and 2 merge when eps grows
    out, sc = refine_labels(labels, tight, loose, min_independence=1.0, return_scores=True)
    assert out.tolist() == [0, 0, 0, 0, -1, -1] + [-1] * 9
    assert sc["n_dropped_clusters"] == 2 and sc["n_dropped_rows"] == 10
    assert sc["compactness"][0] == pytest.approx(4 / 6) and sc["independence"][6] == pytest.approx(0.5)
    relaxed = refine_labels(labels, tight, loose, min_independence=0.5, min_compactness=0.3)
    _same_partition(relaxed, labels)


def test_refinement_rejects_bad_input():
    with pytest.raises(InputError, match="tight must have one label per row of labels"):
        refine_labels([0, 0, 1], [0, 0], [0, 0, 1])
    with pytest.raises(InputError, match="min_independence"):
        refine_labels([0, 0], [0, 0], [0, 0], min_independence=1.5)
    with pytest.raises(InputError, match="integer cluster labels"):
        refine_labels(["a", "b"], [0, 0], [0, 0])


def test_cluster_refined_and_associate_refine():
    X, ids, mods, _ = make_biased(n_ids=30, per_id=8, gap=2.0, seed=0)
    plain_labels = xmrank.cluster(X, modalities=mods, eps=0.5, progress=False)
    refined, sc = cluster_refined(X, modalities=mods, eps=0.5, return_scores=True, progress=False)
    assert refined.dtype == np.int64 and refined.shape == plain_labels.shape
    # refinement only removes rows from clusters, never joins two
    kept = refined >= 0
    assert (plain_labels[kept] >= 0).all()
    _same_partition(refined[kept], plain_labels[kept])
    assert sc["n_dropped_rows"] == int((plain_labels >= 0).sum() - kept.sum())
    labels, info = associate(X, mods, eps=0.5, refine=True, return_info=True, progress=False)
    assert {"n_matches", "n_dropped_clusters", "n_dropped_rows"} <= set(info)
    auto = cluster_refined(X, modalities=mods, eps="auto", progress=False)
    assert auto.shape == labels.shape
    with pytest.raises(InputError, match="eps_gap=0.5 must be smaller than eps"):
        cluster_refined(X, modalities=mods, eps=0.5, eps_gap=0.5, progress=False)
    with pytest.raises(InputError, match="refine needs algorithm='dbscan'"):
        associate(X, mods, refine=True, algorithm="hdbscan", progress=False)
    with pytest.raises(InputError, match="eps_gap"):
        associate(X, mods, refine=True, eps_gap=-1, progress=False)
