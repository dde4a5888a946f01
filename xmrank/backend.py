"""The one place where xmrank chooses its compute backends.

Every other module receives plain arrays and a resolved backend name; none of
them probes for optional libraries. Optional libraries are detected without
importing them until they are needed. A backend the user names explicitly
(``knn="faiss"``, ``device="cuda"``, ...) is never replaced silently: when it
cannot run, :class:`~xmrank.InputError` says what to install.

Engines returned by :func:`resolve_knn`:

====================  =========================================================
``"faiss"``           exact, faiss ``IndexFlatIP`` on the CPU
``"numpy"``           exact, blocked numpy matrix products
``"ann"``             faiss IVF-Flat per database or exact, whichever costs less at the calibrated accuracy
``"dask"``            blocks of queries on a ``dask.distributed`` cluster
``"bf16"``            exact, bfloat16 candidates re-scored in float64 (torch)
``"faiss-gpu"``       exact, faiss ``GpuIndexFlatIP``
``"cupy"``            exact, blocked cupy matrix products
``"ann-gpu"``         approximate, faiss ``GpuIndexIVFFlat``
``"bf16-gpu"``        exact, bfloat16 tensor-core candidates re-scored in float64
====================  =========================================================
"""

from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np

from ._params import DEVICES, KNN_ENGINES, parse_device  # noqa: F401  (declared there, re-exported)
from ._validation import InputError, check_option

logger = logging.getLogger(__name__)

#: ``knn="auto"`` on the CPU picks "bf16" for a search of at least this many multiply-adds
#: (``n_queries * n_database * d``), :data:`BF16_AUTO_MIN_DATABASE` database rows and
#: :data:`BF16_AUTO_MIN_DIM` columns, where torch is installed and the CPU multiplies bfloat16
#: natively (:mod:`xmrank.knn.exact_bf16`). Measured on a 2-core AVX-512 BF16 CPU: "bf16" took
#: 0.79x faiss' time at 5e9 multiply-adds (2000 x 1300 x 2048), 0.65x at 3.3e10 and ~0.5x from
#: 1e11 on; torch's import (2-3 s, once per process) is what the threshold amortises.
BF16_AUTO_MIN_WORK = 2 * 10**10
BF16_AUTO_MIN_DATABASE = 2048
BF16_AUTO_MIN_DIM = 64


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or half-imported
        return False


def have_faiss() -> bool:
    """Whether the ``faiss`` module (faiss-cpu or faiss-gpu) is importable."""
    return _installed("faiss")


def have_cupy() -> bool:
    """Whether ``cupy`` is importable (says nothing about a GPU being present)."""
    return _installed("cupy")


def have_dask() -> bool:
    """Whether ``dask.distributed`` is importable."""
    return _installed("distributed")


def have_torch() -> bool:
    """Whether ``torch`` is importable (the ``torch`` extra), without importing it."""
    return _installed("torch")


_CPU_FLAGS: dict = {}


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX-BF16), read from /proc/cpuinfo.

    False where that file is missing (not Linux) or unreadable: torch then
    emulates bfloat16 products, slower than float32 ones.
    """
    if "bf16" not in _CPU_FLAGS:
        found = False
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        found = bool(flags & {"avx512_bf16", "amx_bf16"})
                        break
        except OSError:
            pass
        _CPU_FLAGS["bf16"] = found
    return _CPU_FLAGS["bf16"]


def have_faiss_gpu() -> bool:
    """Whether faiss was built with GPU support and sees at least one GPU."""
    if not have_faiss():
        return False
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def cuda_available() -> bool:
    """Whether cupy is installed and sees at least one CUDA device."""
    if not have_cupy():
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device: cupy raises CUDARuntimeError
        return False


def resolve_device(device: str = "cpu") -> str:
    """Check a ``device=`` option and that it can run here; return its kind, "cpu" or "cuda".

    ``"cuda:N"`` names a GPU by index: it must exist. Code that runs on it
    enters :func:`using_device` (which makes GPU ``N`` cupy's current device).

    Raises
    ------
    xmrank.InputError
        For an unknown device, or ``"cuda"`` without cupy, without a GPU or
        without GPU ``N``.
    """
    kind, index = parse_device(device)
    if kind == "cuda":
        if not have_cupy():
            raise InputError(
                f"device={device!r} needs cupy, which is not installed: pip install 'xmrank[gpu]' (or use device='cpu')."
            )
        if not cuda_available():
            raise InputError(f"device={device!r} found no CUDA GPU on this machine; use device='cpu'.")
        if index is not None:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
            if index >= count:
                raise InputError(f"device={device!r}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}.")
    return kind


def using_device(device: str = "cpu"):
    """A context in which ``device``'s GPU is cupy's current device (a no-op for "cpu" and plain "cuda")."""
    import contextlib

    kind, index = parse_device(device)
    if kind != "cuda" or index is None:
        return contextlib.nullcontext()
    resolve_device(device)
    import cupy

    return cupy.cuda.Device(index)


def on_device(func):
    """Decorator: run ``func`` inside :func:`using_device` of its ``device=`` keyword argument."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with using_device(kwargs.get("device", "cpu")):
            return func(*args, **kwargs)

    return wrapper


def array_module(device: str = "cpu"):
    """The array module of a device: ``numpy`` for "cpu", ``cupy`` for "cuda"."""
    if resolve_device(device) == "cuda":
        import cupy

        return cupy
    return np


def sparse_module(device: str = "cpu"):
    """The sparse-matrix module of a device: ``scipy.sparse`` or ``cupyx.scipy.sparse``."""
    if resolve_device(device) == "cuda":
        import cupyx.scipy.sparse as xsparse

        return xsparse
    import scipy.sparse as sparse

    return sparse


def is_device_array(array) -> bool:
    """Whether ``array`` lives on a GPU (a cupy array or a CUDA torch tensor), without importing either."""
    mod = type(array).__module__.split(".")[0]
    if mod == "cupy":
        return True
    if mod == "torch" and "torch" in sys.modules:
        return array.device.type == "cuda"
    return False


def to_device(array, device: str = "cpu"):
    """``array`` on ``device``: numpy for "cpu", cupy for "cuda".

    A CUDA torch tensor moves to cupy through DLPack (no host copy); a cupy
    array is returned as is; anything else is converted with ``asarray``.
    """
    if resolve_device(device) == "cpu":
        mod = type(array).__module__.split(".")[0]
        if mod == "cupy":
            return array.get()
        if mod == "torch":
            return array.detach().cpu().numpy()
        return np.asarray(array)
    import cupy

    if type(array).__module__.split(".")[0] == "torch" and array.device.type == "cuda":
        return cupy.from_dlpack(array.detach())
    return cupy.asarray(array)


def device_features(features, device: str = "cpu", name: str = "features"):
    """``features`` as a C-contiguous float32 2-D array on ``device``, checked there.

    The device counterpart of :func:`xmrank._validation.check_features`: on
    "cuda" a cupy array or CUDA torch tensor is checked on the GPU and never
    copied to the host (numpy input is copied to the GPU once).

    Raises
    ------
    xmrank.InputError
        Wrong dimensions, fewer than two rows, no columns, a non-numeric
        dtype, or NaN/inf values.
    """
    xp = array_module(device)
    X = to_device(features, device)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or X.dtype.kind == "c":
        raise InputError(f"{name} must be real and numeric; got an array of dtype {X.dtype}.")
    if X.ndim != 2:
        raise InputError(f"{name} must be a 2-D array of shape (n_samples, n_features); got {X.ndim} dimension(s).")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise InputError(f"{name} must have at least 2 rows and 1 column; got shape {tuple(X.shape)}.")
    X = xp.ascontiguousarray(X, dtype=np.float32)
    bad = int((~xp.isfinite(X)).sum())
    if bad:
        raise InputError(f"{name} contains {bad} NaN or infinite value(s).")
    return X


def resolve_knn(knn: str = "auto", device: str = "cpu", *, shape: tuple[int, int, int] | None = None) -> str:
    """Resolve a ``knn=`` option to a concrete engine name.

    Parameters
    ----------
    knn : {"auto", "faiss", "numpy", "ann", "dask"}, default="auto"
        - "auto": exact search, faiss when installed, else blocked matrix
          products (on "cuda": faiss-gpu when it sees a GPU, else cupy).
        - "faiss", "numpy": exact search with that library ("numpy" means
          blocked matrix products, done by cupy on "cuda").
        - "ann": approximate search (faiss IVF-Flat per database). For the
          Jaccard lists it is calibrated on what the distance reads
          (reciprocal pairs, leading columns; :mod:`xmrank.knn.ann_lists`)
          and each database is searched exactly where that is cheaper; a
          plain search is calibrated on recall@k >= 0.97
          (:mod:`xmrank.knn.ann`). Both log what they measured and chose.
        - "dask": exact search in blocks on the current ``dask.distributed``
          client; see :mod:`xmrank.distributed`.
        - "bf16": exact search from bfloat16 candidates re-scored in float64
          (torch; on "cuda", tensor cores); see :mod:`xmrank.knn.exact_bf16`.
          "auto" picks it on the CPU for a large enough ``shape`` (at least
          :data:`BF16_AUTO_MIN_WORK` multiply-adds, :data:`BF16_AUTO_MIN_DATABASE`
          database rows and :data:`BF16_AUTO_MIN_DIM` columns) where torch
          is installed and the CPU has AVX-512 BF16 or AMX.

        A named engine that cannot run raises :class:`~xmrank.InputError`
        instead of falling back silently.
    device : {"cpu", "cuda"}, default="cpu"
        Where the search runs.
    shape : (n_queries, n_database, d), default=None
        The search's size, for "auto"; None resolves as for a small search.

    Returns
    -------
    engine : str
        One of "faiss", "numpy", "ann", "dask", "bf16", "faiss-gpu", "cupy",
        "ann-gpu", "bf16-gpu".
    """
    check_option(knn, "knn backend", KNN_ENGINES)
    device = resolve_device(device)
    if device == "cuda":
        return _resolve_knn_cuda(knn)
    if knn == "auto":
        engine = "bf16" if _bf16_pays(shape) else ("faiss" if have_faiss() else "numpy")
        logger.debug("knn='auto' resolved to %r", engine)
        return engine
    if knn == "bf16" and not have_torch():
        raise InputError(
            "knn='bf16' needs torch, which is not installed: pip install 'xmrank[torch]' (or use knn='faiss')."
        )
    if knn in ("faiss", "ann") and not have_faiss():
        raise InputError(
            f"knn={knn!r} needs the faiss package, which is not installed: "
            "pip install 'xmrank[faiss]' (or use knn='numpy')."
        )
    if knn == "dask" and not have_dask():
        raise InputError(
            "knn='dask' needs dask.distributed, which is not installed: pip install 'xmrank[dask]'."
        )
    return knn


def _bf16_pays(shape) -> bool:
    """Whether "auto" should pick the bfloat16 engine for a search of this ``shape``."""
    if shape is None:
        return False
    nq, nd, d = (int(v) for v in shape)
    return (nq * nd * d >= BF16_AUTO_MIN_WORK and nd >= BF16_AUTO_MIN_DATABASE and d >= BF16_AUTO_MIN_DIM
            and have_torch() and native_bf16_cpu())


def _resolve_knn_cuda(knn: str) -> str:
    if knn == "dask":
        raise InputError("knn='dask' runs on CPU workers; use device='cpu' with it.")
    if knn == "bf16":
        if not have_torch():
            raise InputError(
                "knn='bf16' needs torch (with CUDA), which is not installed: pip install 'xmrank[torch]'."
            )
        return "bf16-gpu"
    if knn == "numpy":
        return "cupy"
    if knn == "auto":
        engine = "faiss-gpu" if have_faiss_gpu() else "cupy"
        logger.debug("knn='auto' on cuda resolved to %r", engine)
        return engine
    if not have_faiss_gpu():
        raise InputError(
            f"knn={knn!r} with device='cuda' needs faiss built with GPU support (faiss-gpu) and a visible GPU; "
            "use knn='auto' (cupy matrix products) or device='cpu'."
        )
    return "faiss-gpu" if knn == "faiss" else "ann-gpu"
