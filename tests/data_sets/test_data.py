"""Shipped data: the CLIP image/caption features and the synthetic biased set."""

from importlib import resources

import numpy as np
import pytest

from xmrank import InputError
from xmrank.datasets import load_clip_pairs, make_biased
from xmrank.knn import knn_search


def test_clip_pairs_shapes_and_pairing():
    X, ids, mods = load_clip_pairs()
    assert X.shape == (1000, 512) and X.dtype == np.float32
    assert ids.shape == mods.shape == (1000,)
    assert set(np.unique(mods)) == {0, 1}
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=2e-3)
    # every id is one image and one caption
    for m in (0, 1):
        assert np.array_equal(np.sort(ids[mods == m]), np.arange(500))


def test_clip_pairs_are_modality_biased():
    X, ids, mods = load_clip_pairs()
    _, idx = knn_search(X, X, 21)
    assert np.all(mods[idx] == mods[:, None])


def test_clip_pairs_ship_with_licence_and_attribution():
    folder = resources.files("xmrank.data")
    licence = folder.joinpath("LICENSE-Modality-Gap.txt").read_text()
    assert "MIT License" in licence
    readme = folder.joinpath("README.md").read_text()
    assert "Weixin-Liang/Modality-Gap" in readme and "8e20cb2" in readme


def test_make_biased_shapes_and_labels():
    X, ids, mods, cams = make_biased(n_ids=7, per_id=5, n_modalities=3, n_cameras_per_modality=2, dim=16, seed=1)
    n = 7 * 5 * 3
    assert X.shape == (n, 16) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(np.bincount(mods), [35, 35, 35])
    assert np.array_equal(np.bincount(ids), [15] * 7)
    # cameras are unique across modalities: each camera belongs to one modality
    for cam in np.unique(cams):
        assert np.unique(mods[cams == cam]).size == 1
    assert np.unique(cams).size == 6
    # every identity is seen in every modality
    assert all(np.unique(mods[ids == i]).size == 3 for i in range(7))


def test_make_biased_is_deterministic_by_seed():
    a = make_biased(n_ids=10, per_id=4, seed=3)
    b = make_biased(n_ids=10, per_id=4, seed=3)
    c = make_biased(n_ids=10, per_id=4, seed=4)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("gap, low, high", [(0.0, 0.35, 0.65), (1.5, 0.0, 0.01)])
def test_make_biased_gap_controls_the_bias(gap, low, high):
    X, ids, mods, _ = make_biased(n_ids=30, per_id=6, gap=gap, noise=0.3, seed=0)
    _, idx = knn_search(X, X, 21)
    cross = np.mean(mods[idx[:, 1:]] != mods[:, None])
    assert low <= cross <= high


def test_make_biased_camera_gap_separates_cameras():
    X, ids, mods, cams = make_biased(n_ids=20, per_id=6, gap=0.0, camera_gap=2.0, noise=0.2, seed=0)
    _, idx = knn_search(X, X, 6)
    assert np.mean(cams[idx[:, 1:]] == cams[:, None]) > 0.95


@pytest.mark.parametrize("kwargs, match", [
    ({"n_ids": 0}, "n_ids"),
    ({"gap": -1.0}, "gap"),
    ({"noise": float("nan")}, "noise"),
    ({"n_modalities": 3, "dim": 3}, "dim"),
])
def test_make_biased_rejects_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        make_biased(**kwargs)
