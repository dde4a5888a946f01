"""Bad input ends in one InputError sentence that names the argument."""

import numpy as np
import pytest

import xmrank
from conftest import unit_rows

X, M = unit_rows(40, 8, seed=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(features=X[0]), r"features must be a 2-D array .* got shape 8"),
        (dict(features=np.zeros((1, 4), np.float32)), r"features must have at least 2 rows"),
        (dict(features=np.where(np.eye(40, 8) > 0, np.nan, X)), r"features contains 8 NaN or infinite value\(s\), the first at row 0, column 0"),
        (dict(features=np.full((5, 2), np.inf)), r"features contains 10 NaN or infinite"),
        (dict(features=np.array([["a", "b"], ["c", "d"]])), r"features must be numeric"),
        (dict(features=X, modalities=M[:-1]), r"modalities must have one label per row of features \(40\); got 39"),
        (dict(features=X, modalities=M.reshape(4, 10)), r"modalities must be a 1-D array .* got shape 4x10"),
        (dict(features=X, cameras=M[:3]), r"cameras must have one label per row"),
        (dict(features=X, method="bmil"), r"Unknown method 'bmil': expected one of 'auto', 'vanilla'"),
        (dict(features=X, modalities=np.zeros(40), method="modality"), r"modalities holds a single modality"),
        (dict(features=X, method="modality"), r"method='modality' needs modalities"),
        (dict(features=X, method="camera"), r"method='camera' needs cameras"),
        (dict(features=X, k1=40), r"k1=40 must be smaller than the number of rows \(40\)"),
        (dict(features=X, modalities=np.r_[np.zeros(35), np.ones(5)], method="modality", k1=20), r"asks the smallest modality for more neighbours than it has rows \(5\)"),
        (dict(features=X, k1=0), r"k1 must be >= 1; got 0"),
        (dict(features=X, k1=2.5), r"k1 must be an integer; got 2.5"),
        (dict(features=X, k1=10, k2=11), r"k2=11 must not exceed k1=10"),
        (dict(features=X, modalities=M, method="modality", k1=10, k2=6), r"k2=6 must not exceed the per-modality list length k1 // 2 = 5"),
        (dict(features=X, knn="annoy"), r"Unknown knn backend 'annoy'"),
        (dict(features=X, max_distance=-0.1), r"max_distance must be >= 0.0"),
        (dict(features=X, modalities=np.r_[np.full(39, 0.0), np.nan]), r"modalities contains NaN"),
    ],
)
def test_bad_input(kwargs, match):
    features = kwargs.pop("features")
    kwargs.setdefault("k1", 10)
    kwargs.setdefault("k2", 3)
    with pytest.raises(xmrank.InputError, match=match):
        xmrank.jaccard_distance(features, **kwargs)


def test_input_error_is_a_value_error():
    assert issubclass(xmrank.InputError, ValueError)


def test_cuda_without_cupy_or_gpu_is_a_clear_error():
    import importlib.util

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed here")
    with pytest.raises(xmrank.InputError, match=r"device='cuda' needs cupy, which is not installed"):
        xmrank.jaccard_distance(X, device="cuda", k1=10, k2=3)


def test_unknown_device():
    with pytest.raises(xmrank.InputError, match=r"Unknown device 'tpu'"):
        xmrank.jaccard_distance(X, device="tpu", k1=10, k2=3)
