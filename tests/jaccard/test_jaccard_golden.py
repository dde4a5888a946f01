"""xmrank's dense output against matrices computed by the published code itself."""

import numpy as np
import pytest

import xmrank
from golden_cases import golden_kwargs


_kwargs = golden_kwargs


KEYS = ["cc_vanilla_jaccard", "caj_plain_jaccard", "bmil_modality_aware_jaccard", "bmil_qe_only_jaccard",
        "caj_full_jaccard"]


@pytest.mark.parametrize("knn", ["faiss", "numpy"])
@pytest.mark.parametrize("key", KEYS)
def test_matches_published_code(golden, key, knn):
    D = xmrank.jaccard_distance(golden["X"], dense=True, knn=knn, **_kwargs(golden, key))
    assert D.dtype == np.float32
    np.testing.assert_allclose(D, golden[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize("key", KEYS)
def test_sparse_output_is_the_golden_matrix(golden, key):
    D = xmrank.jaccard_distance(golden["X"], **_kwargs(golden, key))
    dense = np.ones(D.shape, dtype=np.float32)
    coo = D.tocoo()
    dense[coo.row, coo.col] = coo.data
    np.testing.assert_allclose(dense, golden[key], atol=1e-5, rtol=0)
    # every pair the published code puts below 1 is stored
    assert D.nnz >= int((golden[key] < 1).sum())
    assert D.nnz < D.shape[0] ** 2


def test_shuffled_rows_give_the_permuted_matrix(golden):
    rng = np.random.default_rng(1)
    perm = rng.permutation(golden["X"].shape[0])
    kw = _kwargs(golden, "bmil_modality_aware_jaccard")
    kw["modalities"] = kw["modalities"][perm]
    D = xmrank.jaccard_distance(golden["X"][perm], dense=True, **kw)
    np.testing.assert_allclose(D, golden["bmil_modality_aware_jaccard"][np.ix_(perm, perm)], atol=1e-5, rtol=0)


def test_modalities_fix_the_cross_modal_bias(golden):
    """The point of the method: cross-modal same-identity pairs get much closer."""
    ids, m = golden["ids"], golden["modalities"]
    cross_same = (ids[:, None] == ids[None, :]) & (m[:, None] != m[None, :])
    van = golden["cc_vanilla_jaccard"][cross_same].mean()
    mod = xmrank.jaccard_distance(golden["X"], modalities=m, method="modality", k1=int(golden["k1"]), k2=int(golden["k2"]), dense=True)
    assert mod[cross_same].mean() < van - 0.05
