"""Input validation at the library boundary.

Every public function checks its inputs here, once, and raises
:class:`InputError` (a :class:`ValueError`) with one sentence that names the
argument and what was expected. Nothing below the boundary re-checks.
"""

from __future__ import annotations

import os
import sys
import warnings
from numbers import Integral, Real

import numpy as np

__all__ = [
    "InputError",
    "check_features",
    "check_norms",
    "check_label_values",
    "check_labels",
    "check_cluster_labels",
    "check_distance",
    "check_int",
    "check_real",
    "check_option",
    "check_seed",
    "either_spelling",
    "is_auto",
    "plain",
    "torch_numpy",
    "warn_user",
]

#: Largest squared row norm accepted in features: every similarity ``x.y`` and every
#: ``|x|^2 + |y|^2 - 2 x.y`` then stays finite in float32 (|x.y| <= max |x|^2 by Cauchy-Schwarz).
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 4.0
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Seeds: non-negative and at most 64 bits.
SEED_MAX = 2**64 - 1


class InputError(ValueError):
    """Raised for malformed user input; the message is one sentence naming the argument."""


def is_auto(value) -> bool:
    """Whether ``value`` is the word ``"auto"`` (a parameter to be chosen from the data)."""
    return isinstance(value, str) and value == "auto"


def plain(value) -> str:
    """``value`` for a message: numpy scalars as the plain Python value (``0``, not ``np.int64(0)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bytes)):
        return repr(value)
    if isinstance(value, np.ndarray):
        return np.array2string(value, threshold=8)
    return str(value) if isinstance(value, (int, float, bool)) or value is None else repr(value)


def _shape_str(shape) -> str:
    return "x".join(str(s) for s in shape) if len(shape) else "scalar"


def widen_torch(array):
    """A torch tensor of a float dtype numpy and cupy lack (bfloat16, float8) as float32 (exact); else as is."""
    if type(array).__module__.split(".")[0] == "torch" and array.is_floating_point() \
            and array.dtype.itemsize <= 2 and str(array.dtype) != "torch.float16":
        return array.float()
    return array


def torch_numpy(tensor, name: str) -> np.ndarray:
    """A torch tensor as a numpy array: on the host, float types numpy lacks (bfloat16, float8) widened to
    float32, quantised tensors (qint8, quint8, ...) dequantised to float32; a sparse tensor is refused (its dense
    size is not known to fit)."""
    tensor = tensor.detach()
    layout = str(tensor.layout).replace("torch.", "")
    if layout != "strided":
        raise InputError(f"{name} is a {layout} (sparse) tensor; store it dense (tensor.to_dense()).")
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.is_quantized:
        tensor = tensor.dequantize()
    return widen_torch(tensor).numpy()


def _to_numpy(array, name):
    """Bring torch/cupy arrays to numpy without importing either library.

    torch dtypes numpy lacks (bfloat16, float8) are widened to float32 first,
    quantised tensors dequantised; sparse tensors and masked arrays with
    masked entries are refused (a mask would otherwise be dropped).
    """
    mod = type(array).__module__.split(".")[0]
    if isinstance(array, np.ma.MaskedArray):
        masked = int(np.ma.count_masked(array))
        if masked:
            raise InputError(f"{name} is a masked array with {masked} masked entries; fill them (array.filled(...)) "
                             "or drop those rows: the mask would otherwise be lost.")
        return np.asarray(array.data)
    try:
        if mod == "torch":
            return torch_numpy(array, name)
        if mod == "cupy":
            return array.get()
        return np.asarray(array)
    except InputError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0].split(". ")[0].rstrip(".") if str(exc) else exc.__class__.__name__
        raise InputError(f"{name} could not be converted to an array ({reason}).") from None


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
    if X.dtype.kind == "f":
        _check_finite(X, name)
        if X.dtype.itemsize > 4:
            big = np.abs(X) > np.finfo(np.float32).max
            if big.any():
                r, c = np.argwhere(big)[0]
                raise InputError(
                    f"{name}[{r}, {c}] = {plain(X[r, c])} does not fit in float32 (largest {np.finfo(np.float32).max:.3g})."
                )
    X = np.ascontiguousarray(X, dtype=np.float32)
    _check_finite(X, name)
    return check_norms(X, name)


def _check_finite(X, name):
    finite = np.isfinite(X)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        n_bad = int((~finite).sum())
        raise InputError(
            f"{name} contains {n_bad} NaN or infinite value(s), the first at row {bad[0]}, column {bad[1]}."
        )


def check_norms(X, name: str = "features", *, xp=np):
    """Raise InputError if a row's squared norm would overflow float32 similarity products.

    Similarities ``x_i . x_j`` (and ``2 - 2 x_i . x_j``, ``|x|^2 + |y|^2 - 2 x.y``)
    are computed in float32; they stay finite while every squared row norm
    is at most :data:`MAX_SQUARED_NORM` (about 8.5e37, a row norm of 9.2e18).
    ``xp`` is the array module of ``X`` (cupy on the GPU).
    """
    if X.shape[0] == 0 or X.shape[1] == 0:
        return X
    # in float64 (no overflow below 1.3e154 per entry, and float32 entries are below 3.5e38)
    if xp is np:
        sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    else:  # cupy: widen a block of rows at a time
        step = max(1, (1 << 24) // X.shape[1])
        sq = xp.concatenate([(X[s:s + step].astype(np.float64) ** 2).sum(axis=1) for s in range(0, X.shape[0], step)])
    row = int(xp.argmax(sq))
    top = float(sq[row])
    if not top <= MAX_SQUARED_NORM:
        raise InputError(
            f"{name} row {row} has squared norm {top:.3g}: similarity products overflow float32 above "
            f"{MAX_SQUARED_NORM:.3g}; L2-normalise the rows."
        )
    return X


def _label_kind(value):
    """``"int"``, ``"str"``, ``"bytes"`` or ``"missing"`` for one element of an object label array; else None."""
    if value is None:
        return "missing"
    if isinstance(value, (bool, np.bool_)):
        return "int"
    if isinstance(value, (Integral, np.integer)):
        return "int"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, (Real, np.floating)):
        value = float(value)
        if value != value:
            return "missing"
        return "float"
    try:
        if value != value:  # NaT, pandas.NA (raises), ...
            return "missing"
    except Exception:
        return "missing"
    return None


def _missing_name(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, (float, np.floating)):
        return "NaN"
    return type(value).__name__ if type(value).__name__ != "NaTType" else "NaT"


def _integral_floats(arr, name):
    """Integer-valued floats as int64; NaN, fractions and values beyond int64 are InputErrors."""
    arr = np.asarray(arr, dtype=np.float64)
    nan = np.isnan(arr)
    if nan.any():
        raise InputError(f"{name} contains NaN (a missing label) at position {int(np.argmax(nan))}.")
    inf = ~np.isfinite(arr)
    if inf.any():
        raise InputError(f"{name} contains an infinite value at position {int(np.argmax(inf))}.")
    frac = arr != np.round(arr)
    if frac.any():
        i = int(np.argmax(frac))
        raise InputError(f"{name} must hold integer or string labels; {name}[{i}] = {plain(arr[i])} is not an integer.")
    # float64(2**63) is the first value beyond int64 (its largest float64 below is 2**63 - 1024)
    big = (arr >= 2.0**63) | (arr < -(2.0**63))
    if big.any():
        i = int(np.argmax(big))
        raise InputError(f"{name}[{i}] = {plain(arr[i])} does not fit in a 64-bit integer label.")
    return arr.astype(np.int64)


def check_label_values(labels, name: str, n: int | None = None, *, what: str = "row of features",
                       word: str = "label") -> np.ndarray:
    """The one label checker: a 1-D array of labels, as int64, str or bytes, or an InputError.

    Accepted: integers (any integer dtype, bool, Python ints that fit in
    64 bits), integer-valued floats within int64, strings and bytes; a
    column vector (n, 1) is flattened. Refused, each with one sentence:
    missing values (None, NaN, NaT, pandas.NA), fractional or out-of-range
    floats, infinities, complex, datetime, timedelta and other non-label
    dtypes, a mix of numbers and strings, and a length other than ``n``.

    Parameters
    ----------
    labels : array-like
    name : str
        Argument name for messages.
    n : int, default=None
        Required length; ``what`` names what each entry belongs to.
    """
    if labels is None:
        raise InputError(f"{name} is required: one {word} per {what}.")
    arr = _to_numpy(labels, name)
    if isinstance(labels, (list, tuple)) and arr.ndim == 1 and arr.dtype.kind in "US":
        # numpy turns [0, "a"] into two strings: look at the elements, so a mix is refused
        arr = np.empty(len(labels), dtype=object)
        arr[:] = list(labels)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array with one {word} per {what}; got shape {_shape_str(arr.shape)}.")
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name} must have one {word} per {what} ({n}); got {arr.shape[0]}.")
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.int64)
    if kind in "iu":
        return arr
    if kind == "f":
        return _integral_floats(arr, name)
    if kind in "US":
        return arr
    if kind == "O":
        kinds = [_label_kind(v) for v in arr]
        for i, k in enumerate(kinds):
            if k is None:
                raise InputError(
                    f"{name}[{i}] is a {type(arr[i]).__name__}; labels must be integers or strings."
                )
            if k == "missing":
                raise InputError(f"{name} contains {_missing_name(arr[i])} (a missing label) at position {i}.")
        found = set(kinds)
        if "float" in found:
            found.discard("float")
            found.add("int")
        if len(found) > 1:
            raise InputError(f"{name} mixes numbers and strings; labels must be all integers or all strings.")
        if not found:
            return np.empty(0, dtype=np.int64)
        only = found.pop()
        if only == "str":
            return arr.astype(str)
        if only == "bytes":
            return arr.astype(bytes)
        out = np.empty(arr.shape[0], dtype=np.int64)
        for i, v in enumerate(arr.tolist()):
            if isinstance(v, float):
                if v != round(v) or not np.isfinite(v):
                    raise InputError(
                        f"{name} must hold integer or string labels; {name}[{i}] = {plain(v)} is not an integer."
                    )
            v = int(v)
            if not _INT64_MIN <= v <= _INT64_MAX:
                raise InputError(f"{name}[{i}] = {v} does not fit in a 64-bit integer label.")
            out[i] = v
        return out
    what_dtype = {"c": "complex", "M": "datetime", "m": "timedelta", "V": "structured"}.get(kind, str(arr.dtype))
    raise InputError(f"{name} must hold integer or string labels; got {what_dtype} values (dtype {arr.dtype}).")


def check_labels(labels, n_samples: int, name: str):
    """Check a per-row label array (:func:`check_label_values`) and encode it as dense integer codes.

    Returns
    -------
    codes : ndarray of int64, shape (n_samples,)
        ``classes[codes] == labels``.
    classes : ndarray
        The sorted distinct labels.
    """
    arr = check_label_values(labels, name, n_samples)
    classes, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), classes


def check_cluster_labels(labels, name: str = "labels", n: int | None = None, *, what: str = "row") -> np.ndarray:
    """Cluster labels: integers >= -1 (-1 marks noise) as int64, through :func:`check_label_values`."""
    arr = check_label_values(labels, name, n, what=what)
    if arr.dtype.kind not in "iu":
        got = "strings" if arr.dtype.kind in "US" else f"dtype {arr.dtype}"
        raise InputError(f"{name} must hold integer cluster labels (-1 for noise); got {got}.")
    if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
        raise InputError(f"{name} holds {plain(arr.max())}, which does not fit in a 64-bit cluster label.")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < -1:
        raise InputError(f"{name} must be >= -1 (-1 marks noise); got {plain(arr.min())}.")
    return arr


def check_distance(distance, name: str = "distance"):
    """A square, non-empty, finite, non-negative distance: CSR when sparse, else a float ndarray."""
    if distance is None:
        raise InputError(f"{name} is required: a square (n, n) distance matrix.")
    import scipy.sparse as sp

    if sp.issparse(distance):
        D = distance.tocsr()
        if D.dtype.kind not in "biuf":
            raise InputError(f"{name} must be a numeric matrix; got dtype {D.dtype}.")
    else:
        D = _to_numpy(distance, name)
        if D.dtype == object or D.dtype.kind not in "biuf":
            raise InputError(f"{name} must be a numeric matrix; got dtype {D.dtype}.")
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise InputError(f"{name} must be a square (n, n) matrix; got shape {'x'.join(map(str, D.shape))}.")
    if D.shape[0] == 0:
        raise InputError(f"{name} must have at least one row; got shape 0x0.")
    data = D.data if sp.issparse(D) else D
    if not np.isfinite(data).all():
        raise InputError(f"{name} contains NaN or infinite values.")
    if data.size and data.min() < 0:
        raise InputError(f"{name} must be non-negative; its smallest entry is {float(data.min()):.3g}.")
    return D


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check that ``value`` is an integer within ``[minimum, maximum]``.

    Without a ``maximum`` the value must still fit in a signed 64-bit integer.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise InputError(f"{name} must be an integer; got {plain(value)}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be >= {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be <= {maximum}; got {value}.")
    if not _INT64_MIN <= value <= _INT64_MAX and maximum is None:
        raise InputError(f"{name} must fit in a 64-bit integer; got {value}.")
    return value


def check_n_jobs(n_jobs, name: str = "n_jobs") -> int:
    """Threads for ``n_jobs``, with scikit-learn's meaning.

    None means 1 (scikit-learn's default; inside a ``joblib.parallel_config``
    context, that context's ``n_jobs``), a positive integer that many threads
    (capped at the cores available), ``-1`` all cores and ``-k`` all but
    ``k - 1``. 0 is refused, as in joblib.
    """
    cores = os.cpu_count() or 1
    try:  # numba's pool size is the ceiling of what its kernels can use
        import numba

        cores = min(cores, int(numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    if n_jobs is None:
        try:
            from joblib.parallel import get_active_backend

            backend, default = get_active_backend()
            configured = getattr(backend, "nesting_level", 0) == 0 and default
            n_jobs = default if isinstance(configured, int) and configured not in (0, 1) else 1
        except Exception:  # pragma: no cover - joblib is scikit-learn's dependency
            n_jobs = 1
        if n_jobs is None:
            n_jobs = 1
    value = check_int(n_jobs, name)
    if value == 0:
        raise InputError(f"{name} must be a positive number of threads, -1 for all cores or -k for all but k - 1; "
                         "got 0.")
    if value < 0:
        return max(1, cores + 1 + value)
    return min(value, cores)


def either_spelling(value, old_value, name: str, old_name: str):
    """An argument that also has an old spelling: ``(value, the name the caller used)``.

    For the few signatures that keep a published older name beside the
    current one (``query_cams`` beside ``query_cameras``). None is "not
    given"; giving both is an InputError.
    """
    if old_value is None:
        return value, name
    if value is not None:
        raise InputError(f"give {name} or its older spelling {old_name}, not both.")
    return old_value, old_name


def check_seed(seed, name: str = "seed", *, maximum: int = SEED_MAX, generator: bool = True):
    """A seed: None, an integer in ``[0, maximum]`` (64 bits by default) or, with ``generator``, a numpy Generator."""
    if seed is None:
        return None
    if generator and isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral):
        expected = "None, a non-negative integer or a numpy Generator" if generator else "a non-negative integer"
        raise InputError(f"{name} must be {expected}; got {plain(seed)}.")
    return check_int(seed, name, minimum=0, maximum=maximum)


def check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """Check that ``value`` is a finite real number in the given interval."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise InputError(f"{name} must be a finite number; got {plain(value)}.")
    try:
        finite = bool(np.isfinite(float(value)))
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite:
        raise InputError(f"{name} must be a finite number; got {plain(value)}.")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise InputError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}.")
    return value


def check_option(value, name: str, options) -> str:
    """Check that ``value`` is one of ``options``."""
    try:
        known = isinstance(value, str) and value in options
    except TypeError:
        known = False
    if not known:
        expected = ", ".join(repr(o) for o in options)
        raise InputError(f"Unknown {name} {plain(value)}: expected one of {expected}.")
    return str(value)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str, category=UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside xmrank (where the user's code is)."""
    level = 2  # stacklevel 2 is warn_user's caller, the frame below
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
