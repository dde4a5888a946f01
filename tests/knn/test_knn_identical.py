"""The exact engines return identical lists: faiss, numpy and bf16 all re-score through xmrank.knn.rescore.

Checked on adversarial inputs (exact duplicates, near-duplicates a few ulps
apart, rows of very different norms), on the golden sets, and for faiss'
thread count, against the float64 oracle of the rule: float64 inner products
of the float32 rows, rounded to float32, decreasing, ties by the smaller index.
"""

import numpy as np
import pytest

import xmrank
from xmrank.knn import knn_search
from xmrank.knn import rescore
from xmrank.knn.exact_faiss import search as faiss_search
from xmrank.knn.exact_numpy import search as numpy_search

from conftest import unit_rows

faiss = pytest.importorskip("faiss")


def oracle(Q, Y, k):
    S = (Q.astype(np.float64) @ Y.astype(np.float64).T).astype(np.float32)
    cols = np.broadcast_to(np.arange(Y.shape[0]), S.shape)
    order = np.lexsort((cols, -S), axis=1)[:, :k]
    return np.take_along_axis(S, order, axis=1), order


def _bf16_available():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _engines():
    engines = [("faiss", faiss_search), ("numpy", numpy_search)]
    if _bf16_available():
        from xmrank.knn import exact_bf16

        engines.append(("bf16", exact_bf16.search))
    return engines


def assert_identical(Q, Y, k):
    ref_s, ref_i = oracle(Q, Y, k)
    for name, engine in _engines():
        s, i = engine(Q, Y, k)
        assert s.dtype == np.float32 and i.dtype == np.int64, name
        np.testing.assert_array_equal(i, ref_i, err_msg=name)
        np.testing.assert_array_equal(s, ref_s, err_msg=name)


def _duplicates(d=32, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((40, d)).astype(np.float32)
    Y = np.concatenate([base, base[:10], base[:10], base[:10]])  # 4 copies of the first 10 rows
    return Y[rng.permutation(len(Y))]


def _near_duplicates(d=64, seed=1):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((30, d)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    Y = np.repeat(base, 8, axis=0)
    # 8 copies of each row, moved by a few ulps in a few coordinates
    for c in range(1, 8):
        rows = Y[c::8]
        cols = rng.integers(0, d, size=3)
        rows[:, cols] = np.nextafter(rows[:, cols], np.float32(np.inf) * np.sign(rng.standard_normal(3)),
                                     dtype=np.float32) if c % 2 else rows[:, cols] * np.float32(1 + c * 2.0**-23)
        Y[c::8] = rows
    return Y


def _norms(d=48, seed=2):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((300, d)) * np.exp(rng.uniform(-12, 12, size=(300, 1)))
    Y[:20] = Y[20:40] * 3.0  # parallel rows of different norms
    return Y.astype(np.float32)


@pytest.mark.parametrize("make", [_duplicates, _near_duplicates, _norms])
@pytest.mark.parametrize("k", [1, 7, 25])
def test_adversarial_lists_identical(make, k):
    Y = make()
    assert_identical(Y, Y, k)
    assert_identical(Y[::3], Y, k)


def test_k_equal_to_the_database_and_tiny_margins():
    Y = _near_duplicates()[:60]
    assert_identical(Y[:10], Y, 60)
    ref = oracle(Y, Y, 9)
    for engine in (faiss_search, numpy_search):
        for margin in (1, 2):  # many rows fail the first bound: the wider passes and the full one run
            s, i = engine(Y, Y, 9, margin=margin)
            np.testing.assert_array_equal(i, ref[1])
            np.testing.assert_array_equal(s, ref[0])


def test_full_rescoring_pass(monkeypatch):
    monkeypatch.setattr(rescore, "_FULL_ENTRIES", 300)  # several small chunks of every pass
    Y = _duplicates()
    ref = oracle(Y, Y, 12)
    s, i = faiss_search(Y, Y, 12, margin=1)
    np.testing.assert_array_equal(i, ref[1])
    np.testing.assert_array_equal(s, ref[0])
    # every row equal: no candidate set short of the whole database is proven, the last pass scores every row
    Y = np.tile(Y[:1], (50, 1))
    calls = []
    orig = rescore._rescore_all
    monkeypatch.setattr(rescore, "_rescore_all", lambda *a: (calls.append(1), orig(*a)))
    assert_identical(Y[:20], Y, 5)
    assert calls


@pytest.mark.slow
def test_faiss_thread_count_does_not_change_the_result():
    X, _ = unit_rows(3000, 64, seed=11, n_ids=300)
    X = np.concatenate([X, X[:200]])  # exact duplicates too
    old = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        a = faiss_search(X, X, 20)
        faiss.omp_set_num_threads(2)
        b = faiss_search(X, X, 20)
    finally:
        faiss.omp_set_num_threads(old)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    ref = oracle(X, X, 20)
    np.testing.assert_array_equal(a[1], ref[1])
    np.testing.assert_array_equal(a[0], ref[0])


def test_golden_lists_identical(golden):
    assert_identical(golden["X"], golden["X"], 40)


@pytest.mark.parametrize("key", ["cc_vanilla_jaccard", "caj_plain_jaccard", "bmil_modality_aware_jaccard",
                                 "bmil_qe_only_jaccard", "caj_full_jaccard"])
def test_golden_matrices_identical(golden, key):
    from golden_cases import golden_kwargs as _kwargs

    names = [n for n, _ in _engines()]
    mats = {n: xmrank.jaccard_distance(golden["X"], dense=True, knn=n, **_kwargs(golden, key)) for n in names}
    for n in names[1:]:
        np.testing.assert_array_equal(mats[n], mats[names[0]], err_msg=n)
    np.testing.assert_allclose(mats[names[0]], golden[key], atol=1e-5, rtol=0)


def test_adversarial_dense_matrices_identical():
    X = _near_duplicates()
    names = [n for n, _ in _engines()]
    mats = {n: xmrank.jaccard_distance(X, k1=12, k2=4, dense=True, knn=n) for n in names}
    for n in names[1:]:
        np.testing.assert_array_equal(mats[n], mats[names[0]], err_msg=n)


def test_knn_search_entry_point():
    X = _duplicates()
    ref = oracle(X, X, 5)
    for name, _ in _engines():
        s, i = knn_search(X, X, 5, knn=name)
        np.testing.assert_array_equal(i, ref[1], err_msg=name)
        np.testing.assert_array_equal(s, ref[0], err_msg=name)
