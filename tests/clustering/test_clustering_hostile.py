"""Hostile values for clustering: eps, degenerate distances, subset ratios.

- ``eps >= 1`` means what DBSCAN means on the dense matrix (cluster, cluster_distance, XMCluster, and diagnose's
  clustering accepts ``eps=1``); ``eps=1`` on a sparse matrix storing distances above 1 is refused;
- degenerate distances (nothing stored, one row) cluster as DBSCAN reads them;
- auto_eps's fallback is a warning at the caller's line;
- subset ratios are bounded by the number of rows before anything is allocated.
"""

import os

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import DBSCAN

import xmrank
from conftest import one_line, unit_rows
from xmrank import InputError
from xmrank.clustering import auto_eps, kth_neighbor_distance

HERE = os.path.abspath(__file__)


# --- eps >= 1 is DBSCAN's eps -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_set():
    X, mods = unit_rows(120, 16, seed=3, gap=0.8, n_ids=12)
    D = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3, dense=True)
    return X, mods, D


@pytest.mark.parametrize("eps", [0.3, 0.6, 0.95, 0.999, 1.0, 1.5, 2**70])
@pytest.mark.parametrize("min_samples", [4, 119, 121])
def test_eps_at_and_above_one_matches_dbscan_on_the_dense_matrix(small_set, eps, min_samples):
    X, mods, D = small_set
    ref = DBSCAN(eps=float(eps), min_samples=min_samples, metric="precomputed").fit_predict(D)
    got = xmrank.cluster(X, modalities=mods, k1=10, k2=3, eps=eps, min_samples=min_samples)
    assert np.array_equal(got, ref)
    sparse = xmrank.jaccard_distance(X, modalities=mods, k1=10, k2=3)
    assert np.array_equal(xmrank.cluster_distance(sparse, eps=eps, min_samples=min_samples), ref)
    est = xmrank.XMCluster(k1=10, k2=3, eps=eps, min_samples=min_samples).fit(X, modalities=mods)
    assert np.array_equal(est.labels_, ref)
    if eps >= 1 and min_samples <= 120:
        assert set(ref.tolist()) == {0}  # every pair is a neighbour: one cluster


def test_eps_at_one_on_a_sparse_matrix_with_distances_above_one_is_refused():
    D = sp.csr_matrix(np.array([[0, 3.0], [3.0, 0]]))
    with pytest.raises(InputError, match=r"eps=1 >= 1 reads every unstored pair .* the largest is 3: pass a dense"):
        xmrank.cluster_distance(D, eps=1.0)


def test_diagnose_accepts_eps_one(small_set):
    X, mods, _ = small_set
    rep = xmrank.diagnose(X, mods, labels=mods, k1=10, k2=3, eps=1.0, methods=["vanilla"])
    assert rep["clustering"]["vanilla"]["n_clusters"] == 1


# --- degenerate distances, auto_eps's fallback --------------------------------------------------------------

def test_degenerate_distances_cluster_as_dbscan_reads_them():
    empty = sp.csr_matrix((5, 5))
    assert xmrank.cluster_distance(empty).tolist() == [-1] * 5  # nothing stored: no row has a neighbour
    assert xmrank.cluster_distance(empty, eps=1.0, min_samples=5).tolist() == [0] * 5  # unstored = 1 <= eps
    assert xmrank.cluster_distance(np.zeros((1, 1)), min_samples=1).tolist() == [0]
    assert np.array_equal(kth_neighbor_distance(empty, 2), np.ones(5))


def test_auto_eps_fallback_is_a_warning():
    D = sp.csr_matrix(np.eye(6))
    with pytest.warns(UserWarning, match=r"auto_eps: only 0 row\(s\) have 4 neighbours closer than distance 1") as rec:
        assert auto_eps(D) == 0.5
    assert rec[0].filename == HERE


# --- subset ratios bounded by the rows ----------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [1e-9, 5e-324, 1 / 241])
def test_subset_ratio_is_bounded_by_the_rows(ratio):
    with pytest.raises(InputError, match=r"splits 240 rows into subsets of fewer than 1 row\(s\); the smallest "
                                         r"ratio for 240 rows is 0.00417") as e:
        xmrank.subset_split(240, ratio=ratio)
    one_line(e)
    assert len(xmrank.subset_split(240, ratio=1 / 240)) == 240
    with pytest.raises(InputError, match="fewer than 4 row"):
        xmrank.subset_split(10, ratio=0.25, min_size=4)
