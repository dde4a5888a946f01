"""Input validation at the library boundary.

Every public function checks its inputs here, once, and raises
:class:`InputError` (a :class:`ValueError`) with one sentence that names the
argument and what was expected. Nothing below the boundary re-checks.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

__all__ = [
    "InputError",
    "check_features",
    "check_labels",
    "check_int",
    "check_real",
    "check_option",
]


class InputError(ValueError):
    """Raised for malformed user input; the message is one sentence naming the argument."""


def _shape_str(shape) -> str:
    return "x".join(str(s) for s in shape) if len(shape) else "scalar"


def _to_numpy(array, name):
    """Bring torch/cupy arrays to numpy without importing either library."""
    mod = type(array).__module__.split(".")[0]
    if mod == "torch":
        array = array.detach()
        if array.device.type != "cpu":
            array = array.cpu()
        return array.numpy()
    if mod == "cupy":
        return array.get()
    try:
        return np.asarray(array)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputError(f"{name} could not be converted to an array: {exc}") from None


def check_features(features, name: str = "features", *, min_rows: int = 2) -> np.ndarray:
    """Return ``features`` as a C-contiguous float32 2-D array, or raise InputError."""
    if features is None:
        raise InputError(f"{name} is required: expected a 2-D array of shape (n_samples, n_features).")
    X = _to_numpy(features, name)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise InputError(f"{name} must be numeric; got an array of dtype {X.dtype}.")
    if np.iscomplexobj(X):
        raise InputError(f"{name} must be real-valued; got dtype {X.dtype}.")
    if X.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got shape {_shape_str(X.shape)}."
        )
    if X.shape[0] < min_rows:
        raise InputError(f"{name} must have at least {min_rows} rows; got {X.shape[0]}.")
    if X.shape[1] < 1:
        raise InputError(f"{name} must have at least one column; got shape {_shape_str(X.shape)}.")
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        n_bad = int((~finite).sum())
        raise InputError(
            f"{name} contains {n_bad} NaN or infinite value(s), the first at row {bad[0]}, column {bad[1]}."
        )
    return X


def check_labels(labels, n_samples: int, name: str):
    """Encode a per-row label array (ints or strings) as dense integer codes.

    Returns
    -------
    codes : ndarray of int64, shape (n_samples,)
        ``classes[codes] == labels``.
    classes : ndarray
        The sorted distinct labels.
    """
    arr = _to_numpy(labels, name)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array with one label per row; got shape {_shape_str(arr.shape)}.")
    if arr.shape[0] != n_samples:
        raise InputError(
            f"{name} must have one label per row of features ({n_samples}); got {arr.shape[0]}."
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contains NaN or infinite values.")
        if not np.all(arr == np.round(arr)):
            raise InputError(f"{name} must hold integer or string labels; got non-integer floats.")
        arr = arr.astype(np.int64)
    if arr.dtype == object:
        arr = arr.astype(str)
    classes, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), classes


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check that ``value`` is an integer within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputError(f"{name} must be an integer; got {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be >= {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be <= {maximum}; got {value}.")
    return value


def check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """Check that ``value`` is a finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise InputError(f"{name} must be a finite number; got {value!r}.")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise InputError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}.")
    return value


def check_option(value, name: str, options) -> str:
    """Check that ``value`` is one of ``options``."""
    if value not in options:
        expected = ", ".join(repr(o) for o in options)
        raise InputError(f"Unknown {name} {value!r}: expected one of {expected}.")
    return value
