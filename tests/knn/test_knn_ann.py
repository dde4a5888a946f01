"""Approximate kNN (knn="ann"): recall against exact search, determinism, the exact paths, errors."""

import logging

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import xmrank
from xmrank import backend
from xmrank.knn import ann, knn_search
from xmrank.knn.exact_faiss import search as exact_search

from conftest import unit_rows


def _clustered(n, d=32, *, seed=0, rows_per_id=25):
    return unit_rows(n, d, seed=seed, n_ids=max(2, n // rows_per_id), gap=0.3)


def _recall(found, truth):
    return float(np.mean([np.intersect1d(f, t).size / t.size for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    X, mods = _clustered(12_000)
    return X, mods


@pytest.mark.slow
def test_calibrated_recall_reaches_the_target_on_all_queries(data):
    X, _ = data
    k = 15
    sims, idx, report = ann.search(X, X, k, min_rows=0, return_report=True)
    truth_s, truth = exact_search(X, X, k)
    assert not report.exact and report.nlist == ann.choose_nlist(X.shape[0])
    assert report.recall >= 0.95  # on the sample
    assert _recall(idx, truth) >= 0.94  # on every query (the sample estimate carries a little noise)
    assert idx.dtype == np.int64 and sims.dtype == np.float32 and idx.shape == (X.shape[0], k)
    assert (np.diff(sims, axis=1) <= 1e-6).all()
    # found similarities are exact inner products of the listed rows
    np.testing.assert_allclose(sims[:50], np.einsum("id,ikd->ik", X[:50], X[idx[:50]]), atol=1e-5)


def test_cross_database_search_and_fixed_nprobe(data):
    X, mods = data
    db = X[mods == 1]
    k = 10
    _, idx, report = ann.search(X, db, k, min_rows=0, nprobe=3, return_report=True)
    assert report.nprobe == 3
    _, truth = exact_search(X, db, k)
    # the logged recall is what the sample measures, and it tracks the recall over all queries
    assert abs(report.recall - _recall(idx, truth)) < 0.05
    assert idx.max() < db.shape[0]


def test_same_input_same_result(data):
    X, _ = data
    a = ann.search(X[:6000], X[:6000], 12, min_rows=0)
    b = ann.search(X[:6000], X[:6000], 12, min_rows=0)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.slow
def test_raising_the_target_raises_nprobe(data):
    X, _ = data
    low = ann.search(X, X, 15, min_rows=0, target_recall=0.6, return_report=True)[2]
    high = ann.search(X, X, 15, min_rows=0, target_recall=0.99, return_report=True)[2]
    assert low.nprobe < high.nprobe
    assert low.recall >= 0.6 and high.recall >= 0.99


def test_small_database_is_searched_exactly():
    X, _ = _clustered(3000)
    s, i, report = ann.search(X, X, 8, return_report=True)
    es, ei = exact_search(X, X, 8)
    assert report.exact and report.recall == 1.0
    np.testing.assert_array_equal(i, ei)


@pytest.mark.slow
def test_cells_too_small_for_k_fall_back_to_exact_rows():
    X, _ = _clustered(4000)
    k = 1000  # more rows than any single cell holds (about 39 on average with nlist = N // 39)
    sims, idx = ann.search(X, X, k, min_rows=0, nlist=4000 // 39, nprobe=1)
    assert (idx >= 0).all()
    _, truth = exact_search(X, X, k)
    assert _recall(idx, truth) == 1.0


def test_blocked_index_search_equals_one_call(data):
    X, _ = data
    index = ann.build_index(X[:6000], 150)
    index.nprobe = 5
    whole = index.search(X[:2500], 7)
    blocked = ann.search_index(index, X[:2500], 7, block_rows=1000)
    np.testing.assert_array_equal(blocked[1], whole[1])
    np.testing.assert_array_equal(blocked[0], whole[0])


def test_recall_is_logged(data, caplog):
    X, _ = data
    with caplog.at_level(logging.INFO, logger="xmrank"):
        ann.search(X[:8000], X[:8000], 10, min_rows=0)
    rec = [r for r in caplog.records if hasattr(r, "ann")]
    assert rec and "recall@10" in rec[-1].getMessage()
    assert rec[-1].ann["recall"] >= 0.95 and rec[-1].ann["nprobe"] >= 1


def test_knn_search_dispatches_ann(data, monkeypatch):
    X, _ = data
    monkeypatch.setattr(ann, "MIN_ROWS", 0)
    s, i = knn_search(X[:5000], X[:5000], 10, knn="ann")
    _, truth = exact_search(X[:5000], X[:5000], 10)
    assert _recall(i, truth) >= 0.94
    assert (i[:, 0] == np.arange(5000)).mean() > 0.99  # every row finds itself first


@pytest.mark.slow
def test_ann_jaccard_clusters_like_exact(monkeypatch):
    X, mods = _clustered(6000, seed=3, rows_per_id=30)
    monkeypatch.setattr(ann, "MIN_ROWS", 0)
    D_ann = xmrank.jaccard_distance(X, modalities=mods, knn="ann", max_distance=0.6)
    D_ex = xmrank.jaccard_distance(X, modalities=mods, knn="faiss", max_distance=0.6)
    la = xmrank.cluster_distance(D_ann, eps=0.6, min_samples=4)
    le = xmrank.cluster_distance(D_ex, eps=0.6, min_samples=4)
    assert len(set(le)) > 20
    assert adjusted_rand_score(le, la) >= 0.98


def test_choose_nlist_grows_with_n_and_keeps_cells_trainable():
    sizes = [100, 10_000, 200_000, 1_000_000]
    lists = [ann.choose_nlist(n) for n in sizes]
    assert lists == sorted(lists)
    assert all(n // nl >= 39 for n, nl in zip(sizes, lists))
    assert lists[-1] == 8000


def test_unknown_engine_and_missing_gpu_are_input_errors():
    with pytest.raises(xmrank.InputError, match="knn backend 'annoy'"):
        backend.resolve_knn("annoy")
    with pytest.raises(xmrank.InputError, match="Unknown device 'tpu'"):
        backend.resolve_knn("ann", "tpu")
    if not backend.have_cupy():
        with pytest.raises(xmrank.InputError, match="device='cuda' needs cupy"):
            backend.resolve_knn("ann", "cuda")
        with pytest.raises(xmrank.InputError, match="needs cupy"):
            knn_search(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 2, device="cuda")


def test_resolve_knn_names():
    assert backend.resolve_knn("ann") == "ann"
    assert backend.resolve_knn("auto") == ("faiss" if backend.have_faiss() else "numpy")
    assert backend.resolve_knn("dask") == "dask"
