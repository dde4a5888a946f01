"""Scale: approximate-kNN Jaccard at N = 50k, 200k, 1M, a dask LocalCluster run, and ann-vs-exact ARI.

Every measurement runs in a fresh subprocess that generates its data, warms
the compiled kernels up, notes its resident memory, runs one job and reports
wall time, its peak resident memory (VmHWM) and the peak above the baseline.

    python benchmarks/bench_scale.py                          # everything below, 1M included
    python benchmarks/bench_scale.py --sizes 50000 200000 --skip-dask
    python benchmarks/bench_scale.py --sizes 50000 --data bench_jaccard   # the harder generator

Jobs
----
ann N     ``xmrank.jaccard_distance(X, modalities=m, knn="ann", max_distance=eps)``: the
          modality-aware Jaccard with faiss IVF search per modality (recall >= 0.97,
          measured on 1,000 sampled queries per index and printed).
ari N     the same with ``knn="ann"`` and with exact kNN (``knn="faiss"``), both clustered by
          ``xmrank.cluster_distance(D, eps=0.6, min_samples=4)`` (DBSCAN); prints the ARI
          between the two labelings (and of each against the true identities).
dask N    ``xmrank.distributed.jaccard_distance_dask(..., knn="ann")`` on a
          ``LocalCluster(n_workers=2, threads_per_worker=1)``, then the single-machine
          result for comparison (not timed).

``max_distance=eps`` (0.6) stores only the pairs DBSCAN at that radius reads; without it
the exact "< 1" matrix holds tens to thousands of pairs per row, many GB at N >= 100k.

Data (``--data gallery``, default): a person-search gallery; identities of ~40 images
(SYSU-MM01's training set has ~56 visible and ~29 infrared images per identity), 35% of
rows in the second modality, identity centre + modality offset + isotropic noise, rows
L2-normalised: the recipe of ``bench_jaccard.make_features`` with its identity size and
noise as parameters. ``--data bench_jaccard`` uses ``bench_jaccard.make_features`` itself
(10 rows per identity, noise larger than the centres): most of each row's 15 neighbours
per modality are then near-random rows, a hard case for any approximate index.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_jaccard import make_features  # noqa: E402


def make_gallery(n: int, d: int, *, rows_per_id: int = 40, noise: float = 0.5, gap: float = 0.8,
                 second_share: float = 0.35, seed: int = 0):
    """Identity centres + modality offset + noise, rows normalised.

    Returns
    -------
    X : ndarray of float32, shape (n, d)
    modalities : ndarray of int64, shape (n,)
    ids : ndarray of int64, shape (n,)
    """
    rng = np.random.default_rng(seed)
    n_ids = max(2, n // rows_per_id)
    ids = rng.integers(0, n_ids, size=n)
    modalities = (rng.random(n) < second_share).astype(np.int64)
    centres = rng.standard_normal((n_ids, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    offsets = rng.standard_normal((2, d), dtype=np.float32)
    offsets *= gap / np.linalg.norm(offsets, axis=1, keepdims=True)
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        X[s:e] = rng.standard_normal((e - s, d), dtype=np.float32)
        X[s:e] *= noise / np.sqrt(d)
        X[s:e] += centres[ids[s:e]] + offsets[modalities[s:e]]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, modalities, ids


def _data(kind: str, n: int, d: int, args):
    if kind == "gallery":
        return make_gallery(n, d, rows_per_id=args.rows_per_id, noise=args.noise)
    X, mods = make_features(n, d)
    ids = np.random.default_rng(0).integers(0, max(2, n // 10), size=n)  # make_features' first draw
    return X, mods, ids


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Collect(logging.Handler):
    """Keeps the ANN reports and the stage timings xmrank logs."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.ann, self.messages = [], []

    def emit(self, record):
        if hasattr(record, "ann"):
            self.ann.append(record.ann)
        elif record.getMessage().startswith("jaccard_distance"):
            self.messages.append(record.getMessage())


def _setup(minsum: str):
    import xmrank

    log = logging.getLogger("xmrank")
    log.setLevel(logging.INFO)
    handler = _Collect()
    log.addHandler(handler)
    if minsum == "blocks":  # preview: the upper-triangle kernel proposed for jaccard_distance
        from xmrank.jaccard import blocks, distance

        distance.kernels.minsum_jaccard = blocks.minsum_jaccard
    X, m = make_gallery(400, 16, rows_per_id=10)[:2]
    xmrank.jaccard_distance(X, modalities=m, k1=10, k2=3, max_distance=0.6)  # compile outside the timing
    return xmrank, handler


def _knn_summary(reports):
    return [{key: r[key] for key in ("n_database", "nlist", "nprobe", "recall", "exact", "seconds")} for r in reports]


def child(job: str, n: int, args) -> dict:
    xmrank, handler = _setup(args.minsum)
    X, mods, ids = _data(args.data, n, args.dim, args)
    base = _rss_mib("VmRSS")
    out = {"job": job, "n": n}
    if job == "ann":
        t0 = time.perf_counter()
        D = xmrank.jaccard_distance(X, modalities=mods, k1=args.k1, k2=args.k2, knn="ann", max_distance=args.eps)
        out.update(seconds=time.perf_counter() - t0, pairs_per_row=D.nnz / n)
    elif job == "ari":
        from sklearn.metrics import adjusted_rand_score

        t0 = time.perf_counter()
        D_ann = xmrank.jaccard_distance(X, modalities=mods, k1=args.k1, k2=args.k2, knn="ann", max_distance=args.eps)
        t_ann = time.perf_counter() - t0
        D_ex = xmrank.jaccard_distance(X, modalities=mods, k1=args.k1, k2=args.k2, knn="faiss", max_distance=args.eps)
        t_exact = time.perf_counter() - t0 - t_ann
        la = xmrank.cluster_distance(D_ann, eps=args.eps, min_samples=4)
        le = xmrank.cluster_distance(D_ex, eps=args.eps, min_samples=4)
        out.update(seconds=t_ann, exact_seconds=t_exact, ari_ann_vs_exact=adjusted_rand_score(le, la),
                   ari_exact_vs_ids=adjusted_rand_score(ids, le), ari_ann_vs_ids=adjusted_rand_score(ids, la),
                   clusters_exact=int(le.max()) + 1, clusters_ann=int(la.max()) + 1,
                   noise_exact=float((le < 0).mean()), noise_ann=float((la < 0).mean()))
    elif job == "dask":
        from distributed import Client, LocalCluster

        from xmrank.distributed import jaccard_distance_dask

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            t0 = time.perf_counter()
            D = jaccard_distance_dask(X, client=client, modalities=mods, k1=args.k1, k2=args.k2, knn="ann",
                                      max_distance=args.eps)
            out.update(seconds=time.perf_counter() - t0, pairs_per_row=D.nnz / n)
            workers = client.run(_rss_mib, "VmHWM")
            out["worker_peak_mib"] = max(workers.values())
        peak = _rss_mib("VmHWM")
        R = xmrank.jaccard_distance(X, modalities=mods, k1=args.k1, k2=args.k2, knn="ann", max_distance=args.eps)
        D.sort_indices()
        R.sort_indices()
        same = D.nnz == R.nnz and np.array_equal(D.indptr, R.indptr) and np.array_equal(D.indices, R.indices)
        out.update(same_pattern=bool(same), max_abs_diff=float(np.abs(D.data - R.data).max()) if same and D.nnz else 0.0)
        out.update(peak_mib=peak, extra_mib=peak - base, knn=_knn_summary(handler.ann[:2]))
        return out
    out.update(peak_mib=_rss_mib("VmHWM"), extra_mib=_rss_mib("VmHWM") - base, knn=_knn_summary(handler.ann),
               stages=handler.messages[-1] if handler.messages else "")
    return out


def _run(job, n, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", job, str(n), "--data", args.data, "--dim",
           str(args.dim), "--k1", str(args.k1), "--k2", str(args.k2), "--eps", str(args.eps), "--minsum", args.minsum,
           "--rows-per-id", str(args.rows_per_id), "--noise", str(args.noise)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"job": job, "n": n, "error": f"timed out after {args.timeout:.0f}s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"job": job, "n": n, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"done {job} N={n:,} in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return res


def _recalls(res):
    return ", ".join(f"{r['recall']:.3f}" + (" (exact)" if r["exact"] else f" ({r['nprobe']}/{r['nlist']})")
                     for r in res.get("knn", []))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--data", choices=["gallery", "bench_jaccard"], default="gallery")
    ap.add_argument("--rows-per-id", type=int, default=40, help="gallery: mean images per identity")
    ap.add_argument("--noise", type=float, default=0.5, help="gallery: noise norm (identity centres have norm 1)")
    ap.add_argument("--k1", type=int, default=30)
    ap.add_argument("--k2", type=int, default=6)
    ap.add_argument("--eps", type=float, default=0.6, help="DBSCAN radius, also passed as max_distance")
    ap.add_argument("--ari-size", type=int, default=50_000)
    ap.add_argument("--dask-size", type=int, default=50_000)
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-ari", action="store_true")
    ap.add_argument("--minsum", choices=["library", "blocks"], default="library",
                    help="min-sum kernel: the library's, or xmrank.jaccard.blocks (proposed) patched in")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per job")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()

    results = [_run("ann", n, args) for n in args.sizes]
    ari = None if args.skip_ari else _run("ari", args.ari_size, args)
    dask = None if args.skip_dask else _run("dask", args.dask_size, args)

    print(f"\nmodality-aware Jaccard, knn='ann', d={args.dim}, k1={args.k1}, k2={args.k2}, max_distance={args.eps}, "
          f"data={args.data}" + (f" (rows/id {args.rows_per_id}, noise {args.noise})" if args.data == "gallery" else "")
          + f", min-sum={args.minsum}, {os.cpu_count()} cores\n")
    print("| N | seconds | peak RSS MiB | above baseline MiB | stored pairs/row | kNN recall@15 per modality (nprobe/nlist) |")
    print("|---:|---:|---:|---:|---:|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['n']:,} | {r['error']} | | | | |")
            continue
        print(f"| {r['n']:,} | {r['seconds']:.1f} | {r['peak_mib']:,.0f} | {r['extra_mib']:,.0f} | "
              f"{r['pairs_per_row']:.1f} | {_recalls(r)} |")
    for r in results:
        if r.get("stages"):
            print(f"\nN={r['n']:,}: {r['stages']}")
    if ari is not None:
        print()
        if "error" in ari:
            print(f"ARI at N={ari['n']:,}: {ari['error']}")
        else:
            print(f"DBSCAN(eps={args.eps}, min_samples=4) at N={ari['n']:,}: ARI(ann vs exact kNN) = "
                  f"{ari['ari_ann_vs_exact']:.4f}; ARI vs identities: exact {ari['ari_exact_vs_ids']:.4f}, "
                  f"ann {ari['ari_ann_vs_ids']:.4f}; clusters {ari['clusters_exact']} / {ari['clusters_ann']}, "
                  f"noise {ari['noise_exact']:.1%} / {ari['noise_ann']:.1%}; "
                  f"Jaccard time exact kNN {ari['exact_seconds']:.1f}s vs ann {ari['seconds']:.1f}s")
    if dask is not None:
        print()
        if "error" in dask:
            print(f"dask at N={dask['n']:,}: {dask['error']}")
        else:
            print(f"dask LocalCluster(2 workers x 1 thread) at N={dask['n']:,}: {dask['seconds']:.1f}s, client peak "
                  f"{dask['peak_mib']:,.0f} MiB, worker peak {dask['worker_peak_mib']:,.0f} MiB; same matrix as "
                  f"one machine: pattern {dask['same_pattern']}, max |diff| {dask['max_abs_diff']:.2e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"sizes": results, "ari": ari, "dask": dask, "args": vars(args)}, fh, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        ap = argparse.ArgumentParser()
        ap.add_argument("--child", nargs=2)
        ap.add_argument("--data")
        ap.add_argument("--dim", type=int)
        ap.add_argument("--k1", type=int)
        ap.add_argument("--k2", type=int)
        ap.add_argument("--eps", type=float)
        ap.add_argument("--minsum")
        ap.add_argument("--rows-per-id", type=int)
        ap.add_argument("--noise", type=float)
        a = ap.parse_args()
        print(json.dumps(child(a.child[0], int(a.child[1]), a)))
    else:
        main()
