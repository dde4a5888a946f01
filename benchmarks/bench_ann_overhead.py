"""The cost of having looked: ``knn="ann"`` where it chooses exact search, against exact search itself.

Issue 23's hard generator (identity centres, a modality offset and noise of
comparable norms; 10 rows per identity, 35 % of rows in the second
modality), rows L2-normalised::

    C = rng.standard_normal((n_ids, 128)); off = rng.standard_normal((2, 128)) * 0.8
    X = C[ids] + off[mods] + rng.standard_normal((N, 128)) * 0.9

For each size, in one process, ``xmrank.jaccard_distance(X, modalities=mods,
method="modality", knn=..., max_distance=0.6)`` is timed with ``knn="ann"``,
``"auto"`` (the exact engines ``"ann"`` falls back to), ``"faiss"`` and
``"bf16"`` (where torch is installed), best of ``--repeats``
runs each (the engines interleaved), after a warm-up call (compiled kernels, the cost model's
measurement, torch's import); wall time and the process's CPU time (steadier
where other jobs share the cores). What ``knn="ann"`` chose per modality, and the
seconds it spent deciding (``GroupReport.look_seconds``), come from
``xmrank.knn.ann_lists``' log.

    python benchmarks/bench_ann_overhead.py --sizes 20000 50000
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np


def make_hard(n: int, d: int = 128, seed: int = 0):
    """Issue 23's hard regime: returns ``(X float32, modalities int64)``."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // 10)
    ids = rng.integers(0, n_ids, size=n)
    mods = (rng.random(n) < 0.35).astype(np.int64)
    C = rng.standard_normal((n_ids, d))
    off = rng.standard_normal((2, d)) * 0.8
    X = C[ids] + off[mods] + rng.standard_normal((n, d)) * 0.9
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), mods


class _Grab(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--engines", nargs="+", default=["ann", "auto", "faiss", "bf16"])
    args = ap.parse_args()

    import xmrank
    from xmrank.backend import have_torch

    grab = _Grab()
    for name in ("xmrank.knn.ann_lists", "xmrank.knn.cost_model"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.INFO)
        lg.addHandler(grab)
    engines = [e for e in args.engines if e != "bf16" or have_torch()]
    Xw, mw = make_hard(2000)
    for e in engines:  # warm-up: kernels, torch's import, the cost model
        xmrank.jaccard_distance(Xw, modalities=mw, method="modality", knn=e, max_distance=0.6, progress=False)
    for r in grab.records:
        if r.name == "xmrank.knn.cost_model":
            print("cost model:", r.getMessage())
    for n in args.sizes:
        X, mods = make_hard(n)
        times, look = {e: float("inf") for e in engines}, {}
        cpu = {e: float("inf") for e in engines}
        for _ in range(args.repeats):  # the engines interleaved: a load that comes and goes touches them alike
            for e in engines:
                grab.records.clear()
                t0, c0 = time.perf_counter(), time.process_time()
                xmrank.jaccard_distance(X, modalities=mods, method="modality", knn=e, max_distance=0.6,
                                        progress=False)
                times[e] = min(times[e], time.perf_counter() - t0)
                cpu[e] = min(cpu[e], time.process_time() - c0)
                if e == "ann":
                    for r in grab.records:
                        ann = getattr(r, "ann", None)
                        if ann:
                            look[ann["group"]] = ann.get("look_seconds", 0.0)
                            print(f"  N={n} group {ann['group']} ({ann['n_database']} rows): {ann['choice']} "
                                  f"[{ann['exact_engine']}, constants {ann.get('cost_source', '')}] "
                                  f"{ann['seconds']:.2f}s of which deciding {ann.get('look_seconds', 0.0):.3f}s; "
                                  f"{ann['reason']}")
        line = ", ".join(f"{e} {t:.2f}s" for e, t in times.items())
        ratios = ", ".join(f"ann/{e} {times['ann'] / times[e]:.3f}" for e in engines if e != "ann" and "ann" in times)
        print(f"N={n}: {line}; {ratios}")
        line = ", ".join(f"{e} {t:.2f}s" for e, t in cpu.items())
        ratios = ", ".join(f"ann/{e} {cpu['ann'] / cpu[e]:.3f}" for e in engines if e != "ann" and "ann" in cpu)
        print(f"N={n} process CPU time (steadier on a shared machine): {line}; {ratios}")
        if "ann" in times:
            base = min(times[e] for e in engines if e != "ann") if len(engines) > 1 else times["ann"]
            print(f"N={n}: deciding took {sum(look.values()):.3f}s, {sum(look.values()) / base:.3f} of the fastest "
                  "exact jaccard_distance call (last ann run)")


if __name__ == "__main__":
    main()
