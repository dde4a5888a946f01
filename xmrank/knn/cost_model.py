"""The constants of ``knn="ann"``'s cost model, measured on this machine at first use and cached.

:mod:`xmrank.knn.ann_lists` searches each group exactly or through an IVF
index by a model of counts: one query x database pair of exact search costs
``exact[engine]``, one code of a probed cell ``scan[kind]``, and building an
index ``build`` times its k-means products, all in units of one pair of
faiss' brute-force search (``exact["faiss"] = 1``). The constants it used to
fix (:data:`FIXED_EXACT`, :data:`FIXED_SCAN`, :data:`FIXED_BUILD`) were
measured on one 2-core machine; here they are measured where the search
runs, the first time a ``knn="ann"`` call needs them, on tiny representative kernels (d = 128, each 10^7-10^8
multiply-adds, under 10^9 in all: 0.2-0.5 s on the 2-core machine of the
benchmarks, whose faiss has no AVX2 build; once per machine, then cached):

- faiss' exact search (:func:`xmrank.knn.exact_faiss.search`) of 256 queries
  in 4,096 rows: the unit;
- the bfloat16 exact engine (:func:`xmrank.knn.exact_bf16.search`), the same
  search, only where the CPU multiplies bfloat16 natively and torch is
  installed, and only once a call needs it (or torch is imported already):
  importing torch takes seconds;
- IVF-Flat and IVF with 4-bit fast-scan product codes, 32 cells of 4,096
  rows, 256 queries probing 4 cells, with the exact re-scoring of their
  candidates (:func:`xmrank.knn.rescore.rescore_lists`): the cost per scanned
  code, the coarse products subtracted;
- training and filling the IVF-Flat index (k-means and add): the factor on
  :func:`xmrank.knn.ann_lists.build_cost`'s k-means count (the fast-scan
  index's product-quantizer training, a further fixed cost of a fraction of
  a second, is not in the model).

Kernels this small carry per-call overheads that searches of 10^4-10^6
rows amortise (thread wake-ups, torch's dispatch, k-means set-up): on a
busy machine the bfloat16 engine's and the build's constants come out high
and are clamped (logged); where choices must not depend on the machine, use
``XMRANK_COST_MODEL=fixed``.

Each time is the best of two runs after a first one, the kernels
interleaved (a load that comes and goes touches them all alike). A measured
constant outside ``[1/4, 4]`` times its fixed value (a busy machine, a timer
hiccup) is clamped to that range, with a WARNING log line, and such a measurement is
used in its process but never cached (the next process measures again): the model must never make
absurd choices.

Cache
-----
The constants are kept in ``cost_model.json`` in the compiled-kernel cache
folder (:func:`xmrank._jit.cache_folder`), one entry per key: the CPU model,
the thread counts (faiss' OpenMP, numba's), the faiss and torch versions and
:data:`VERSION` of this measurement. The file is written atomically
(:mod:`xmrank._atomic`) and read only under the kernel cache's safety rules:
a folder that others can write to or that another user owns
(:func:`xmrank._jit.unsafe_cache_reason`) is not read, nor is a file that is
a link, not a regular file, not owned by the current user or writable by
others. A file or entry that is not what this module writes (bad JSON, wrong
types, NaN, negative or out-of-range numbers) is ignored with a WARNING and
the constants are measured again. Where no cache can be written, they are
measured once per process.

``XMRANK_COST_MODEL=fixed`` keeps the fixed constants (the test suite sets
it, so that choices do not depend on the machine); ``measured`` (the
default) measures or reads the cache. ``xmrank warmup`` measures and caches
them, ``xmrank warmup --check`` reports them. Every choice is logged (logger
``xmrank.knn.cost_model``, INFO).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import stat
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .._validation import InputError

logger = logging.getLogger(__name__)

__all__ = ["CostConstants", "FIXED_EXACT", "FIXED_SCAN", "FIXED_BUILD", "BOUNDS", "VERSION", "ENV", "CACHE_FILE",
           "constants", "cached", "measure", "cache_path", "mode", "cache_key", "reset"]

#: Exact search per query x database pair, by engine, in units of faiss' brute-force search (BLAS products and
#: its top-k selection). bf16: 0.36-0.45 measured against faiss at N = 50,000, d = 128, 2 cores.
FIXED_EXACT = {"faiss": 1.0, "numpy": 1.0, "bf16": 0.4}
#: Scanning one database row of a probed cell, same units, by index: IVF-Flat 4.3-6.7 measured (2 cores, d = 128);
#: IVF with 4-bit fast-scan product codes 2.4 times less (300,000 rows, d = 128, 64 and 128 cells probed of 2,591).
FIXED_SCAN = {"flat": 5.0, "pqfs": 2.0}
#: Factor on the k-means count of :func:`xmrank.knn.ann_lists.build_cost`.
FIXED_BUILD = 1.0
#: A measured constant is clamped to ``[BOUNDS[0], BOUNDS[1]]`` times its fixed value.
BOUNDS = (0.25, 4.0)
#: Version of the measurement: entries of another version are measured again.
VERSION = 1
#: The environment variable that chooses the mode: "measured" (default) or "fixed".
ENV = "XMRANK_COST_MODEL"
#: File name of the cache, in the compiled-kernel cache folder.
CACHE_FILE = "cost_model.json"
#: Entries kept in the cache file (machines sharing a home folder), newest last.
_MAX_ENTRIES = 16
#: The cache file is small; anything larger is not this module's.
_MAX_BYTES = 65536

_state: dict = {}


@dataclass
class CostConstants:
    """The cost model's constants and where they come from.

    Attributes
    ----------
    exact : dict
        Per pair of exact search, by engine ("faiss" = 1).
    scan : dict
        Per scanned code of an IVF index, by kind ("flat", "pqfs").
    build : float
        Factor on the k-means count of an index build.
    source : str
        "measured" (in this process), "cached" (read from the cache file) or
        "fixed" (:data:`FIXED_EXACT`, ...).
    measured : list of str
        The constants that were measured (here or when the cache was
        written); the others keep their fixed values (bf16 where the CPU has
        no native bfloat16 or torch was not needed yet).
    clamped : list of str
        The measured constants that were clamped to :data:`BOUNDS`.
    seconds : float
        Time the measurement took.
    """

    exact: dict = field(default_factory=lambda: dict(FIXED_EXACT))
    scan: dict = field(default_factory=lambda: dict(FIXED_SCAN))
    build: float = FIXED_BUILD
    source: str = "fixed"
    measured: list = field(default_factory=list)
    clamped: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """The constants alone, as plain JSON-ready values."""
        return {"exact": dict(self.exact), "scan": dict(self.scan), "build": float(self.build)}


def mode() -> str:
    """``"fixed"`` or ``"measured"``, from :data:`ENV` (unset or empty: "measured")."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "measured", "measure", "auto"):
        return "measured"
    if value == "fixed":
        return "fixed"
    raise InputError(f"{ENV} must be 'fixed' or 'measured'; got {value!r}.")


def reset() -> None:
    """Forget the constants of this process (the next call reads the cache or measures again)."""
    _state.clear()


# ----------------------------------------------------------------------------------------------- key and folder

def _cpu_model() -> str:
    if "cpu" not in _state:
        name = ""
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        _state["cpu"] = name or platform.processor() or platform.machine() or "unknown"
    return _state["cpu"]


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version({"faiss": "faiss-cpu"}.get(module, module))
    except Exception:  # noqa: BLE001 - not installed, or installed under another distribution name
        return "none"


def _threads() -> str:
    import numba

    try:
        import faiss

        omp = faiss.omp_get_max_threads()
    except Exception:  # noqa: BLE001
        omp = 0
    return f"omp{omp}-numba{numba.get_num_threads()}"


def cache_key() -> str:
    """The cache entry's key: CPU model, thread counts, faiss and torch versions, :data:`VERSION`."""
    if "versions" not in _state:
        _state["versions"] = f"faiss {_version('faiss')}|torch {_version('torch')}"
    return f"v{VERSION}|{_cpu_model()}|{_threads()}|{_state['versions']}"


def cache_path() -> tuple[str | None, str]:
    """The cache file's path, or None and why there is none (no writable folder, an unsafe one)."""
    from .. import _jit

    folder = _jit.cache_folder()
    if folder is None:
        refused = _jit.cache_refusal()
        return None, (f"the kernel cache folder is not safe to read: {refused}" if refused
                      else "no writable kernel cache folder")
    reason = _jit.unsafe_cache_reason(folder)  # checked again: the folder may have changed since
    if reason:
        return None, f"the kernel cache folder is not safe to read: {reason}"
    return os.path.join(folder, CACHE_FILE), ""


# ----------------------------------------------------------------------------------------------- validation

def _bounded(value, fixed: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and BOUNDS[0] * fixed * (1 - 1e-9) <= value <= BOUNDS[1] * fixed * (1 + 1e-9))


def _entry_constants(entry) -> CostConstants | None:
    """The constants of a cache entry, or None where it is not exactly what :func:`_write` writes."""
    if not isinstance(entry, dict):
        return None
    exact, scan, build, measured = entry.get("exact"), entry.get("scan"), entry.get("build"), entry.get("measured")
    if not (isinstance(exact, dict) and isinstance(scan, dict) and isinstance(measured, list)):
        return None
    if set(exact) != set(FIXED_EXACT) or set(scan) != set(FIXED_SCAN):
        return None
    if not all(_bounded(exact[k], FIXED_EXACT[k]) for k in FIXED_EXACT):
        return None
    if not all(_bounded(scan[k], FIXED_SCAN[k]) for k in FIXED_SCAN) or not _bounded(build, FIXED_BUILD):
        return None
    names = {f"exact.{k}" for k in FIXED_EXACT} | {f"scan.{k}" for k in FIXED_SCAN} | {"build"}
    if not all(isinstance(m, str) and m in names for m in measured):
        return None
    return CostConstants(exact={k: float(exact[k]) for k in FIXED_EXACT}, scan={k: float(scan[k]) for k in FIXED_SCAN},
                         build=float(build), source="cached", measured=list(measured))


def _read_file(path: str) -> dict:
    """The cache file's entries; {} (with a WARNING where the file exists) when it is missing, unsafe or malformed."""
    try:
        st = os.lstat(path)
    except OSError:
        return {}
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif hasattr(os, "getuid") and st.st_uid not in (os.getuid(), 0):
        problem = "is owned by another user"
    elif hasattr(os, "getuid") and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = "is writable by others"
    elif st.st_size > _MAX_BYTES:
        problem = f"holds {st.st_size} bytes, more than this cache ever writes"
    if problem is None:
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read(_MAX_BYTES + 1).decode("utf-8"),
                                  parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            problem = f"is not valid JSON ({type(exc).__name__})"
        else:
            if isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("entries"), dict):
                return data["entries"]
            problem = "does not hold this version's entries"
    logger.warning("ignoring the cost-model cache %s: it %s; measuring the constants again", path, problem)
    return {}


def _write(path: str, entries: dict) -> None:
    from .._atomic import atomic_write

    payload = json.dumps({"version": VERSION, "entries": entries}, indent=1, sort_keys=True).encode()
    try:
        atomic_write(path, lambda fh: fh.write(payload), fsync=False)
    except OSError as exc:
        logger.info("could not write the cost-model cache %s (%s); the constants are measured in each process",
                    path, exc)


# ----------------------------------------------------------------------------------------------- measurement

def _best(func, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9)


def _unit_rows(rng, n: int, d: int) -> np.ndarray:
    """Rows clustered around ``n // 16`` centres, normalised: cells of realistic occupancy, as in real features."""
    centres = rng.standard_normal((max(1, n // 16), d))
    X = centres[rng.integers(0, centres.shape[0], n)] + rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32)


def _clamp(name: str, value: float, fixed: float, clamped: list) -> float:
    low, high = BOUNDS[0] * fixed, BOUNDS[1] * fixed
    if not math.isfinite(value) or value < low or value > high:
        clamped.append(name)
        new = low if not math.isfinite(value) or value < low else high
        logger.warning("cost model: measured %s = %.3g is outside [%.3g, %.3g] (%gx-%gx the fixed %.3g; a busy "
                       "machine?); using %.3g", name, value, low, high, BOUNDS[0], BOUNDS[1], fixed, new)
        return new
    return value


def _bf16_wanted(need_bf16: bool) -> bool:
    from ..backend import have_torch, native_bf16_cpu

    return native_bf16_cpu() and have_torch() and (need_bf16 or "torch" in sys.modules)


def _kernels(*, bf16: bool, scans: bool, d: int = 128, k: int = 30):
    """The representative kernels, as ``{name: (run, work)}``: ``work`` converts seconds to model units (divided by
    the unit's seconds per pair: see :func:`_times_to_constants`)."""
    import faiss

    from . import ann
    from .exact_faiss import search as faiss_search
    from .rescore import rescore_lists

    rng = np.random.default_rng(1)
    # the unit: faiss' exact search of 256 queries in 4,096 rows (1.3e8 multiply-adds; fewer queries leave the
    # per-call overheads, the bfloat16 engine's above all, too large a share)
    db, Q = _unit_rows(rng, 4096, d), _unit_rows(rng, 256, d)
    pairs = Q.shape[0] * db.shape[0]
    out = {"exact.faiss": (lambda: faiss_search(Q, db, k), pairs)}
    if bf16:
        from .exact_bf16 import search as bf16_search

        out["exact.bf16"] = (lambda: bf16_search(Q, db, k), pairs)
    if not scans:
        return out
    # IVF: 32 cells of 4,096 rows, 256 queries probing 4 (512 codes each), re-scored as ann_lists re-scores
    n_db, nlist, nprobe, n_q = 4096, 32, 4, 256
    base, queries = _unit_rows(rng, n_db, d), _unit_rows(rng, n_q, d)
    kk = 8 * k
    sims = np.empty((n_q, k), dtype=np.float32)
    idx = np.empty((n_q, k), dtype=np.int64)
    n_train = min(n_db, ann._TRAIN_PER_CELL * nlist)
    flat = ann.build_index(base, nlist, seed=0)
    # the fast-scan codes' quality does not change the scan's speed: a quick training (PQ training is not modelled)
    fast = faiss.index_factory(d, f"IVF{nlist},PQ{d // 2}x4fs", faiss.METRIC_INNER_PRODUCT)
    fast.cp.niter, fast.pq.cp.niter, fast.pq.cp.max_points_per_centroid = 4, 2, 64
    fast.train(base[:n_train])
    fast.add(base)

    def scan(index):
        _, cand = index.search(queries, kk)
        cand = np.ascontiguousarray(cand, dtype=np.int64)
        cand[cand < 0] = 0  # rare (4 cells of about 128 rows hold 512 >= 240), but never let -1 index a row
        rescore_lists(queries, base, cand, k, sims, idx)

    codes = n_q * nprobe * n_db / nlist
    for name, index in (("scan.flat", flat), ("scan.pqfs", fast)):
        index.nprobe = nprobe
        # a query costs nlist coarse products plus its codes: (seconds / unit - n_q * nlist) / codes
        out[name] = (lambda index=index: scan(index), (codes, n_q * nlist))
    # the build: k-means (10 iterations over the training rows) and the add, ann_lists.build_cost's count
    out["build"] = (lambda: ann.build_index(base, nlist, seed=0), 10.0 * n_train * nlist + float(n_db) * nlist)
    return out


def _measure_times(kernels: dict, rounds: int = 2) -> dict:
    """Best seconds of each kernel over ``rounds`` rounds, the kernels interleaved (a load that comes and goes
    touches them all alike)."""
    for run, _ in kernels.values():  # first calls: faiss' threads, torch's first product, the kernels' loading
        run()
    best = {name: math.inf for name in kernels}
    for _ in range(rounds):
        for name, (run, _) in kernels.items():
            best[name] = min(best[name], _best(run, repeats=1))
    return best


def _times_to_constants(kernels: dict, times: dict, clamped: list) -> dict:
    pair = times["exact.faiss"] / kernels["exact.faiss"][1]
    out = {}
    for name, (_, work) in kernels.items():
        if name == "exact.faiss":
            continue
        units = times[name] / pair
        value = (units - work[1]) / work[0] if isinstance(work, tuple) else units / work
        fixed = FIXED_SCAN[name[5:]] if name.startswith("scan.") else (
            FIXED_BUILD if name == "build" else FIXED_EXACT[name[6:]])
        out[name] = _clamp(name, value, fixed, clamped)
    out["unit_ns"] = pair * 1e9
    return out


def measure(*, need_bf16: bool = False) -> CostConstants:
    """Time the representative kernels here and return the constants (clamped to :data:`BOUNDS`).

    Parameters
    ----------
    need_bf16 : bool, default=False
        Also measure the bfloat16 engine where the CPU has native bfloat16
        and torch is installed (otherwise only where torch is imported
        already; its import takes seconds). Elsewhere ``exact["bf16"]`` keeps
        its fixed value.

    Returns
    -------
    CostConstants
        With ``source="measured"``.
    """
    t_start = time.perf_counter()
    clamped: list = []
    kernels = _kernels(bf16=_bf16_wanted(need_bf16), scans=True)
    values = _times_to_constants(kernels, _measure_times(kernels), clamped)
    exact = dict(FIXED_EXACT)
    if "exact.bf16" in values:
        exact["bf16"] = values["exact.bf16"]
    out = CostConstants(exact=exact, scan={"flat": values["scan.flat"], "pqfs": values["scan.pqfs"]},
                        build=values["build"], source="measured", measured=sorted(kernels), clamped=clamped,
                        seconds=time.perf_counter() - t_start)
    logger.info("cost model: measured in %.3fs (%s): exact %s, scan %s, build %.3g (units of one pair of faiss' "
                "exact search, %.3g ns here)", out.seconds, cache_key(), _fmt(out.exact), _fmt(out.scan), out.build,
                values["unit_ns"], extra={"cost_model": {**out.as_dict(), "source": "measured", "clamped": clamped}})
    return out


def _measure_bf16_only() -> tuple[float, list]:
    clamped: list = []
    kernels = _kernels(bf16=True, scans=False)
    return _times_to_constants(kernels, _measure_times(kernels), clamped)["exact.bf16"], clamped


def _fmt(values: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in values.items())


# ----------------------------------------------------------------------------------------------- entry point

def constants(*, need_bf16: bool = False) -> CostConstants:
    """The cost model's constants for this process: fixed, cached or measured now (see the module docstring).

    Parameters
    ----------
    need_bf16 : bool, default=False
        The caller searches with the bfloat16 engine: measure it too where
        it is not yet (see :func:`measure`).

    Returns
    -------
    CostConstants

    Raises
    ------
    xmrank.InputError
        Where :data:`ENV` holds neither "fixed" nor "measured".
    """
    if mode() == "fixed":
        if not _state.get("said_fixed"):
            _state["said_fixed"] = True
            logger.info("cost model: fixed constants (%s=fixed): exact %s, scan %s, build %.3g", ENV,
                        _fmt(FIXED_EXACT), _fmt(FIXED_SCAN), FIXED_BUILD)
        return CostConstants()
    key = cache_key()
    known = _state.setdefault("constants", {})
    have = known.get(key)
    want_bf16 = _bf16_wanted(need_bf16)
    if have is not None and (not want_bf16 or "exact.bf16" in have.measured):
        return have
    path, why = cache_path()
    entries = _read_file(path) if path else {}
    if have is None and key in entries:
        have = _entry_constants(entries[key])
        if have is None:
            logger.warning("ignoring the cost-model cache entry %r in %s: not numbers within %g-%g times the "
                           "fixed constants; measuring again", key, path, *BOUNDS)
        else:
            logger.info("cost model: read from %s (%s): exact %s, scan %s, build %.3g", path, key,
                        _fmt(have.exact), _fmt(have.scan), have.build)
    if have is not None and want_bf16 and "exact.bf16" not in have.measured:
        have.exact["bf16"], clamped = _measure_bf16_only()
        have.measured.append("exact.bf16")
        have.clamped.extend(clamped)
        have.source = "measured"
        logger.info("cost model: measured exact bf16 = %.3g", have.exact["bf16"])
        fresh = True
    elif have is None:
        have = measure(need_bf16=need_bf16)
        fresh = True
    else:
        fresh = False
    if fresh and have.clamped:
        # a constant outside the bounds says the timing was disturbed (a busy machine) rather than what this
        # machine does: used in this process, clamped, but not kept; the next process measures again
        logger.warning("cost model: %s measured outside %g-%g times the fixed constants (a busy machine?); "
                       "used clamped in this process, not cached", ", ".join(have.clamped), *BOUNDS)
    elif fresh:
        if path:  # other machines' entries are kept where sound
            entries = {k: v for k, v in entries.items()
                       if k != key and isinstance(k, str) and len(k) < 512 and _entry_constants(v) is not None}
            entries = dict(list(entries.items())[-(_MAX_ENTRIES - 1):])
            entries[key] = {**have.as_dict(), "measured": list(have.measured), "seconds": round(have.seconds, 4),
                            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            _write(path, entries)
        else:
            logger.info("cost model: constants not cached (%s); measured once per process", why)
    known[key] = have
    return have


def cached(*, need_bf16: bool = False) -> CostConstants | None:
    """The cached constants for this machine's key, or None (nothing is measured; for ``xmrank warmup --check``)."""
    path, _ = cache_path()
    if not path:
        return None
    entry = _read_file(path).get(cache_key())
    found = _entry_constants(entry) if entry is not None else None
    if found is not None and _bf16_wanted(need_bf16) and "exact.bf16" not in found.measured:
        return None
    return found
