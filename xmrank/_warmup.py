"""Compile xmrank's numba kernels ahead of time, and tell when that is needed.

A kernel is compiled the first time it runs with a new argument type
(9-14 s for the whole Jaccard pipeline) and cached on disk in
:func:`xmrank._jit.kernel_cache_dir`; every later process loads it in a
fraction of a second. :func:`compile_kernels` runs every kernel once on tiny
inputs, through the public functions, so each gets exactly the argument types
real calls give it (features are always float32, labels int64, CSR indices
int32). ``xmrank warmup`` runs it, for example while building a container
image, and :func:`ensure_compiled` runs it before an ``xmrank`` command that
reports timings, in a process whose kernels are not compiled yet, so that
those timings never include compilation. (Library calls compile what they use
on first use; their INFO stage timings then include it.)
"""

from __future__ import annotations

import importlib
import logging
import os
import time

logger = logging.getLogger(__name__)

__all__ = ["kernel_modules", "kernels", "kernels_ready", "compile_kernels", "ensure_compiled", "cost_constants",
           "describe_constants"]

#: Modules holding compiled kernels, and whether :func:`compile_kernels` needs torch to run theirs.
_MODULES = (
    ("xmrank.jaccard.kernels", False),
    ("xmrank.jaccard.blocks", False),
    ("xmrank.retrieval.rerank", False),
    ("xmrank.retrieval._distances", False),
    ("xmrank.retrieval.gnn", False),
    ("xmrank.knn.exact_bf16", True),
)

_state: dict = {"checked": False}


def _have(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def kernel_modules() -> list[str]:
    """Names of the modules whose kernels :func:`compile_kernels` compiles here (the bf16 search only with torch)."""
    names = []
    for name, needs_torch in _MODULES:
        if needs_torch and not _have("torch"):
            continue
        try:
            importlib.import_module(name)
        except ImportError:  # an optional engine that is not part of this install
            continue
        names.append(name)
    return names


def kernels() -> list:
    """The numba dispatchers of :func:`kernel_modules` that are compiled on their own (inlined helpers excluded)."""
    from numba.core.registry import CPUDispatcher

    found = []
    for name in kernel_modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == name
                    and obj.targetoptions.get("inline", "never") == "never"):
                found.append(obj)
    return found


def _ready(dispatcher, on_disk: bool = False) -> bool:
    """Compiled in this process (unless ``on_disk``), or a cache entry for this source and this CPU is on disk."""
    if dispatcher.overloads and not on_disk:
        return True
    from numba.core.caching import FunctionCache

    cache = getattr(dispatcher, "_cache", None)
    if not isinstance(cache, FunctionCache):  # no cache: compiled in each process
        return False
    try:
        index = cache._cache_file._load_index()  # {} when the source changed since it was written
        codegen = dispatcher.targetctx.codegen()
        return any(cache._index_key(key[0], codegen) == key for key in index)
    except Exception:  # numba internals moved: assume cached rather than compile on every run
        return True


def kernels_ready(on_disk: bool = False) -> bool:
    """True when every kernel is compiled in this process or can be loaded from the cache folder.

    ``on_disk=True``: only the cache folder counts.
    """
    return all(_ready(d, on_disk) for d in kernels())


def _caching() -> str | None:
    """The cache folder in use, or None where kernels compile in each process."""
    from numba.core.caching import FunctionCache

    found = kernels()
    cache = getattr(found[0], "_cache", None) if found else None
    if not isinstance(cache, FunctionCache):
        return None
    return os.path.dirname(os.path.normpath(cache._cache_path))  # <cache>/<package>_<hash>: report <cache>


def compile_kernels() -> float:
    """Run every kernel once on tiny inputs (compiling it, or loading it from the cache); return the seconds taken."""
    import numpy as np

    from . import backend
    from .jaccard import jaccard_distance
    from .retrieval.rerank import rerank

    _state["checked"] = True  # the calls below must not start a second warm-up
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    n, d = 48, 8
    X = rng.normal(size=(n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    mods = np.arange(n) % 2
    cams = np.arange(n) % 4
    engines = ["numpy"] + (["faiss"] if backend.have_faiss() else [])
    for knn in engines:
        for method in ("vanilla", "modality", "modality-qe", "camera"):
            kw = dict(modalities=mods, cameras=cams, method=method, k1=6, k2=2, k1_intra=3, k1_inter=6,
                      k2_intra=1, k2_inter=2, knn=knn, progress=False)
            jaccard_distance(X, **kw)                     # every pair: the count-then-write min-sum kernel
            jaccard_distance(X, max_distance=0.6, **kw)   # pairs within eps: the one-pass block kernel
    for normalize in ("gallery", "union"):
        rerank(X[:8], X[8:], query_modalities=mods[:8], gallery_modalities=mods[8:], k1=6, k2=2,
               normalize=normalize, progress=False)
    from .compat import re_ranking

    def dist(a, b):
        return np.sqrt(np.maximum(2.0 - 2.0 * a @ b.T, 0.0)).astype(np.float32)

    q, g = X[:8], X[8:]
    re_ranking(dist(q, g), dist(q, q), dist(g, g), k1=6, k2=2)   # torchreid's drop-in
    rerank(distances=(dist(q, g), dist(q, q), dist(g, g)), query_modalities=mods[:8],
           gallery_modalities=mods[8:], k1=6, k2=2, progress=False)
    for k2 in (1, 2):  # GNN re-ranking, with and without propagation, from features and from distances
        rerank(X[:8], X[8:], method="vanilla", algorithm="gnn", k1=6, k2=k2)
    rerank(distances=(dist(q, g), dist(q, q), dist(g, g)), method="vanilla", algorithm="gnn", k1=6, k2=2)
    if "xmrank.knn.exact_bf16" in kernel_modules():
        from .knn import exact_bf16

        exact_bf16.search(X, X, 4)
    return time.perf_counter() - start


def cost_constants(*, measure: bool = True):
    """``knn="ann"``'s cost-model constants for this machine (:mod:`xmrank.knn.cost_model`).

    ``measure=True`` (``xmrank warmup``) measures and caches them where the
    cache holds none (the bfloat16 engine's too, where it pays here);
    ``measure=False`` (``--check``) only reads the cache: None where it holds
    none. With ``XMRANK_COST_MODEL=fixed``, the fixed constants.
    """
    from .knn import cost_model

    if cost_model.mode() == "fixed":
        return cost_model.CostConstants()
    if measure:
        return cost_model.constants(need_bf16=True)
    return cost_model.cached(need_bf16=True)


def describe_constants(model) -> str:
    """One line naming the constants and where they come from."""
    from .knn import cost_model

    where = {"fixed": f"fixed ({cost_model.ENV}=fixed)", "cached": "cached", "measured": "measured now"}
    return (f"knn='ann' cost model, {where.get(model.source, model.source)}: exact "
            + ", ".join(f"{k} {v:.3g}" for k, v in model.exact.items()) + "; scan "
            + ", ".join(f"{k} {v:.3g}" for k, v in model.scan.items()) + f"; build {model.build:.3g}")


def _say(text: str) -> None:
    """An INFO record of this module's logger (the ``xmrank`` command prints them on stderr, without -v)."""
    logger.info("%s", text)


def ensure_compiled() -> float | None:
    """Compile every kernel now if any is neither compiled nor cached; return the seconds it took, or None.

    Checked once per process (the check reads a few small index files).
    The ``xmrank`` commands that report timings (cluster, demo, diagnose,
    rerank, train) call it before they start, so that no reported time
    includes first-use compilation.
    """
    if _state["checked"]:
        return None
    _state["checked"] = True
    try:
        if kernels_ready():
            return None
    except Exception:  # never let the check itself break a computation
        return None
    folder = _caching()
    if folder:
        _say(f"compiling xmrank's kernels once (cached in {folder}; `xmrank warmup` does this ahead of time)...")
    else:
        from ._jit import cache_refusal

        refused = cache_refusal()
        _say("compiling xmrank's kernels for this process ("
             + (f"the cache folder is not safe to load from: {refused}" if refused else "no writable cache folder")
             + "; set XMRANK_CACHE_DIR to a folder only you can write to keep them)...")
    try:
        seconds = compile_kernels()
    except Exception as exc:  # noqa: BLE001 - the real call compiles what it needs and reports real errors
        logger.debug("compiling the kernels ahead failed (%s: %s); they compile on first use", type(exc).__name__, exc)
        return None
    _say(f"compiled xmrank's kernels in {seconds:.1f}s")
    return seconds
