"""knn="bf16": exact search from bfloat16 candidates, against a float64 oracle, adversarial inputs, golden sets.

The oracle is the definition the engine promises: float64 inner products of
the float32 rows, rounded to float32, ordered by (value decreasing, index
increasing). Both implementations are checked: the numba one (the CPU
engine) and the torch one (the GPU engine, run here on the CPU).
"""

import subprocess
import sys

import numba
import numpy as np
import pytest

import xmrank
from xmrank import InputError, backend
from xmrank.knn import knn_search
from xmrank.knn.exact_faiss import search as faiss_search

from conftest import unit_rows

torch = pytest.importorskip("torch")
from xmrank.knn import exact_bf16  # noqa: E402  (after the torch check: the engine needs it)


def oracle(Q, Y, k):
    S = (Q.astype(np.float64) @ Y.astype(np.float64).T).astype(np.float32)
    cols = np.broadcast_to(np.arange(Y.shape[0]), S.shape)
    order = np.lexsort((cols, -S), axis=1)[:, :k]
    return np.take_along_axis(S, order, axis=1), order


def _engines():
    return [("numba", lambda Q, Y, k, **kw: exact_bf16.search(Q, Y, k, return_stats=True, **kw)),
            ("torch", lambda Q, Y, k, **kw: exact_bf16.search_torch(Q, Y, k, device="cpu", return_stats=True, **kw))]


ENGINES = _engines()


def assert_exact(Q, Y, k, engine, **kw):
    sims, idx, stats = engine(Q, Y, k, **kw)
    ref_s, ref_i = oracle(Q, Y, k)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_array_equal(sims, ref_s)
    assert sims.dtype == np.float32 and idx.dtype == np.int64
    assert stats.mean_candidates >= k and stats.max_candidates <= Y.shape[0]
    return stats


@pytest.mark.parametrize("name,engine", ENGINES)
@pytest.mark.parametrize("n,nd,d,k", [(300, 300, 64, 10), (120, 400, 2048, 15), (90, 70, 7, 5), (40, 25, 33, 25),
                                      (50, 60, 16, 1)])
def test_random_rows_equal_the_oracle(name, engine, n, nd, d, k):
    rng = np.random.default_rng(n + d)
    Y = rng.standard_normal((nd, d)).astype(np.float32)
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    Q = Y[:n] if n <= nd else rng.standard_normal((n, d)).astype(np.float32)
    assert_exact(Q, Y, k, engine)


@pytest.mark.parametrize("name,engine", ENGINES)
@pytest.mark.parametrize("d", [256, 2048])
def test_exact_duplicates_tie_by_the_smaller_index(name, engine, d):
    """Equal rows score equally wherever they sit (the scores do not depend on a row's position)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, d)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    Y = base[rng.integers(0, 6, size=400)]
    sims, idx, _ = engine(Y[:50], Y, 30)
    for r in range(50):
        dup = np.flatnonzero((Y == Y[r]).all(axis=1))
        want = dup[:30]  # all duplicates score the same: the smallest indices, increasing
        np.testing.assert_array_equal(idx[r, :want.size], want)
        assert (sims[r, :want.size] == sims[r, 0]).all()
    assert_exact(Y[:50], Y, 30, engine)


@pytest.mark.parametrize("name,engine", ENGINES)
def test_near_duplicates_below_the_float32_resolution(name, engine):
    """Rows a few float32 ulps apart: their order is decided by the exact scores, not by rounding noise."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((5, 512)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    Y = base[rng.integers(0, 5, size=600)].copy()
    # move one coordinate of each row by a few ulps: scores differ by ~1e-8, far below the bfloat16 margin
    cols = rng.integers(0, 512, size=600)
    steps = rng.integers(-3, 4, size=600)
    for i, (c, s) in enumerate(zip(cols, steps)):
        for _ in range(abs(s)):
            Y[i, c] = np.nextafter(Y[i, c], np.float32(np.sign(s) * np.inf))
    stats = assert_exact(Y[:80], Y, 40, engine)
    assert stats.share_over > 0.5  # every near-duplicate stays a candidate


@pytest.mark.parametrize("name,engine", ENGINES)
def test_rows_of_very_different_norms(name, engine):
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((500, 96)).astype(np.float32)
    Y *= np.exp(rng.uniform(-7, 7, size=(500, 1))).astype(np.float32)  # norms from 1e-3 to 1e3 and more
    Y[:3] = 0.0  # zero rows: score 0 against everything
    Y[3:6] *= np.float32(1e-30)  # bfloat16 keeps their exponent; products underflow towards subnormals
    Q = np.concatenate([Y[:40], rng.standard_normal((20, 96)).astype(np.float32)])
    assert_exact(Q, Y, 12, engine)


@pytest.mark.parametrize("name,engine", ENGINES)
def test_negative_scores_and_opposite_rows(name, engine):
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((200, 48)).astype(np.float32)
    Q = -Y[:30]  # every query's best scores are small, most are negative
    assert_exact(Q, Y, 20, engine)
    assert_exact(Q, Y, 200, engine)  # k = n_database: the whole row, ordered


@pytest.mark.parametrize("name,engine", ENGINES)
def test_blocks_do_not_change_the_result(name, engine):
    X, _ = unit_rows(260, 40, seed=4, n_ids=20)
    full = engine(X, X, 9)
    tiny = engine(X, X, 9, block_entries=64 * 260)
    np.testing.assert_array_equal(full[0], tiny[0])
    np.testing.assert_array_equal(full[1], tiny[1])


def test_thread_count_does_not_change_the_result():
    X, _ = unit_rows(300, 64, seed=5, n_ids=30)
    a = exact_bf16.search(X, X, 12)
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = exact_bf16.search(X, X, 12)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("d", [3, 300, 4096])
def test_the_bound_holds_for_torch_products(d):
    """The premise of the candidate filter, on this torch: |x.y - s^| <= e(x, y) + u |s^| for every pair."""
    rng = np.random.default_rng(d)
    A = rng.standard_normal((150, d)) * np.exp(rng.uniform(-3, 3, size=(150, 1)))
    A[:10] *= np.exp(rng.uniform(-40, 20, size=(10, d)))  # entries of wildly different sizes within a row
    A[10:20] = A[20:30] + 1e-4 * A[10:20]  # near-duplicates: heavy cancellation in x.(y - y')
    A = A.astype(np.float32)
    Ab, norms = exact_bf16._to_bf16(A)
    bound = exact_bf16._Bound(norms, norms, d, u_out=2.0**-8)
    approx = torch.mm(Ab, Ab.T).double().numpy()
    exact = A.astype(np.float64) @ A.astype(np.float64).T
    e = bound.ex_a[:, None] * bound.y_hat[None, :] + bound.ex_b[:, None] * bound.y_res[None, :] + bound.ex_c[:, None]
    assert (np.abs(exact - approx) <= e + bound.u * np.abs(approx)).all()
    assert (e <= bound.ex_max[:, None]).all()


def test_same_lists_as_faiss_on_well_separated_rows():
    """Where no two scores are within faiss' own float32 rounding, faiss' lists are the exact ones."""
    X, _ = unit_rows(400, 128, seed=6, n_ids=40)
    s_b, i_b = exact_bf16.search(X, X, 20)
    s_f, i_f = faiss_search(X, X, 20)
    np.testing.assert_array_equal(i_b, i_f)
    np.testing.assert_array_equal(s_b, s_f)  # knn="faiss" re-scores its candidates: the same scores too


@pytest.mark.parametrize("key", ["cc_vanilla_jaccard", "caj_plain_jaccard", "bmil_modality_aware_jaccard",
                                 "bmil_qe_only_jaccard", "caj_full_jaccard"])
def test_golden_matrices(golden, key):
    from golden_cases import golden_kwargs as _kwargs

    D = xmrank.jaccard_distance(golden["X"], dense=True, knn="bf16", **_kwargs(golden, key))
    np.testing.assert_allclose(D, golden[key], atol=1e-5, rtol=0)
    # against the faiss engine: it re-scores its candidates by the same rule, so the same matrix, bit for bit
    F = xmrank.jaccard_distance(golden["X"], dense=True, knn="faiss", **_kwargs(golden, key))
    np.testing.assert_array_equal(D, F)


def test_golden_lists_equal_the_float32_engines(golden):
    X = golden["X"]
    s, i = knn_search(X, X, 40, knn="bf16")
    _, i_f = faiss_search(X, X, 40)
    np.testing.assert_array_equal(i, i_f)
    ref_s, ref_i = oracle(X, X, 40)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, ref_s)


def test_modality_aware_lists_per_modality():
    X, m = unit_rows(300, 64, seed=7, gap=0.8, n_ids=20)
    D_b = xmrank.jaccard_distance(X, modalities=m, k1=20, k2=4, dense=True, knn="bf16")
    D_n = xmrank.jaccard_distance(X, modalities=m, k1=20, k2=4, dense=True, knn="numpy")
    np.testing.assert_allclose(D_b, D_n, atol=2e-7, rtol=0)


def test_stats_report_the_candidates():
    X, _ = unit_rows(200, 256, seed=8)
    _, _, st = exact_bf16.search(X, X, 10, return_stats=True)
    assert st.n_queries == 200 and st.k == 10
    assert 10 <= st.mean_candidates <= st.max_candidates <= 200
    assert 0.0 <= st.share_over <= 1.0
    assert st.seconds_product >= 0 and st.seconds_select >= 0


def test_overflowing_norms_are_refused():
    X = np.ones((10, 4), dtype=np.float32) * np.float32(1e19)
    with pytest.raises(InputError, match="overflow float32"):
        exact_bf16.search(X, X, 3)
    Xn = np.ones((10, 4), dtype=np.float32)
    Xn[2, 1] = np.nan
    with pytest.raises(InputError, match="overflow float32"):
        exact_bf16.search(Xn, Xn, 3)


def test_empty_queries():
    Y = np.eye(5, dtype=np.float32)
    s, i = exact_bf16.search(np.zeros((0, 5), np.float32), Y, 2)
    assert s.shape == (0, 2) and i.shape == (0, 2)


def test_resolve_knn():
    assert backend.resolve_knn("bf16") == "bf16"
    assert backend.resolve_knn("auto") == ("faiss" if backend.have_faiss() else "numpy")  # no shape: a small search
    small = (1000, 1000, 64)
    big = (20000, 13000, 2048)
    assert backend.resolve_knn("auto", shape=small) != "bf16"
    assert (backend.resolve_knn("auto", shape=big) == "bf16") == backend.native_bf16_cpu()
    assert backend.resolve_knn("faiss", shape=big) == "faiss"


def test_resolve_knn_without_torch(monkeypatch):
    monkeypatch.setattr(backend, "have_torch", lambda: False)
    with pytest.raises(InputError, match="needs torch"):
        backend.resolve_knn("bf16")
    assert backend.resolve_knn("auto", shape=(20000, 13000, 2048)) != "bf16"


def test_auto_uses_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(backend, "native_bf16_cpu", lambda: False)
    assert backend.resolve_knn("auto", shape=(20000, 13000, 2048)) != "bf16"
    monkeypatch.setattr(backend, "native_bf16_cpu", lambda: True)
    assert backend.resolve_knn("auto", shape=(20000, 13000, 2048)) == "bf16"


def test_importing_xmrank_does_not_import_torch():
    code = ("import sys, xmrank, xmrank.knn, xmrank.knn.exact_bf16, xmrank.backend as b; "
            "b.resolve_knn('auto', shape=(10**5, 10**5, 2048)); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_path_with_float32_products(monkeypatch):
    """The branch a GPU takes (float32 output, no output rounding in the bound), emulated on the CPU."""
    X, _ = unit_rows(150, 300, seed=9, n_ids=15)
    _, _, bf16_out = exact_bf16.search_torch(X, X, 15, device="cpu", return_stats=True)
    monkeypatch.setattr(exact_bf16, "_float32_products", lambda dev: True)
    monkeypatch.setattr(exact_bf16, "_product", lambda qb, ybT, out_f32: torch.mm(qb.float(), ybT.float()))
    stats = assert_exact(X, X, 15, ENGINES[1][1])
    assert stats.mean_candidates < bf16_out.mean_candidates  # a tighter bound without the output rounding


@pytest.mark.parametrize("k", [1, 15])
def test_knn_search_dispatches_to_the_engine(k):
    X, _ = unit_rows(120, 32, seed=10)
    a = knn_search(X, X[:90], k, knn="bf16")
    b = exact_bf16.search(X, X[:90], k)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
