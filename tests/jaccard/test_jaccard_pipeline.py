"""The Jaccard pipeline's pieces: the typed plan, the executors, the one min-sum kernel and ``n_jobs``."""

import inspect

import numba
import numpy as np
import pytest
import scipy.sparse as sp

import xmrank
from xmrank.jaccard import (Executor, JaccardPlan, NumbaExecutor, blocks, jaccard_distance, plan_jaccard,
                            run_stages)
from xmrank.jaccard.kernels_xp import ArrayModuleExecutor
from xmrank.jaccard.stages import to_output

from conftest import assert_same_sparse, unit_rows

X, MODS = unit_rows(240, 12, seed=3, n_ids=30, gap=0.4)
CAMS = np.arange(240) % 3




KW = {
    "vanilla": dict(method="vanilla", k1=12, k2=4),
    "modality": dict(method="modality", modalities=MODS, k1=12, k2=4),
    "modality-qe": dict(method="modality-qe", modalities=MODS, k1=12, k2=4),
    "camera": dict(method="camera", cameras=CAMS, k1_intra=4, k1_inter=10, k2_intra=2, k2_inter=3),
    "modality-camera": dict(method="modality-camera", modalities=MODS, cameras=CAMS, k1=12, k2=4),
}


@pytest.mark.parametrize("method", list(KW))
def test_plan_is_typed_and_feeds_the_stages(method):
    plan = plan_jaccard(X, **KW[method])
    assert isinstance(plan, JaccardPlan) and plan.method == method and plan.n == 240
    assert plan.rank.shape == plan.sims.shape == plan.reciprocal.shape
    assert plan.rank.dtype == np.int64 and plan.reciprocal.dtype == np.bool_
    assert (plan.half_reciprocal is None) == (method == "camera")
    assert plan.expansion is None or plan.expansion.shape == (240, 240)
    out = run_stages(X, plan, NumbaExecutor(2), max_distance=0.7)
    assert_same_sparse(to_output(*out, 240, dense=False), jaccard_distance(X, max_distance=0.7, **KW[method]))


def test_plan_resolves_auto_and_checks_like_jaccard_distance():
    from xmrank.jaccard.modality_bias import choose_method, modality_bias

    plan = plan_jaccard(X, modalities=MODS, k1=12, k2=4)  # "auto": the method the measured modality bias picks
    assert plan.method == choose_method(modality_bias(X, MODS))[0] == plan.chosen["method"]["value"]
    assert plan_jaccard(X, cameras=CAMS, k1_intra=4, k1_inter=10).method == "camera"
    assert plan_jaccard(X, k1=12, k2=4).method == "vanilla"
    with pytest.raises(xmrank.InputError, match="k2=5 must not exceed k1=4"):
        plan_jaccard(X, k1=4, k2=5)
    with pytest.raises(xmrank.InputError, match="needs modalities"):
        plan_jaccard(X, method="modality")


@pytest.mark.parametrize("method", list(KW))
@pytest.mark.parametrize("max_distance", [None, 0.6])
def test_array_module_executor_on_numpy_equals_the_numba_executor(method, max_distance):
    numba_D = jaccard_distance(X, max_distance=max_distance, **KW[method])
    array_D = jaccard_distance(X, max_distance=max_distance, executor="array", **KW[method])
    small_blocks = jaccard_distance(X, max_distance=max_distance, executor=ArrayModuleExecutor(np, budget=3000),
                                    **KW[method])
    assert_same_sparse(numba_D, array_D)
    assert_same_sparse(numba_D, small_blocks)


def test_a_new_executor_plugs_in():
    calls = []

    class Recording(NumbaExecutor):
        name = "recording"

        def weights(self, X, plan):
            calls.append("weights")
            return super().weights(X, plan)

        def expand(self, V, plan):
            calls.append("expand")
            return super().expand(V, plan)

        def minsum(self, Vq, max_distance):
            calls.append(("minsum", max_distance))
            return super().minsum(Vq, max_distance)

    D = jaccard_distance(X, modalities=MODS, k1=12, k2=4, max_distance=0.5, executor=Recording())
    assert calls == ["weights", "expand", ("minsum", 0.5)]
    assert_same_sparse(D, jaccard_distance(X, modalities=MODS, k1=12, k2=4, max_distance=0.5))
    assert issubclass(ArrayModuleExecutor, Executor)
    with pytest.raises(xmrank.InputError, match="Unknown executor 'spark'"):
        jaccard_distance(X, k1=12, k2=4, executor="spark")


def test_n_jobs_has_scikit_learns_meaning():
    assert inspect.signature(jaccard_distance).parameters["n_jobs"].default == -1
    ref = jaccard_distance(X, modalities=MODS, k1=12, k2=4)
    before = numba.get_num_threads()
    for n_jobs in (None, 1, 2, -1, -2, 10_000):
        assert_same_sparse(jaccard_distance(X, modalities=MODS, k1=12, k2=4, n_jobs=n_jobs), ref, atol=0)
        assert numba.get_num_threads() == before
    with pytest.raises(xmrank.InputError, match="n_jobs must be a positive number of threads, -1 for all cores"):
        jaccard_distance(X, k1=12, k2=4, n_jobs=0)
    with pytest.raises(xmrank.InputError, match="n_jobs must be an integer"):
        jaccard_distance(X, k1=12, k2=4, n_jobs=1.5)


def test_n_jobs_sets_the_kernel_threads(monkeypatch):
    seen = []
    real = NumbaExecutor.minsum

    def spy(self, Vq, max_distance):
        seen.append((self.n_threads, numba.get_num_threads()))
        return real(self, Vq, max_distance)

    monkeypatch.setattr(NumbaExecutor, "minsum", spy)
    jaccard_distance(X, k1=12, k2=4, n_jobs=None)
    jaccard_distance(X, k1=12, k2=4, n_jobs=-1)
    assert seen[0] == (1, 1)
    assert seen[1][0] == seen[1][1] == min(numba.config.NUMBA_NUM_THREADS, __import__("os").cpu_count())


def test_one_min_sum_kernel_serves_the_square_and_the_rectangle():
    rng = np.random.default_rng(4)
    n, nq = 200, 60
    M = sp.random(n, n, density=0.05, random_state=rng, format="csr", dtype=np.float64)
    M = (sp.diags(1.0 / np.maximum(M.sum(axis=1).A1, 1e-12)) @ M).tocsr().astype(np.float32)
    ptr, idx, val = blocks.minsum_jaccard(M, 2)
    D = to_output(ptr, idx, val, n, dense=True)
    out = np.zeros((nq, n - nq), dtype=np.float32)
    blocks.accumulate_rectangle(out, M[:nq], M[nq:], 1.0, n_threads=3)
    np.testing.assert_allclose(out + 1.0, D[:nq, nq:], atol=1e-6, rtol=0)
    twice = np.zeros_like(out)
    blocks.accumulate_rectangle(twice, M[:nq], M[nq:], 0.5)
    np.testing.assert_allclose(twice, 0.5 * out, atol=1e-6, rtol=0)


def test_faiss_gpu_resources_are_made_once_per_device(monkeypatch):
    faiss = pytest.importorskip("faiss")
    from xmrank.knn import gpu

    made = []

    class FakeResources:
        def __init__(self):
            made.append(self)

    monkeypatch.setattr(faiss, "StandardGpuResources", FakeResources, raising=False)
    monkeypatch.setattr(gpu, "_RESOURCES", {})
    a, b, c = gpu.gpu_resources(0), gpu.gpu_resources(0), gpu.gpu_resources(1)
    assert a is b and a is not c and len(made) == 2
