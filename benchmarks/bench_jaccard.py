"""Time and peak memory of xmrank's Jaccard distances against the bare kNN search.

Each measurement runs in a fresh subprocess: it loads the features, notes its
resident memory, runs one job, and reports the wall time and the peak
resident memory *above* that baseline (VmHWM - VmRSS before the job).

    python benchmarks/bench_jaccard.py                  # N = 5k, 10k, 20k, 34,167; d = 2048
    python benchmarks/bench_jaccard.py --sizes 5000 --dim 256 --methods modality vanilla
    python benchmarks/bench_jaccard.py --sizes 34167 --per-id 86 --device cuda   # SYSU-sized, on a GPU
    python benchmarks/bench_jaccard.py --k1-sweep        # k1 = 30, 200, 600 at N = 6,000, d = 32: time, peak RSS
    python benchmarks/bench_jaccard.py --bf16 --per-id 86 --repeats 2   # knn="bf16" vs faiss float32, one process per N

``--bf16`` times, in one process per N and interleaved (best of ``--repeats``):
faiss ``IndexFlatIP`` alone and ``knn="faiss"`` (the same search re-scored
exactly, :mod:`xmrank.knn.rescore`; top-``k1`` over all rows, the ``knn`` job),
the same search with the exact bfloat16 engine (:mod:`xmrank.knn.exact_bf16`),
and the modality-aware Jaccard end to end with each engine; it reports the
share of rows whose candidate list (per modality, ``k = k1 // 2``) holds more
than ``k + 16`` rows, and checks that the two Jaccard matrices have the same
stored pairs and differ by float32 rounding only.

Jobs: ``knn`` is the exact search the modality-aware method cannot avoid
(faiss IndexFlatIP, top-30 over all rows); ``modality``/``vanilla``/... are
``xmrank.jaccard_distance`` end to end (sparse output, search included).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def make_features(n: int, d: int, seed: int = 0, per_id: int = 10):
    """A biased two-modality set: one identity per ``per_id`` rows, ~65% visible rows.

    Identity centres (unit), one offset per modality (norm 0.8) and Gaussian
    noise (norm 1.2), rows L2-normalised: the golden files' generator.
    SYSU-MM01 has 86 images per identity (34,167 / 395); ``per_id=10`` is a
    much harder, noisier regime in which most pairs share some weight.
    """
    rng = np.random.default_rng(seed)
    n_ids = max(2, n // per_id)
    ids = rng.integers(0, n_ids, size=n)
    modalities = (rng.random(n) < 0.35).astype(np.int64)
    X = np.empty((n, d), dtype=np.float32)
    centres = rng.standard_normal((n_ids, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    offsets = rng.standard_normal((2, d), dtype=np.float32)
    offsets *= 0.8 / np.linalg.norm(offsets, axis=1, keepdims=True)
    for s in range(0, n, 4096):
        e = min(n, s + 4096)
        noise = rng.standard_normal((e - s, d), dtype=np.float32)
        noise *= 1.2 / np.sqrt(d)
        X[s:e] = centres[ids[s:e]] + offsets[modalities[s:e]] + noise
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, modalities


def child(path: str, job: str, k1: int, k2: int, max_distance: float | None, device: str = "cpu"):
    data = np.load(path)
    X, mods = np.ascontiguousarray(data["X"]), data["modalities"]
    import xmrank
    from xmrank.knn import knn_search

    # compile the kernels (or warm the GPU up) outside the timed region
    if job == "knn":
        knn_search(X[:200], X[:200], 10, device=device)
    else:
        xmrank.jaccard_distance(X[:200], modalities=mods[:200], method=job, k1=10, k2=3, device=device)
    base = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    if job == "knn":
        knn_search(X, X, k1, device=device)  # returns host arrays: the device has finished
        nnz = 0
    else:
        D = xmrank.jaccard_distance(X, modalities=mods, cameras=mods, method=job, k1=k1, k2=k2,
                                    max_distance=max_distance, device=device)
        nnz = D.nnz
    elapsed = time.perf_counter() - t0
    peak = _rss_kib("VmHWM")
    print(json.dumps({"seconds": elapsed, "extra_mib": max(0, peak - base) / 1024, "nnz": nnz}))


def sweep_child(path: str, method: str, k1: int, k2: int):
    """One k1 of the sweep: jaccard_distance end to end, and expand_lists alone, with the process's peak RSS."""
    data = np.load(path)
    X, mods = np.ascontiguousarray(data["X"]), data["modalities"]
    import xmrank
    from xmrank.jaccard import neighbors
    from xmrank.jaccard import kernels

    xmrank.jaccard_distance(X[:200], modalities=mods[:200], method=method, k1=10, k2=3)  # compile
    base = _rss_kib("VmRSS")
    # the set-building stage on its own (the k1-dependent allocation this sweep watches)
    sims, rank = neighbors.global_lists(X, k1)
    r_mask = kernels.reciprocal_mask(rank, k1)
    h_mask = kernels.reciprocal_mask(rank, int(np.around(k1 / 2)))
    t0 = time.perf_counter()
    indptr, indices = kernels.expand_lists(rank, r_mask, rank, h_mask)
    t_expand = time.perf_counter() - t0
    set_size = indices.size / X.shape[0]
    del sims, rank, r_mask, h_mask, indptr, indices
    t0 = time.perf_counter()
    D = xmrank.jaccard_distance(X, modalities=mods, method=method, k1=k1, k2=k2)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"seconds": elapsed, "expand_seconds": t_expand, "peak_mib": _rss_kib("VmHWM") / 1024,
                      "base_mib": base / 1024, "set_size": set_size, "nnz": int(D.nnz)}))


def k1_sweep(args):
    """Time and peak RSS of jaccard_distance over k1 (the --k1-sweep option)."""
    n, d = args.sweep_n, args.sweep_dim
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        X, mods = make_features(n, d, per_id=args.per_id)
        path = os.path.join(tmp, "x.npz")
        np.savez(path, X=X, modalities=mods)
        for k1 in args.sweep_k1:
            out = subprocess.run(
                [sys.executable, __file__, "--sweep-child", path, args.sweep_method, str(k1), str(args.k2)],
                check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            rows.append((k1, json.loads(out)))
            print(f"done k1={k1}", file=sys.stderr)
    print(f"\nN={n:,}, d={d}, method={args.sweep_method}, k2={args.k2}, {args.per_id} rows per identity, "
          f"{os.cpu_count()} cores, exact search, sparse output\n")
    print("| k1 | jaccard_distance s | expand_lists s | mean set size | peak RSS MiB | RSS before MiB | stored pairs/row |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k1, r in rows:
        print(f"| {k1} | {r['seconds']:.1f} | {r['expand_seconds']:.2f} | {r['set_size']:,.0f} | {r['peak_mib']:,.0f} "
              f"| {r['base_mib']:,.0f} | {r['nnz'] / n:,.0f} |")


class _StatsLog(logging.Handler):
    """Collects the bf16 engine's per-search log lines (candidates per row, share over k + 16)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.rows = []

    def emit(self, record):
        if record.msg.startswith("bf16 search:"):
            nq, nd, k, mean, mx, share = record.args[:6]
            self.rows.append((nq, nd, k, mean, mx, share / 100.0))


def exact_lists(X, rows, k, block=4096):
    """Exact top-``k`` of ``X[rows]`` against all of ``X``: float64 scores rounded to float32, ties by index."""
    Q = X[rows].astype(np.float64)
    S = np.empty((len(rows), X.shape[0]), dtype=np.float32)
    for s in range(0, X.shape[0], block):
        S[:, s:s + block] = (Q @ X[s:s + block].astype(np.float64).T).astype(np.float32)
    cols = np.broadcast_to(np.arange(X.shape[0]), S.shape)
    return np.lexsort((cols, -S), axis=1)[:, :k]


def bf16_child(path: str, k1: int, k2: int, repeats: int):
    """One N of --bf16: faiss and bf16 searches and Jaccards, interleaved in this process; prints JSON."""
    data = np.load(path)
    X, mods = np.ascontiguousarray(data["X"]), data["modalities"]
    import xmrank
    from xmrank.knn import knn_search

    log = _StatsLog()
    engine_log = logging.getLogger("xmrank.knn.exact_bf16")
    engine_log.addHandler(log)
    engine_log.setLevel(logging.DEBUG)
    # compile the kernels and load torch outside the timed region
    for knn in ("faiss", "bf16"):
        knn_search(X[:300], X[:300], 10, knn=knn)
        xmrank.jaccard_distance(X[:300], modalities=mods[:300], k1=10, k2=3, knn=knn)
    def raw_faiss():  # faiss IndexFlatIP alone, without the exact re-scoring of knn="faiss" (its cost, below)
        import faiss

        index = faiss.IndexFlatIP(X.shape[1])
        index.add(X)
        return index.search(X, k1)

    jobs = {
        "search_faiss_raw": raw_faiss,
        "search_faiss": lambda: knn_search(X, X, k1, knn="faiss"),
        "search_bf16": lambda: knn_search(X, X, k1, knn="bf16"),
        "jaccard_faiss": lambda: xmrank.jaccard_distance(X, modalities=mods, k1=k1, k2=k2, knn="faiss"),
        "jaccard_bf16": lambda: xmrank.jaccard_distance(X, modalities=mods, k1=k1, k2=k2, knn="bf16"),
    }
    best = {name: float("inf") for name in jobs}
    out = {}
    names = list(jobs)
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:  # alternate the order against drift
            log.rows.clear()
            t0 = time.perf_counter()
            out[name] = jobs[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
            if name == "jaccard_bf16":
                per_modality = list(log.rows)
    (s_f, i_f), (s_b, i_b) = out["search_faiss"], out["search_bf16"]
    sample = np.random.default_rng(0).choice(X.shape[0], size=min(256, X.shape[0]), replace=False)
    truth = exact_lists(X, sample, k1)
    D_f, D_b = out["jaccard_faiss"].tocsr(), out["jaccard_bf16"].tocsr()
    D_f.sort_indices()
    D_b.sort_indices()
    same_pattern = bool(np.array_equal(D_f.indptr, D_b.indptr) and np.array_equal(D_f.indices, D_b.indices))
    diff = abs(D_f - D_b)
    rows_n = sum(r[0] for r in per_modality)
    share = sum(r[0] * r[5] for r in per_modality) / max(rows_n, 1)
    mean_cand = sum(r[0] * r[3] for r in per_modality) / max(rows_n, 1)
    print(json.dumps({
        **best,
        "share_over": share, "mean_candidates": mean_cand, "k": per_modality[0][2] if per_modality else 0,
        "list_rows_differ": float((i_f != i_b).any(axis=1).mean()),
        "raw_faiss_rows_differ": float((out["search_faiss_raw"][1] != i_f).any(axis=1).mean()),
        "sample_exact_bf16": float((i_b[sample] == truth).all(axis=1).mean()),
        "sample_exact_faiss": float((i_f[sample] == truth).all(axis=1).mean()),
        "sim_max_diff": float(np.abs(s_f - s_b).max()),
        "jaccard_same_pairs": same_pattern,
        "jaccard_max_diff": float(diff.max()) if diff.nnz else 0.0,
        "jaccard_rows_differ": float((np.diff((diff > 1e-6).tocsr().indptr) > 0).mean()),
    }))


def bf16_compare(args):
    """The --bf16 table: exact bfloat16 engine against faiss float32, one process per N."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            X, mods = make_features(n, args.dim, per_id=args.per_id)
            path = os.path.join(tmp, f"x{n}.npz")
            np.savez(path, X=X, modalities=mods)
            del X
            out = subprocess.run(
                [sys.executable, __file__, "--bf16-child", path, str(args.k1), str(args.k2), str(args.repeats)],
                check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            rows.append((n, json.loads(out)))
            print(f"done N={n}", file=sys.stderr)
    print(f"\nd={args.dim}, k1={args.k1} (modality-aware: {args.k1 // 2} per modality), k2={args.k2}, "
          f"{args.per_id} rows per identity, {os.cpu_count()} cores, best of {args.repeats} interleaved runs "
          f"in one process per N\n")
    print("| N | faiss search s | bf16 search s | search ratio | Jaccard (faiss) s | Jaccard (bf16) s "
          "| Jaccard bf16 / faiss search | candidates/row | rows > k+16 | lists = faiss | exact (sample): bf16, faiss "
          "| Jaccard max diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        print(f"| {n:,} | {r['search_faiss']:.1f} | {r['search_bf16']:.1f} "
              f"| {r['search_bf16'] / r['search_faiss']:.2f} "
              f"| {r['jaccard_faiss']:.1f} | {r['jaccard_bf16']:.1f} | {r['jaccard_bf16'] / r['search_faiss']:.2f} "
              f"| {r['mean_candidates']:.1f} | {100 * r['share_over']:.0f}% "
              f"| {100 * (1 - r['list_rows_differ']):.2f}% "
              f"| {100 * r['sample_exact_bf16']:.1f}%, {100 * r['sample_exact_faiss']:.1f}% "
              f"| {r['jaccard_max_diff']:.1e} |")
    print("\n| N | faiss IndexFlatIP alone s | knn='faiss' (re-scored, exact) s | ratio "
          "| rows whose raw list differs |")
    print("|---:|---:|---:|---:|---:|")
    for n, r in rows:
        print(f"| {n:,} | {r['search_faiss_raw']:.2f} | {r['search_faiss']:.2f} "
              f"| {r['search_faiss'] / r['search_faiss_raw']:.3f} | {100 * r['raw_faiss_rows_differ']:.2f}% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000, 34167])
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--methods", nargs="+", default=["modality"])
    ap.add_argument("--k1", type=int, default=30)
    ap.add_argument("--k2", type=int, default=6)
    ap.add_argument("--per-id", type=int, default=10, help="rows per identity (SYSU-MM01: 86)")
    ap.add_argument("--max-distance", type=float, default=None,
                    help="store only pairs <= this distance (what clustering at eps needs)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: search and Jaccard on the GPU (the paper reports 68 s for N=34,167, d=2048)")
    ap.add_argument("--k1-sweep", action="store_true",
                    help="time and peak RSS over k1 (--sweep-k1) at N=--sweep-n, d=--sweep-dim instead")
    ap.add_argument("--sweep-k1", type=int, nargs="+", default=[30, 200, 600])
    ap.add_argument("--sweep-n", type=int, default=6000)
    ap.add_argument("--sweep-dim", type=int, default=32)
    ap.add_argument("--sweep-method", default="vanilla")
    ap.add_argument("--bf16", action="store_true",
                    help="knn='bf16' against faiss float32: searches and modality-aware Jaccard in one process per N")
    ap.add_argument("--repeats", type=int, default=2, help="--bf16: interleaved runs per job, best kept")
    args = ap.parse_args()
    if args.k1_sweep:
        return k1_sweep(args)
    if args.bf16:
        return bf16_compare(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            X, mods = make_features(n, args.dim, per_id=args.per_id)
            path = os.path.join(tmp, f"x{n}.npz")
            np.savez(path, X=X, modalities=mods)
            del X
            res = {}
            for job in ["knn", *args.methods]:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", path, job, str(args.k1), str(args.k2), str(args.max_distance),
                     args.device],
                    check=True, capture_output=True, text=True,
                ).stdout.strip().splitlines()[-1]
                res[job] = json.loads(out)
            for job in args.methods:
                r, k = res[job], res["knn"]
                rows.append((n, job, r["seconds"], k["seconds"], r["seconds"] / k["seconds"], r["extra_mib"], k["extra_mib"], r["nnz"] / n))
                print(f"done N={n} {job}", file=sys.stderr)
    print(f"\nd={args.dim}, k1={args.k1}, k2={args.k2}, {args.per_id} rows per identity, "
          f"max_distance={args.max_distance}, {os.cpu_count()} cores, device {args.device}, exact search\n")
    print("| N | method | xmrank s | kNN s | ratio | xmrank extra MiB | kNN extra MiB | stored pairs/row |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n, job, t, tk, ratio, mem, memk, per_row in rows:
        print(f"| {n:,} | {job} | {t:.1f} | {tk:.1f} | {ratio:.2f} | {mem:,.0f} | {memk:,.0f} | {per_row:,.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sweep-child":
        sweep_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--bf16-child":
        bf16_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
              None if sys.argv[6] == "None" else float(sys.argv[6]), sys.argv[7])
    else:
        main()
