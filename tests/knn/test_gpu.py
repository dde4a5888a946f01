"""The GPU path on a CUDA GPU: the device glue (cupy, faiss-gpu, DLPack, torch tensors) and GPUs by index.

Every test here needs cupy and a CUDA GPU: it is marked ``gpu`` and skipped
without one. The same kernels run on the CPU, with numpy standing in for cupy,
in ``test_kernels_xp.py``.
"""

import numpy as np
import pytest

import xmrank
from xmrank import backend
from xmrank.datasets import make_biased
from xmrank.jaccard import kernels_xp as kx

from conftest import unit_rows
from golden_cases import GOLDEN_KEYS
from golden_cases import dense_rows as _dense
from golden_cases import golden_params as _params
from golden_cases import golden_plan as _plan

HAVE_CUDA = backend.cuda_available()
needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")]


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")
@pytest.mark.parametrize("knn", ["auto", "numpy"])
def test_gpu_knn_matches_cpu(knn):
    from xmrank.knn import knn_search

    X, _ = unit_rows(2000, 64, seed=4)
    s_cpu, i_cpu = knn_search(X, X, 20, knn="numpy")
    s_gpu, i_gpu = knn_search(X, X, 20, knn=knn, device="cuda")
    assert (i_gpu == i_cpu).mean() > 0.999
    np.testing.assert_allclose(s_gpu, s_cpu, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")
@pytest.mark.parametrize("method", list(GOLDEN_KEYS))
def test_cupy_pipeline_matches_the_published_code(golden, method):
    import cupy

    out = kx.jaccard_from_plan(cupy.asarray(golden["X"]), _plan(golden, method), xp=cupy)
    D = _dense(*out, golden["X"].shape[0])
    np.testing.assert_allclose(D, golden[GOLDEN_KEYS[method]], atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")
def test_torch_cuda_tensor_moves_by_dlpack():
    torch = pytest.importorskip("torch")
    import cupy

    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    assert backend.is_device_array(t)
    c = backend.to_device(t, "cuda")
    assert isinstance(c, cupy.ndarray) and c.data.ptr == t.data_ptr()
    X = backend.device_features(t, "cuda")
    assert isinstance(X, cupy.ndarray) and X.dtype == cupy.float32


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")
@pytest.mark.parametrize("method", list(GOLDEN_KEYS))
@pytest.mark.parametrize("source", ["numpy", "cupy", "torch"])
def test_jaccard_distance_on_cuda_is_the_golden_matrix(golden, method, source):
    """The public entry point with device='cuda', fed host, cupy and CUDA torch features."""
    import cupy

    X = golden["X"]
    if source == "cupy":
        X = cupy.asarray(X)
    elif source == "torch":
        torch = pytest.importorskip("torch")
        X = torch.as_tensor(X, device="cuda")
    kw = {k: v for k, v in _params(golden).items() if k in ("k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter")}
    D = xmrank.jaccard_distance(X, modalities=golden["modalities"], cameras=golden["modalities"], method=method,
                                device="cuda", dense=True, **kw)
    np.testing.assert_allclose(D, golden[GOLDEN_KEYS[method]], atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")
def test_cluster_on_cuda_gives_the_cpu_labels():
    X, mods = unit_rows(3000, 32, seed=7, n_ids=100)
    from sklearn.metrics import adjusted_rand_score

    # float sums run in another order on the device: a pair exactly at eps may fall either way
    gpu_labels = xmrank.cluster(X, modalities=mods, device="cuda")
    cpu_labels = xmrank.cluster(X, modalities=mods, device="cpu")
    assert len(set(cpu_labels)) > 50
    assert adjusted_rand_score(cpu_labels, gpu_labels) > 0.99


# --- the bfloat16 engine on CUDA (test_knn_bf16.py tests it on the CPU) --------

@pytest.mark.parametrize("n", [200, 1500])
def test_gpu_engine_on_cuda(n):
    torch = pytest.importorskip("torch")
    pytest.importorskip("cupy")
    if not HAVE_CUDA or not torch.cuda.is_available():
        pytest.skip("needs cupy, torch with CUDA and a CUDA GPU")
    from test_knn_bf16 import exact_bf16, oracle

    X, m = unit_rows(n, 256, seed=11, gap=0.5, n_ids=max(2, n // 10))
    s, i, st = exact_bf16.search_torch(X, X, 20, device="cuda", return_stats=True)
    ref_s, ref_i = oracle(X, X, 20)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, ref_s)
    assert backend.resolve_knn("bf16", "cuda") == "bf16-gpu"
    D = xmrank.jaccard_distance(X, modalities=m, k1=20, k2=4, dense=True, knn="bf16", device="cuda")
    F = xmrank.jaccard_distance(X, modalities=m, k1=20, k2=4, dense=True, knn="bf16")
    np.testing.assert_allclose(D, F, atol=1e-6, rtol=0)


for _mark in needs_cuda:
    test_gpu_engine_on_cuda = _mark(test_gpu_engine_on_cuda)


# --- a GPU by index (test_progress_device.py checks the messages without one) ---

@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA, reason="needs cupy and a CUDA GPU")
def test_gpu_by_index_runs_there():
    import cupy

    X, ids, mods, _ = make_biased(n_ids=20, per_id=6, seed=0)
    cpu = xmrank.cluster(X, modalities=mods, k1=20, k2=4)
    last = cupy.cuda.runtime.getDeviceCount() - 1
    on_gpu = xmrank.cluster(X, modalities=mods, k1=20, k2=4, device=f"cuda:{last}")
    assert np.array_equal(cpu, on_gpu)
    assert xmrank.XMCluster(k1=20, k2=4, device=f"cuda:{last}").fit(X, modalities=mods).info_["device"] == f"cuda:{last}"
    with pytest.raises(xmrank.InputError, match=rf"this machine has {last + 1} GPU\(s\)"):
        xmrank.cluster(X, modalities=mods, k1=20, k2=4, device=f"cuda:{last + 1}")
    with backend.using_device(f"cuda:{last}"):
        assert cupy.cuda.runtime.getDevice() == last
