"""The dask backend on a two-worker LocalCluster, and the row-block min-sum kernel it runs."""

import numpy as np
import pytest
import scipy.sparse as sp

import xmrank
from xmrank.jaccard import blocks, kernels
from xmrank.knn import ann, knn_search

from conftest import assert_same_sparse, unit_rows
from golden_cases import golden_kwargs

distributed = pytest.importorskip("distributed")
from xmrank.distributed import dask_knn, jaccard_distance_dask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


_kw = golden_kwargs




@pytest.mark.slow
@pytest.mark.parametrize("key", ["cc_vanilla_jaccard", "bmil_modality_aware_jaccard", "caj_full_jaccard",
                                 "bmil_qe_only_jaccard"])
def test_cluster_result_is_the_golden_matrix(client, golden, key):
    D = jaccard_distance_dask(golden["X"], client=client, dense=True, block_rows=97, **_kw(golden, key))
    np.testing.assert_allclose(D, golden[key], atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("max_distance", [None, 0.6])
def test_same_as_single_machine_on_random_data(client, max_distance):
    X, mods = unit_rows(1500, 24, seed=5, n_ids=120, gap=0.4)
    local = xmrank.jaccard_distance(X, modalities=mods, k1=20, k2=4, max_distance=max_distance)
    dist = jaccard_distance_dask(X, client=client, modalities=mods, k1=20, k2=4, max_distance=max_distance)
    assert_same_sparse(local, dist)
    assert (abs(dist - dist.T) > 0).nnz == 0


@pytest.mark.slow
def test_ann_on_the_cluster_equals_ann_on_one_machine(client, monkeypatch):
    monkeypatch.setattr(ann, "MIN_ROWS", 0)  # the index is built on the client, so this reaches it
    X, mods = unit_rows(3000, 16, seed=6, n_ids=150, gap=0.3)
    local = xmrank.jaccard_distance(X, modalities=mods, k1=20, k2=4, knn="ann", max_distance=0.6)
    dist = jaccard_distance_dask(X, client=client, modalities=mods, k1=20, k2=4, knn="ann", max_distance=0.6)
    assert_same_sparse(local, dist)


@pytest.mark.slow
def test_calibrated_index_searched_on_the_cluster_equals_one_machine(client, monkeypatch, caplog):
    """With the index the cheaper search (exact priced 30 times higher), the cluster searches it block by block."""
    import logging

    from xmrank.knn import ann_lists, dask_engine

    monkeypatch.setattr(ann, "MIN_ROWS", 0)
    monkeypatch.setattr(ann_lists, "EXACT_COST", {k: 30 * v for k, v in ann_lists.EXACT_COST.items()})
    shipped = []
    real = dask_engine.index_search_blocks
    monkeypatch.setattr(dask_engine, "index_search_blocks",
                        lambda index, q, k: shipped.append(q.shape[0]) or real(index, q, k))
    X, mods = unit_rows(12000, 32, seed=6, n_ids=480, gap=0.3)
    with caplog.at_level(logging.INFO, logger="xmrank"):
        # the modality rule named: one calibrated group per modality (auto measures no bias at gap 0.3)
        local = xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=20, k2=4, knn="ann",
                                        max_distance=0.6)
        dist = jaccard_distance_dask(X, client=client, modalities=mods, method="modality", k1=20, k2=4, knn="ann",
                                     max_distance=0.6)
    choices = [r.ann["choice"] for r in caplog.records if hasattr(r, "ann") and "group" in r.ann]
    assert choices.count("ann") == 4  # both modalities, both runs
    assert shipped == [12000, 12000]  # the cluster searched every row of both modalities
    assert_same_sparse(local, dist)


@pytest.mark.slow
def test_knn_dask_engine_inside_dask_knn(client):
    X, _ = unit_rows(900, 12, seed=7)
    with dask_knn(client, block_rows=200):
        s, i = knn_search(X, X[:500], 9, knn="dask")
    s_ref, i_ref = knn_search(X, X[:500], 9, knn="faiss")
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(s, s_ref, atol=1e-6)


@pytest.mark.slow
def test_jaccard_distance_with_knn_dask(client):
    """The public function sends its searches to the cluster; the rest runs here."""
    X, mods = unit_rows(800, 16, seed=8, n_ids=60, gap=0.4)
    with dask_knn(client):
        D = xmrank.jaccard_distance(X, modalities=mods, k1=20, k2=4, knn="dask", max_distance=0.7)
    assert_same_sparse(D, xmrank.jaccard_distance(X, modalities=mods, k1=20, k2=4, max_distance=0.7))


def test_knn_dask_without_a_client_is_an_input_error():
    X, _ = unit_rows(50, 4)
    if distributed.client._get_global_client() is not None:
        pytest.skip("a default dask client exists in this process")
    with pytest.raises(xmrank.InputError, match="needs a dask.distributed Client"):
        knn_search(X, X, 3, knn="dask")


@pytest.mark.slow
def test_bad_options_are_input_errors(client):
    X, mods = unit_rows(60, 4)
    with pytest.raises(xmrank.InputError, match="knn backend 'dask'"):
        jaccard_distance_dask(X, client=client, knn="dask")
    with pytest.raises(xmrank.InputError, match="block_rows must be >= 1"):
        jaccard_distance_dask(X, client=client, block_rows=0)
    with pytest.raises(xmrank.InputError, match="modalities must have one label per row"):
        jaccard_distance_dask(X, client=client, modalities=mods[:10])


# --- the row-block kernel, without a cluster ---------------------------------------

def _random_vq(n, seed):
    rng = np.random.default_rng(seed)
    M = sp.random(n, n, density=0.04, random_state=rng, format="csr", dtype=np.float64)
    M = sp.diags(1.0 / np.maximum(M.sum(axis=1).A1, 1e-12)) @ M
    return M.tocsr().astype(np.float32)


@pytest.mark.parametrize("max_distance", [0.2, 0.8, 0.95])
def test_blocks_kernel_equals_the_numba_kernel(max_distance):
    Vq = _random_vq(400, 1)
    ref = kernels.minsum_jaccard(Vq, 2, max_distance=max_distance)
    for block_rows in (None, 37):
        got = blocks.minsum_jaccard(Vq, 2, max_distance=max_distance, block_rows=block_rows)
        assert_same_sparse(sp.csr_matrix((ref[2], ref[1], ref[0])), sp.csr_matrix((got[2], got[1], got[0])), atol=0)


def test_row_ranges_partition_the_pairs():
    Vq = _random_vq(300, 2)
    parts = blocks.prepare(Vq)
    whole = blocks.minsum_rows(parts, 0, 300, max_distance=0.9)
    pieces = [blocks.minsum_rows(parts, lo, min(300, lo + 64), max_distance=0.9, n_threads=3) for lo in range(0, 300, 64)]
    key = lambda r, c: set(zip(r.tolist(), c.tolist()))  # noqa: E731
    assert key(*whole[:2]) == set().union(*(key(*p[:2]) for p in pieces))
    assert (whole[1] > whole[0]).all()  # upper triangle only


def test_small_buffers_overflow_and_are_redone():
    """Nearly every pair is kept at max_distance 0.999: the first buffers overflow."""
    Vq = _random_vq(500, 3)
    ref = kernels.minsum_jaccard(Vq, 1, max_distance=0.999)
    got = blocks.minsum_jaccard(Vq, 1, max_distance=0.999)
    assert len(ref[2]) > 32 * 500
    assert_same_sparse(sp.csr_matrix((ref[2], ref[1], ref[0])), sp.csr_matrix((got[2], got[1], got[0])), atol=0)
