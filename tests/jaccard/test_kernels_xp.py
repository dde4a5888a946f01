"""The GPU path's code, run on the CPU.

The array-module kernels (:mod:`xmrank.jaccard.kernels_xp`) and the blocked
top-k search (:func:`xmrank.knn.gpu.blocked_topk`) are the code that runs on
the GPU with ``xp=cupy``; here they run with ``xp=numpy`` against the numba
kernels and the golden matrices, with the backend decisions that need no GPU.
The device glue (cupy, faiss-gpu, DLPack) is tested in ``test_gpu.py``.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import xmrank
from xmrank import backend
from xmrank.jaccard import kernels
from xmrank.jaccard import kernels_xp as kx
from xmrank.knn import gpu
from xmrank.knn.exact_numpy import search as numpy_search

from conftest import unit_rows
from golden_cases import GOLDEN_KEYS, dense_rows, golden_params, golden_plan

HAVE_CUDA = backend.cuda_available()

_params, _plan, _dense = golden_params, golden_plan, dense_rows


def _csr(ptr, idx, val, n):
    M = sp.csr_matrix((val, idx, ptr), shape=(n, n))
    M.sort_indices()
    return M


# --- xp kernels with numpy, against the numba kernels -------------------------

@pytest.mark.parametrize("method", list(GOLDEN_KEYS))
def test_pipeline_with_numpy_matches_the_published_code(golden, method):
    """The whole GPU pipeline (steps 2-5), run by numpy, small blocks: the golden matrix."""
    out = kx.jaccard_from_plan(golden["X"], _plan(golden, method), xp=np, budget=5000)
    D = _dense(*out, golden["X"].shape[0])
    np.testing.assert_allclose(D, golden[GOLDEN_KEYS[method]], atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["modality", "camera"])
def test_each_kernel_matches_numba(golden, method):
    plan = _plan(golden, method)
    X, n = golden["X"], golden["X"].shape[0]
    sets = plan.sets
    ptr_a, idx_a = kernels.expand_lists(*sets)
    ptr_b, idx_b = kx.expand_lists(*sets, xp=np, budget=3000)
    np.testing.assert_array_equal(ptr_a, ptr_b)
    np.testing.assert_array_equal(idx_a, idx_b)
    sims, rank = plan.known
    w_a = kernels.softmax_weights(X, ptr_a, idx_a, rank, sims)
    w_b = kx.softmax_weights(X, ptr_a, idx_a, rank, sims, xp=np, budget=20_000)
    np.testing.assert_allclose(w_a, w_b, rtol=1e-5, atol=1e-7)
    V = sp.csr_matrix((w_a, idx_a, ptr_a), shape=(n, n))
    Vq = (plan.expansion @ V).tocsr()
    P = kx.sparse_product(kx.as_csr(plan.expansion, np), kx.as_csr(V, np), xp=np, budget=2000)
    assert abs(sp.csr_matrix((P.data, P.indices, P.indptr), shape=(n, n)) - Vq).max() < 1e-7
    for max_distance in (None, 0.6):
        a = _csr(*kernels.minsum_jaccard(Vq, 1, max_distance=max_distance), n)
        b = _csr(*kx.minsum_jaccard(Vq, max_distance=max_distance, xp=np, budget=7000), n)
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.data, b.data, atol=1e-6)


@pytest.mark.parametrize("k", [1, 4, 10, 25])
def test_reciprocal_mask_matches_numba(k):
    X, _ = unit_rows(400, 8, seed=k)
    _, rank = numpy_search(X, X, 20)
    np.testing.assert_array_equal(kx.reciprocal_mask(rank, k, xp=np, budget=500), kernels.reciprocal_mask(rank, k))


def test_expand_lists_without_expansion_and_with_empty_rows():
    rank = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [3, 2, 1]])
    mask = np.array([[True, True, False], [True, False, True], [False, False, False], [True, True, True]])
    ptr_a, idx_a = kernels.expand_lists(rank, mask)
    ptr_b, idx_b = kx.expand_lists(rank, mask, xp=np, budget=1)
    np.testing.assert_array_equal(ptr_a, ptr_b)
    np.testing.assert_array_equal(idx_a, idx_b)
    assert ptr_b[3] == ptr_b[2]  # row 2 has no reciprocal neighbour


def test_minsum_random_matrix_and_duplicate_rows():
    """Random sparse V' with duplicate rows (distance 0 off the diagonal) and an empty row."""
    rng = np.random.default_rng(0)
    n = 300
    M = sp.random(n, n, density=0.03, random_state=rng, format="csr", dtype=np.float64)
    M = sp.vstack([M[:-2], M[:1], sp.csr_matrix((1, n))]).tocsr().astype(np.float32)
    M = sp.diags(1.0 / np.maximum(M.sum(axis=1).A1, 1e-12)) @ M
    M = M.tocsr().astype(np.float32)
    for md in (None, 0.3, 0.9):
        a = _csr(*kernels.minsum_jaccard(M, 1, max_distance=md), n)
        b = _csr(*kx.minsum_jaccard(M, max_distance=md, xp=np, budget=500), n)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.data, b.data, atol=1e-6)
    assert b[0, n - 2] == 0.0 and b[n - 1].nnz == 0


def test_blocked_topk_matches_the_exact_engine():
    # small integers: every inner product is exact, so ties are real and must go to the smaller index
    X = np.random.default_rng(2).integers(-2, 3, size=(700, 16)).astype(np.float32)
    for k in (1, 7, 700):
        s_ref, i_ref = numpy_search(X, X[:600] if k < 700 else X, k)
        s, i = gpu.blocked_topk(X, X[:600] if k < 700 else X, k, xp=np, block_entries=50_000)
        np.testing.assert_array_equal(i, i_ref)
        np.testing.assert_allclose(s, s_ref, atol=1e-6)


# --- backend decisions that do not need a GPU -----------------------------------

def test_cpu_modules_and_device_checks():
    assert backend.array_module("cpu") is np
    assert backend.sparse_module("cpu") is sp
    assert backend.to_device(np.arange(3), "cpu").tolist() == [0, 1, 2]
    assert not backend.is_device_array(np.zeros(2))
    with pytest.raises(xmrank.InputError, match="Unknown device"):
        backend.resolve_device("gpu")


def test_device_features_checks_on_the_device_array_module():
    X = backend.device_features(np.arange(6, dtype=np.float64).reshape(3, 2), "cpu")
    assert X.dtype == np.float32 and X.flags.c_contiguous and X.shape == (3, 2)
    bad = np.ones((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(xmrank.InputError, match="features contains 1 NaN"):
        backend.device_features(bad, "cpu")
    with pytest.raises(xmrank.InputError, match="2-D array"):
        backend.device_features(np.ones(5), "cpu")
    with pytest.raises(xmrank.InputError, match="at least 2 rows"):
        backend.device_features(np.ones((1, 5)), "cpu")
    with pytest.raises(xmrank.InputError, match="real and numeric"):
        backend.device_features(np.array([["a", "b"], ["c", "d"]]), "cpu")


@pytest.mark.skipif(HAVE_CUDA, reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_an_input_error_not_a_fallback():
    match = "needs cupy" if not backend.have_cupy() else "no CUDA GPU"
    with pytest.raises(xmrank.InputError, match=match):
        backend.resolve_device("cuda")
    with pytest.raises(xmrank.InputError, match=match):
        backend.resolve_knn("auto", "cuda")


def test_torch_cpu_tensor_reaches_numpy():
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert not backend.is_device_array(t)
    np.testing.assert_array_equal(backend.to_device(t, "cpu"), t.numpy())
