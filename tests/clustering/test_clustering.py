"""Clustering front-ends: DBSCAN on sparse == dense, per-modality, subsets, HDBSCAN, eps, estimator."""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import xmrank
from xmrank.clustering import auto_eps, kth_neighbor_distance
from xmrank.datasets import make_biased


@pytest.fixture(scope="module")
def biased():
    X, ids, mods, cams = make_biased(n_ids=30, per_id=6, gap=1.5, seed=0)
    return X, ids, mods, cams


def test_sparse_dbscan_equals_dense_dbscan(golden):
    X, m = golden["X"], golden["modalities"]
    D = xmrank.jaccard_distance(X, modalities=m)
    ref = DBSCAN(eps=0.6, min_samples=4, metric="precomputed").fit_predict(
        xmrank.jaccard_distance(X, modalities=m, dense=True))
    got = xmrank.cluster_distance(D, eps=0.6, min_samples=4)
    assert np.array_equal(got, ref)
    assert np.array_equal(xmrank.cluster(X, modalities=m, eps=0.6), ref)


def test_modality_aware_clustering_joins_modalities(biased):
    X, ids, mods, _ = biased
    van = xmrank.cluster(X, modalities=mods, method="vanilla")
    mod = xmrank.cluster(X, modalities=mods, method="modality")
    assert xmrank.cluster_summary(van, mods)["mixed_share"] == 0.0
    assert xmrank.cluster_summary(mod, mods)["mixed_share"] > 0.8
    assert adjusted_rand_score(ids, mod) > adjusted_rand_score(ids, van) + 0.2


def test_per_modality_labels_are_unique_and_pure(biased):
    X, ids, mods, _ = biased
    labels = xmrank.cluster_per_modality(X, mods, k1=20, k2=4)
    clustered = labels >= 0
    assert clustered.mean() > 0.5
    for c in np.unique(labels[clustered]):
        assert np.unique(mods[labels == c]).size == 1
    # both modalities got clusters, with disjoint label ranges
    assert set(np.unique(mods[clustered])) == {0, 1}


def test_subset_split_is_a_seeded_partition():
    parts = xmrank.subset_split(101, ratio=0.5, seed=3)
    assert len(parts) == 2
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(101))
    assert abs(len(parts[0]) - len(parts[1])) <= 1
    again = xmrank.subset_split(101, ratio=0.5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert len(xmrank.subset_split(100, ratio=0.25, seed=0)) == 4


def test_subset_cluster_leaves_other_subset_unlabelled():
    X, ids, mods, _ = make_biased(n_ids=20, per_id=12, gap=1.5, seed=1)
    labels, subsets = xmrank.subset_cluster(X, mods, subset_modality=0, ratio=0.5, seed=0, k1=20, k2=4)
    assert np.all(labels[subsets[1]] == -1)
    assert (labels[subsets[0]] >= 0).mean() > 0.5
    assert (labels[mods == 1] >= 0).mean() > 0.5
    assert np.all(mods[np.concatenate(subsets)] == 0)


def test_hdbscan_on_sparse_distance(biased):
    X, ids, mods, _ = biased
    labels = xmrank.cluster(X, modalities=mods, algorithm="hdbscan")
    assert adjusted_rand_score(ids, labels) > 0.5
    assert xmrank.cluster_summary(labels, mods)["mixed_share"] > 0.5


def test_auto_eps_lands_near_the_best_eps(biased):
    X, ids, mods, _ = biased
    D = xmrank.jaccard_distance(X, modalities=mods)
    eps = auto_eps(D, min_samples=4)
    assert 0.0 < eps < 1.0
    grid = np.arange(0.05, 1.0, 0.05)
    scores = [adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=e)) for e in grid]
    auto_score = adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=eps))
    assert auto_score >= max(scores) - 0.1


def test_kth_neighbor_distance_sparse_matches_dense(golden):
    X, m = golden["X"], golden["modalities"]
    sparse = kth_neighbor_distance(xmrank.jaccard_distance(X, modalities=m), 4)
    dense = kth_neighbor_distance(xmrank.jaccard_distance(X, modalities=m, dense=True), 4)
    np.testing.assert_allclose(sparse, dense, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=-1.0), r"eps must be > 0.0"),
        (dict(eps="big"), r"eps must be a positive number or 'auto'"),
        (dict(algorithm="optics"), r"Unknown algorithm 'optics'"),
        (dict(min_samples=0), r"min_samples must be >= 1"),
    ],
)
def test_cluster_bad_input(biased, kwargs, match):
    X, _, mods, _ = biased
    with pytest.raises(xmrank.InputError, match=match):
        xmrank.cluster(X, modalities=mods, **kwargs)


def test_cluster_distance_rejects_non_square():
    with pytest.raises(xmrank.InputError, match=r"distance must be a square \(n, n\) matrix; got shape 6x3"):
        xmrank.cluster_distance(np.zeros((6, 3)))


def test_estimator_fit_predict_with_modalities(biased):
    X, ids, mods, _ = biased
    est = xmrank.XMCluster(eps=0.6)
    labels = est.fit_predict(X, modalities=mods)
    assert np.array_equal(labels, est.labels_)
    assert np.array_equal(labels, xmrank.cluster(X, modalities=mods, eps=0.6))
    assert est.n_clusters_ == labels.max() + 1
    assert est.n_features_in_ == X.shape[1]


def test_estimator_validates_at_fit_time():
    est = xmrank.XMCluster(eps=-3)  # no error at construction
    with pytest.raises(ValueError, match=r"The 'eps' parameter of XMCluster must be"):
        est.fit(np.random.default_rng(0).normal(size=(20, 4)))


@parametrize_with_checks([xmrank.XMCluster(k1=6, k2=3)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
