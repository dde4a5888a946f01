"""Hostile input to the Jaccard distance, and the set expansion at large k1.

- a method that needs modalities names the method asked for; k1 = N is refused for every method;
- masked arrays are refused (not silently unmasked); bfloat16 / float16 torch tensors are widened, complex refused;
- the set expansion's memory follows its output: large k1 equals the previous algorithm, k1 = N / 2 the dense
  reference.
"""

import numpy as np
import pytest

import xmrank
from conftest import one_line, unit_rows
from reference_jaccard import reference_jaccard
from xmrank import InputError
from xmrank.jaccard import kernels

X, M = unit_rows(40, 8, seed=0)
M = np.repeat([0, 1], 20)


# --- methods, k1 and the features' types --------------------------------------------------------------------

@pytest.mark.parametrize("method", ["modality", "modality-qe", "modality-camera"])
def test_missing_modalities_name_the_method_asked_for(method):
    with pytest.raises(InputError, match=rf"method='{method}' needs modalities") as e:
        xmrank.jaccard_distance(X, method=method, cameras=M, k1=10, k2=3)
    one_line(e)


def test_k1_equal_to_n_is_refused_for_every_method():
    X, _ = unit_rows(10, 4, seed=0)
    mods = np.repeat([0, 1], 5)
    for kwargs in ({}, {"modalities": mods, "method": "modality"}, {"modalities": mods, "method": "modality-qe"}):
        with pytest.raises(InputError, match=r"k1=10 must be smaller than the number of rows \(10\)"):
            xmrank.jaccard_distance(X, k1=10, k2=2, **kwargs)
    xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=9, k2=2)  # k1 = N - 1 stays valid
    xmrank.jaccard_distance(X, k1=9, k2=2)


def test_masked_arrays_are_refused_not_unmasked():
    X, mods = unit_rows(20, 4, seed=0)
    masked = np.ma.masked_array(X, mask=np.eye(20, 4, dtype=bool))
    with pytest.raises(InputError, match="masked array with 4 masked entries") as e:
        xmrank.jaccard_distance(masked, k1=5, k2=2)
    one_line(e)
    full = np.ma.masked_array(X, mask=False)  # nothing masked: read as its data
    np.testing.assert_array_equal(xmrank.jaccard_distance(full, k1=5, k2=2).toarray(),
                                  xmrank.jaccard_distance(X, k1=5, k2=2).toarray())


def test_torch_bfloat16_and_float16_features_are_widened():
    torch = pytest.importorskip("torch")
    for dtype in (torch.bfloat16, torch.float16):
        t = torch.tensor(X).to(dtype)
        D = xmrank.jaccard_distance(t, k1=10, k2=3, dense=True)
        ref = xmrank.jaccard_distance(t.float().numpy(), k1=10, k2=3, dense=True)
        np.testing.assert_array_equal(D, ref)
    with pytest.raises(InputError, match="features must be real-valued|could not be converted"):
        xmrank.jaccard_distance(torch.tensor(X).to(torch.complex64), k1=10, k2=3)


# --- set expansion: memory follows the output, results unchanged at large k1 --------------------------------

def _previous_reciprocal_mask(rank, k):
    """The previous kernel's rule, vectorised: i among the first k+1 columns of rank[rank[i, c]]."""
    n, ncol = rank.shape
    kk = min(k + 1, ncol)
    mask = np.zeros((n, ncol), dtype=bool)
    rows = np.arange(n)
    for c in range(kk):
        mask[:, c] = (rank[rank[:, c], :kk] == rows[:, None]).any(axis=1)
    return mask


def _previous_expand(rank, r_mask, h_rank, h_mask):
    """The previous kernel's expansion, row by row: R_i plus every H_c sharing > 2/3 of its members with R_i."""
    n = rank.shape[0]
    indptr, out = [0], []
    for i in range(n):
        R = rank[i][r_mask[i]]
        H = h_rank[R]
        Hm = h_mask[R]
        inter = (np.isin(H, R) & Hm).sum(axis=1)
        grow = inter > (2.0 / 3.0) * Hm.sum(axis=1)
        E = np.unique(np.concatenate([R, H[grow][Hm[grow]]]))
        out.append(E)
        indptr.append(indptr[-1] + E.size)
    return np.array(indptr), np.concatenate(out)


@pytest.mark.slow
def test_large_k1_sets_equal_the_previous_algorithm():
    Xl, _ = unit_rows(1500, 16, seed=5, n_ids=60)
    k1 = 300
    sims, rank = xmrank.jaccard.neighbors.global_lists(Xl, k1)
    half = int(np.around(k1 / 2))
    r_mask, h_mask = kernels.reciprocal_mask(rank, k1), kernels.reciprocal_mask(rank, half)
    assert np.array_equal(r_mask, _previous_reciprocal_mask(rank, k1))
    assert np.array_equal(h_mask, _previous_reciprocal_mask(rank, half))
    indptr, indices = kernels.expand_lists(rank, r_mask, rank, h_mask)
    ref_ptr, ref_idx = _previous_expand(rank, r_mask, rank, h_mask)
    assert np.array_equal(indptr, ref_ptr) and np.array_equal(indices, ref_idx)
    assert np.diff(indptr).max() > k1  # the expansion did grow sets beyond k1
    # softmax weights: the reused search similarities and the dot products, as the previous kernel had them
    w = kernels.softmax_weights(Xl, indptr, indices, rank, sims)
    rows = np.repeat(np.arange(1500), np.diff(indptr))
    d = (2.0 - 2.0 * np.einsum("ij,ij->i", Xl[rows], Xl[indices], dtype=np.float64))
    assert np.allclose(w.sum(dtype=np.float64), 1500, atol=1e-2)
    top = np.zeros(1500)
    np.maximum.at(top, rows, -d)
    e = np.exp(-d - top[rows])
    np.testing.assert_allclose(w, e / np.bincount(rows, weights=e, minlength=1500)[rows], rtol=2e-4, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["vanilla", "modality"])
def test_k1_at_half_of_n_matches_the_dense_reference(method):
    Xs, mods = unit_rows(240, 12, seed=7, gap=0.6, n_ids=20)
    D = xmrank.jaccard_distance(Xs, modalities=mods, method=method, k1=110, k2=6, dense=True)
    ref = reference_jaccard(Xs, method=method, k1=110, k2=6, modalities=mods)
    np.testing.assert_allclose(D, ref, atol=2e-5)


def test_expand_lists_without_expansion_and_duplicates():
    rank = np.array([[0, 1, 1], [1, 0, 2], [2, 1, 0]])
    mask = np.ones((3, 3), bool)
    ptr, idx = kernels.expand_lists(rank, mask)
    assert ptr.tolist() == [0, 2, 5, 8] and idx.tolist() == [0, 1, 0, 1, 2, 0, 1, 2]
    ptr, idx = kernels.expand_lists(rank, np.zeros((3, 3), bool), rank, mask)
    assert ptr.tolist() == [0, 0, 0, 0] and idx.size == 0
