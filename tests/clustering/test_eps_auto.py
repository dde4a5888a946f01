"""eps="auto" on real and synthetic data, the label-free criterion it maximises, and degenerate-clustering warnings."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score, silhouette_score

import xmrank
from xmrank.clustering import auto_eps, eps_scores
from xmrank.clustering.eps import EPS_GRID, _dbscan_labels, _modularity, _Prepared, _silhouette
from xmrank.datasets import load_clip_pairs, make_biased


def digits_two_view(per_class=50, seed=0):
    """A real two-view set: digit images as raw pixels and as blurred square-root pixels (see bench_eps.py)."""
    from scipy.ndimage import gaussian_filter
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    pick = np.sort(np.concatenate([rng.choice(np.flatnonzero(d.target == c), per_class, replace=False)
                                   for c in range(10)]))
    raw = d.images[pick].reshape(len(pick), -1)
    blurred = np.stack([gaussian_filter(im, 1.0) for im in d.images[pick]]).reshape(len(pick), -1) ** 0.5
    X = np.concatenate([raw, blurred])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.r_[d.target[pick], d.target[pick]], np.repeat([0, 1], len(pick))


def largest_share(labels):
    ok = labels >= 0
    return np.bincount(labels[ok]).max() / labels.size if ok.any() else 0.0


@pytest.fixture(scope="module")
def clip_distance():
    X, ids, mods = load_clip_pairs()
    return xmrank.jaccard_distance(X, modalities=mods, progress=False), ids


@pytest.mark.slow
def test_auto_on_clip_pairs_is_not_one_giant_cluster(clip_distance):
    """The issue's case: default settings on the shipped CLIP pairs put all 1,000 rows in one cluster."""
    X, ids, mods = load_clip_pairs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no degenerate-clustering warning either
        labels, info = xmrank.cluster(X, modalities=mods, eps="auto", return_info=True, progress=False)
    assert largest_share(labels) < 0.5
    assert (labels < 0).mean() < 0.5
    assert labels.max() + 1 >= 5
    assert info["eps"] == auto_eps(clip_distance[0])
    assert info["warning"] is None


@pytest.mark.slow
def test_auto_on_clip_pairs_settings_for_pairs(clip_distance):
    X, ids, mods = load_clip_pairs()
    D = xmrank.jaccard_distance(X, modalities=mods, k1=4, k2=1, progress=False)
    eps = auto_eps(D, min_samples=2)
    labels = xmrank.cluster_distance(D, eps=eps, min_samples=2)
    best = max(adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=e, min_samples=2)) for e in EPS_GRID)
    assert adjusted_rand_score(ids, labels) >= best - 0.01
    assert largest_share(labels) < 0.1


@pytest.mark.slow
def test_auto_on_a_real_two_view_set_is_near_the_best_eps():
    X, ids, mods = digits_two_view()
    D = xmrank.jaccard_distance(X, modalities=mods, method="vanilla", progress=False)
    eps = auto_eps(D)
    scores = [adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=e)) for e in np.arange(0.05, 1.0, 0.05)]
    labels = xmrank.cluster_distance(D, eps=eps)
    assert adjusted_rand_score(ids, labels) >= max(scores) - 0.1
    assert max(scores) > 0.3 and largest_share(labels) < 0.5


@pytest.mark.parametrize("gap", [0.5, 1.5])
@pytest.mark.parametrize("method", ["modality", "vanilla"])
def test_auto_on_synthetic_sets_is_near_the_best_eps(gap, method):
    X, ids, mods, _ = make_biased(n_ids=30, per_id=8, gap=gap, seed=4)
    D = xmrank.jaccard_distance(X, modalities=mods, method=method, progress=False)
    scores = [adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=e)) for e in np.arange(0.05, 1.0, 0.05)]
    auto = adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=auto_eps(D)))
    assert auto >= max(scores) - 0.12


def test_a_plateau_gives_its_middle():
    """Where the clustering does not change over a range of eps, auto takes the middle of the range."""
    X, ids, mods, _ = make_biased(n_ids=30, per_id=8, gap=1.0, seed=4)
    D = xmrank.jaccard_distance(X, modalities=mods, progress=False)
    eps, s = auto_eps(D, return_scores=True)
    top = np.flatnonzero(s["score"] >= np.nanmax(s["score"]) - 1e-9)
    assert top.size > 3 and eps == s["eps"][top[len(top) // 2]]
    assert adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=eps)) == 1.0


def test_dense_and_sparse_matrices_choose_the_same_eps():
    X, ids, mods, _ = make_biased(n_ids=20, per_id=6, gap=1.5, seed=1)
    sparse = xmrank.jaccard_distance(X, modalities=mods, k1=20, progress=False)
    dense = xmrank.jaccard_distance(X, modalities=mods, k1=20, dense=True, progress=False)
    assert auto_eps(sparse) == auto_eps(dense)


def test_fast_dbscan_matches_scikit_learn_on_core_rows(clip_distance):
    D, _ = clip_distance
    P = _Prepared(D)
    for eps in (0.3, 0.5, 0.65):
        ours = _dbscan_labels(P, eps, 4)
        ref = xmrank.cluster_distance(D, eps=eps, min_samples=4)
        assert np.array_equal(ours < 0, ref < 0)  # the same noise
        coo = D.tocoo()
        core = np.bincount(coo.row[coo.data <= eps], minlength=D.shape[0]) >= 4
        assert adjusted_rand_score(ref[core], ours[core]) == 1.0  # the same clusters of core rows


def test_criterion_pieces_match_their_definitions():
    X, ids, mods, _ = make_biased(n_ids=15, per_id=4, gap=1.0, seed=3)
    D = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3, progress=False)
    dense = D.toarray()
    coo = D.tocoo()
    stored = np.zeros(D.shape, dtype=bool)
    stored[coo.row, coo.col] = True  # explicit zeros (identical reciprocal sets) are stored pairs
    dense[~stored] = 1.0
    np.fill_diagonal(dense, 0.0)
    P = _Prepared(D)
    labels = np.arange(X.shape[0]) // 8  # any partition without noise
    assert _silhouette(P, labels) == pytest.approx(silhouette_score(dense, labels, metric="precomputed"), abs=1e-6)
    # modularity on the graph 1 - D (stored, off-diagonal pairs), by its textbook formula
    W = np.where(stored, 1.0 - dense, 0.0)
    np.fill_diagonal(W, 0.0)
    W = (W + W.T) / 2
    k, m2 = W.sum(1), W.sum()
    same = labels[:, None] == labels[None, :]
    expected = ((W - np.outer(k, k) / m2) * same).sum() / m2
    assert _modularity(P, labels) == pytest.approx(expected, abs=1e-6)
    # both degenerate ends score (about) zero
    assert _silhouette(P, np.zeros_like(labels)) == 0.0 and _modularity(P, np.zeros_like(labels)) == pytest.approx(0)
    assert _silhouette(P, -np.ones_like(labels)) == 0.0 and abs(_modularity(P, -np.ones_like(labels))) < 0.05


def test_eps_scores_stop_once_one_cluster_holds_everything(clip_distance):
    s = eps_scores(clip_distance[0])
    done = np.flatnonzero(np.isnan(s["score"]))
    assert done.size and s["largest_share"][done[0] - 1] >= 0.95 and (s["n_clusters"][done] == -1).all()
    with pytest.raises(xmrank.InputError, match=r"grid must hold eps values in \(0, 1\)"):
        eps_scores(clip_distance[0], grid=[0.5, 1.5])


# --- degenerate clusterings warn -----------------------------------------------------------------

@pytest.mark.slow  # about 1-2 s: kept out of the fast suite (under a minute)
def test_one_giant_cluster_warns_and_says_what_to_change():
    X, ids, mods = load_clip_pairs()
    with pytest.warns(UserWarning, match=r"one cluster holds 100% of the 1000 rows \(eps=0.9, min_samples=4\); "
                                         r"lower eps to 0\.\d+ \(checked: largest cluster") as rec:
        labels, info = xmrank.cluster(X, modalities=mods, eps=0.9, return_info=True, progress=False)
    assert rec[0].filename == __file__  # attributed to the caller's line
    assert info["warning"].startswith("degenerate clustering: one cluster holds 100%")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the suggestion, followed, does not degenerate
        xmrank.cluster(X, modalities=mods, eps=info["suggestion"]["eps"], progress=False)


@pytest.mark.slow  # about 1-2 s: kept out of the fast suite (under a minute)
def test_nearly_all_noise_warns_and_says_what_to_change():
    X, ids, mods = load_clip_pairs()
    with pytest.warns(UserWarning, match=r"9\d% of the 1000 rows are noise \(eps=0.1, min_samples=4\); raise eps to "
                                         r"0\.\d+ \(checked"):
        _, info = xmrank.cluster(X, modalities=mods, eps=0.1, progress=False, return_info=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xmrank.cluster(X, modalities=mods, eps=info["suggestion"]["eps"], progress=False)
    with pytest.warns(UserWarning, match=r"rows are noise"):
        xmrank.XMCluster(eps=0.1).fit(X, modalities=mods)


def test_per_modality_warnings_name_the_modality():
    X, ids, mods = load_clip_pairs()
    with pytest.warns(UserWarning, match=r"^modality 1: degenerate clustering") as rec:
        labels, info = xmrank.cluster_per_modality(X, mods, eps=0.95, return_info=True, progress=False)
    assert {str(w.message).split(":")[0] for w in rec} == {"modality 0", "modality 1"}
    assert info["per_modality"]["0"]["warning"]


def test_a_good_clustering_does_not_warn():
    X, ids, mods, _ = make_biased(n_ids=20, per_id=6, gap=1.5, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xmrank.cluster(X, modalities=mods, progress=False)
        xmrank.cluster(X, modalities=mods, eps="auto", progress=False)


def test_auto_eps_is_recorded_everywhere():
    X, ids, mods, _ = make_biased(n_ids=20, per_id=6, gap=1.5, seed=2)
    D = xmrank.jaccard_distance(X, modalities=mods, progress=False)
    labels, info = xmrank.cluster(X, modalities=mods, eps="auto", return_info=True, progress=False)
    assert info["eps"] == auto_eps(D) and info["eps_requested"] == "auto"
    assert set(info["auto_eps"]) == {"score", "modularity", "silhouette"}
    est = xmrank.XMCluster(eps="auto").fit(X, modalities=mods)
    assert est.eps_ == info["eps"] and np.array_equal(est.labels_, labels)
    assert est.info_["method"] == "modality"
    assert xmrank.XMCluster(algorithm="hdbscan").fit(X, modalities=mods).eps_ is None
    _, per = xmrank.cluster_per_modality(X, mods, eps="auto", k1=20, return_info=True, progress=False)
    assert set(per["eps"]) == {"0", "1"} and all(0 < e < 1 for e in per["eps"].values())
    _, _, sub = xmrank.subset_cluster(X, mods, eps=0.5, k1=10, seed=1, return_info=True, progress=False)
    assert sub["eps"] == 0.5 and sub["subset_modality"] == 0 and sub["seed"] == 1


def test_return_flags_are_checked():
    X, ids, mods, _ = make_biased(n_ids=10, per_id=6, gap=1.5, seed=2)
    with pytest.raises(xmrank.InputError, match="return_info must be True or False"):
        xmrank.cluster(X, return_info="yes")
    labels, D, info = xmrank.cluster(X, modalities=mods, return_distance=True, return_info=True, k1=10, k2=3)
    assert sp.issparse(D) and info["n_stored_pairs"] == D.nnz and info["knn"] in ("faiss", "numpy")


def _two_close_of_three(seed=0):
    """Three balanced identities of 60 rows, two of them close enough for DBSCAN to chain them at a large eps."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(2, 16))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    centres = [c[0], c[0] + 0.3 * rng.normal(size=16) / 4, c[1]]
    X = np.concatenate([cc + 0.25 * rng.normal(size=(60, 16)) for cc in centres]).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_auto_eps_leaves_out_degenerate_clusterings_where_others_exist():
    X = _two_close_of_three()
    D = xmrank.jaccard_distance(X, method="vanilla", k1=20, k2=4)
    free, scores = auto_eps(D, return_scores=True)
    limited = auto_eps(D, giant_share=0.5, noise_share=0.9)

    def largest(eps):
        labels = np.asarray(xmrank.cluster_distance(D, eps=eps))
        return np.bincount(labels[labels >= 0]).max() / len(labels)

    assert largest(free) > 0.5 >= largest(limited)  # unconstrained: two identities chained into 2/3 of the rows
    ok = (np.nan_to_num(scores["largest_share"], nan=1.0) <= 0.5) & (np.nan_to_num(scores["noise_share"], nan=1) < 0.9)
    assert limited == scores["eps"][np.nanargmax(np.where(ok, scores["score"], -np.inf))]
    # every eps degenerate under the limits: the unconstrained choice
    assert auto_eps(D, giant_share=0.0) == free
    # cluster(eps="auto") uses its own degenerate limits, and says so
    labels, info = xmrank.cluster(X, method="vanilla", k1=20, k2=4, eps="auto", return_info=True)
    assert info["eps"] == limited and "not degenerate" in info["chosen"]["eps"]["reason"]
    assert np.bincount(labels[labels >= 0]).max() / len(labels) <= 0.5
