"""Properties of every method on random inputs, and agreement with a dense reference."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xmrank
from conftest import unit_rows
from reference_jaccard import reference_jaccard


def _no_near_ties(X, tol=1e-5):
    S = np.sort(X.astype(np.float64) @ X.T.astype(np.float64), axis=1)
    return np.diff(S, axis=1).min() > tol


def _to_dense(D):
    out = np.ones(D.shape, dtype=np.float32)
    c = D.tocoo()
    out[c.row, c.col] = c.data
    return out


CASES = [
    ("vanilla", {}),
    ("modality", {}),
    ("modality-qe", {}),
    ("camera", {"k1_intra": 3, "k1_inter": 6, "k2_intra": 2, "k2_inter": 3}),
]


@pytest.mark.parametrize("method,extra", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_dense_reference(method, extra, seed):
    X, m = unit_rows(70, 12, seed=seed, gap=0.8, n_ids=10)
    kw = dict(method=method, k1=10, k2=3, **extra)
    labels = {"modalities": m} if method != "camera" else {"cameras": m}
    D = xmrank.jaccard_distance(X, dense=True, **kw, **labels)
    ref = reference_jaccard(X, method=method, k1=10, k2=3, modalities=m, cameras=m, **extra)
    np.testing.assert_allclose(D, ref, atol=1e-5)


def test_three_modalities_match_reference():
    X, m = unit_rows(90, 12, seed=3, n_modalities=3, gap=0.8, n_ids=10)
    D = xmrank.jaccard_distance(X, modalities=m, k1=12, k2=3, dense=True)
    ref = reference_jaccard(X, method="modality", k1=12, k2=3, modalities=m)
    np.testing.assert_allclose(D, ref, atol=1e-5)


def test_three_modalities_use_all_of_them():
    """Each row's expansion reaches rows of all three modalities."""
    X, m = unit_rows(90, 12, seed=4, n_modalities=3, gap=1.5, n_ids=10)
    D = xmrank.jaccard_distance(X, modalities=m, k1=12, k2=3)
    for g in range(3):
        rows = np.flatnonzero(m == g)
        sub = D[rows].tocoo()
        assert set(np.unique(m[sub.col])) == {0, 1, 2}


def test_cameras_with_strings_and_many_cameras():
    X, _ = unit_rows(80, 10, seed=5)
    cams = np.array(["cam%d" % (i % 4) for i in range(80)])
    D1 = xmrank.jaccard_distance(X, cameras=cams, method="camera", k1_intra=3, k1_inter=8, dense=True)
    ref = reference_jaccard(X, method="camera", cameras=cams, k1_intra=3, k1_inter=8)
    np.testing.assert_allclose(D1, ref, atol=1e-5)


def test_max_distance_keeps_exactly_the_close_pairs():
    X, m = unit_rows(120, 16, seed=6, gap=0.5, n_ids=12)
    full = xmrank.jaccard_distance(X, modalities=m, k1=10, k2=3)
    cut = xmrank.jaccard_distance(X, modalities=m, k1=10, k2=3, max_distance=0.5)
    assert cut.nnz == int((full.data <= 0.5).sum()) < full.nnz
    assert np.allclose(_to_dense(cut)[_to_dense(full) <= 0.5], _to_dense(full)[_to_dense(full) <= 0.5])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(24, 60),
    method=st.sampled_from(["vanilla", "modality", "modality-qe", "camera"]),
    k1=st.integers(6, 12),
    k2=st.integers(1, 3),
)
def test_properties(seed, n, method, k1, k2):
    X, m = unit_rows(n, 8, seed=seed, gap=0.6)
    assume(np.bincount(m, minlength=2).min() > k1 + 1)
    assume(_no_near_ties(X))
    kw = dict(method=method, k1=k1, k2=k2, k1_intra=min(k1, 5), k1_inter=k1, k2_intra=min(k2, 2), k2_inter=k2)
    lab = {"modalities": m, "cameras": m}
    D = xmrank.jaccard_distance(X, **kw, **lab)
    assert sp.isspmatrix_csr(D) and D.dtype == np.float32
    dense = _to_dense(D)
    # symmetric, zero diagonal, values in [0, 1]
    np.testing.assert_allclose(dense, dense.T, atol=1e-6)
    assert np.all(np.diag(dense) == 0)
    assert dense.min() >= 0 and dense.max() <= 1
    # sparse and dense outputs agree
    np.testing.assert_allclose(xmrank.jaccard_distance(X, dense=True, **kw, **lab), dense, atol=1e-6)
    # permuting the rows permutes the result
    perm = np.random.default_rng(seed).permutation(n)
    Dp = xmrank.jaccard_distance(X[perm], dense=True, **kw, modalities=m[perm], cameras=m[perm])
    np.testing.assert_allclose(Dp, dense[np.ix_(perm, perm)], atol=1e-5)
    # renaming the labels changes nothing
    names = np.array(["visible", "infrared"])[m]
    Dn = xmrank.jaccard_distance(X, dense=True, **kw, modalities=names, cameras=names)
    np.testing.assert_allclose(Dn, dense, atol=1e-5)


def test_auto_method_choice():
    """"auto" with modalities is the rule the measured modality bias picks; without them, vanilla."""
    from xmrank.jaccard.modality_bias import choose_method, modality_bias

    for gap in (0.8, 3.0):
        X, m = unit_rows(60, 8, seed=7, gap=gap)
        expected, _ = choose_method(modality_bias(X, m))
        auto = xmrank.jaccard_distance(X, modalities=m, k1=8, k2=2, dense=True)
        assert np.array_equal(auto, xmrank.jaccard_distance(X, modalities=m, method=expected, k1=8, k2=2, dense=True))
    assert expected == "modality"  # a wide gap: plain lists stay in their modality
    plain = xmrank.jaccard_distance(X, k1=8, k2=2, dense=True)
    assert np.array_equal(plain, xmrank.jaccard_distance(X, method="vanilla", k1=8, k2=2, dense=True))
    assert not np.array_equal(auto, plain)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    X, m = unit_rows(50, 8, seed=8)
    a = xmrank.jaccard_distance(torch.from_numpy(X), modalities=torch.from_numpy(m), k1=6, k2=2, dense=True)
    b = xmrank.jaccard_distance(X, modalities=m, k1=6, k2=2, dense=True)
    assert np.array_equal(a, b)


def test_modality_camera_with_one_camera_per_modality_is_modality():
    X, m = unit_rows(80, 10, seed=9, gap=0.8, n_ids=8)
    a = xmrank.jaccard_distance(X, modalities=m, cameras=m * 7 + 3, method="modality-camera", k1=10, k2=3, dense=True)
    b = xmrank.jaccard_distance(X, modalities=m, method="modality", k1=10, k2=3, dense=True)
    np.testing.assert_array_equal(a, b)


def test_modality_camera_balances_cameras_inside_a_modality():
    from xmrank.datasets import make_biased

    X, ids, mods, cams = make_biased(n_ids=20, per_id=8, gap=1.5, n_cameras_per_modality=2, camera_gap=1.0, seed=0)
    D = xmrank.jaccard_distance(X, modalities=mods, cameras=cams, method="modality-camera", k1=16, k2=2)
    plain = xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=16, k2=2)
    same_id_other_cam = (ids[:, None] == ids[None, :]) & (cams[:, None] != cams[None, :])
    # identities are pulled together across cameras more than by the modality-only lists
    assert _to_dense(D)[same_id_other_cam].mean() < _to_dense(plain)[same_id_other_cam].mean()
    dense = _to_dense(D)
    np.testing.assert_allclose(dense, dense.T, atol=1e-6)


@pytest.mark.parametrize("t", [0.05, 0.3, 0.6, 0.9, 0.999])
def test_max_distance_keeps_exactly_the_pairs_within_it(t):
    """The thresholded path finds exactly the pairs of the full matrix within t, with identical values."""
    from xmrank.datasets import make_biased

    X, _, m, _ = make_biased(n_ids=60, per_id=6, gap=1.0, noise=0.6, seed=3)
    full = xmrank.jaccard_distance(X, modalities=m).tocoo()
    cut = xmrank.jaccard_distance(X, modalities=m, max_distance=t).tocoo()
    keep = full.data <= np.float32(t)
    a = dict(zip(zip(full.row[keep].tolist(), full.col[keep].tolist()), full.data[keep].tolist()))
    b = dict(zip(zip(cut.row.tolist(), cut.col.tolist()), cut.data.tolist()))
    assert a == b
