"""Scale across regimes: ``xmrank.cluster(knn="ann")`` from 50k to 1M rows, few to many rows per identity.

For every regime (rows per identity) and size, one fresh subprocess generates
the data, warms the compiled kernels up, notes its resident memory, runs
``xmrank.cluster(X, modalities=m, knn="ann", eps=0.6)`` (the modality-aware
Jaccard with k1 = 30, k2 = 6, DBSCAN) and reports wall time, the search's
share (the "neighbour lists" stage of the Jaccard log), peak resident memory
(VmHWM) and what ``knn="ann"`` chose per modality (calibrated IVF with its
nprobe, or exact search, and why).

At the agreement size (50,000 by default) the same process also clusters with
exact search (``knn="faiss"``, float32, and ``knn="auto"``, the fastest exact
engine: bfloat16 candidates re-scored exactly where the CPU multiplies
bfloat16) and prints the ARI of the ann labels against the exact ones, noise
counted as singletons (``xmrank.diagnostics``' convention; sklearn's default
counts all noise rows as one cluster).

    python benchmarks/bench_scale.py                                   # the whole table (about an hour, 2 cores)
    python benchmarks/bench_scale.py --regimes 10 40 --sizes 50000 200000
    python benchmarks/bench_scale.py --regimes 40 --sizes 1000000 --skip-dask
    python benchmarks/bench_scale.py --hard --sizes 50000 200000 --skip-dask --full   # issue 23's regime

``--hard`` is the noisy regime of issue 23 (what real features look like): 10 rows
per identity, modality offset of norm 0.8 and noise of norm 0.9 against unit
identity centres. ``--full`` adds, per size, a run of ``jaccard_distance``
*without* ``max_distance`` (every pair that shares a column stored): on the hard
regime that output is dense in practice, and xmrank refuses it before allocating
(``xmrank.OutputTooLarge``) where it cannot fit; the row reports the refusal and
the peak memory reached before it.

Data: a person-search gallery (``make_gallery``): identity centres (unit),
one offset per modality (norm 0.8), isotropic noise (norm 0.5), rows
L2-normalised, 35 % of rows in the second modality, identities drawn with
replacement so their sizes vary (Poisson around the mean). With 2 or 10 rows
per identity most of each row's 15 neighbours per modality are rows of other
identities at almost equal similarity: the hard case for an index. SYSU-MM01
has 86 images per identity.
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


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Collect(logging.Handler):
    """Keeps the ann choices and the Jaccard stage timings xmrank logs."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.ann, self.stages = [], []

    def emit(self, record):
        if hasattr(record, "ann"):
            self.ann.append(record.ann)
        msg = record.getMessage()
        if msg.startswith("jaccard_distance"):
            self.stages.append(msg)


def _search_seconds(stage_message: str) -> float:
    """The "neighbour lists" stage time out of the Jaccard log line."""
    for part in stage_message.split("(", 2)[-1].split(","):
        part = part.strip()
        if part.startswith("neighbour lists"):
            return float(part.split()[-1].rstrip("s)"))
    return float("nan")


def _choices(reports):
    out = []
    for r in reports:
        if "group" not in r:
            continue
        out.append(f"{r['choice']} {r['nprobe']}/{r['nlist']}" if r["choice"] == "ann" else "exact")
    return ", ".join(out)


def _singletons(labels):
    labels = np.asarray(labels)
    return np.where(labels < 0, labels.max() + 1 + np.arange(labels.size), labels)


def child(job: str, n: int, args) -> dict:
    import xmrank

    log = logging.getLogger("xmrank")
    log.setLevel(logging.INFO)
    handler = _Collect()
    log.addHandler(handler)
    X0, m0, _ = make_gallery(400, 16, rows_per_id=10)
    xmrank.jaccard_distance(X0, modalities=m0, k1=10, k2=3, max_distance=0.6)  # compile outside the timing
    X, mods, ids = make_gallery(n, args.dim, rows_per_id=args.rows_per_id, noise=args.noise)
    if job in ("agree", "exact"):  # load the bf16 engine (torch) outside the timing too
        xmrank.knn.knn_search(X[:2000], X[:2000], 5, knn="bf16")
    base = _rss_mib("VmRSS")
    out = {"job": job, "n": n, "rows_per_id": args.rows_per_id}
    opts = dict(modalities=mods, k1=args.k1, k2=args.k2, eps=args.eps, min_samples=4)
    if job == "ann":
        t0 = time.perf_counter()
        labels = xmrank.cluster(X, knn="ann", **opts)
        out.update(seconds=time.perf_counter() - t0, search=_search_seconds(handler.stages[-1]),
                   choices=_choices(handler.ann), clusters=int(labels.max()) + 1)
    elif job == "agree":
        from sklearn.metrics import adjusted_rand_score

        times, labels = {}, {}
        for knn in ("faiss", "auto", "ann"):
            t0 = time.perf_counter()
            labels[knn] = xmrank.cluster(X, knn=knn, **opts)
            times[knn] = time.perf_counter() - t0
            out[f"search_{knn}"] = _search_seconds(handler.stages[-1])
        ref = _singletons(labels["faiss"])
        out.update(seconds=times["ann"], exact_seconds=times["faiss"], auto_seconds=times["auto"],
                   search=out["search_ann"], choices=_choices(handler.ann),
                   ari_ann=adjusted_rand_score(ref, _singletons(labels["ann"])),
                   ari_auto=adjusted_rand_score(ref, _singletons(labels["auto"])),
                   ari_exact_vs_ids=adjusted_rand_score(ids, _singletons(labels["faiss"])),
                   clusters=int(labels["ann"].max()) + 1)
    elif job == "full":
        t0 = time.perf_counter()
        try:
            D = xmrank.jaccard_distance(X, modalities=mods, k1=args.k1, k2=args.k2, knn="auto")
            out.update(seconds=time.perf_counter() - t0, choices=f"stored {D.nnz:,} entries", clusters=0,
                       search=_search_seconds(handler.stages[-1]))
        except xmrank.OutputTooLarge as exc:  # refused before the output: no stage line was logged
            out.update(seconds=time.perf_counter() - t0, choices=f"refused: {exc}", clusters=0, search=float("nan"))
    elif job == "dask":
        from distributed import Client, LocalCluster

        from xmrank.distributed import jaccard_distance_dask

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            t0 = time.perf_counter()
            D = jaccard_distance_dask(X, client=client, modalities=mods, k1=args.k1, k2=args.k2, knn="ann",
                                      max_distance=args.eps)
            labels = xmrank.cluster_distance(D, eps=args.eps, min_samples=4)
            out.update(seconds=time.perf_counter() - t0, worker_peak_mib=max(client.run(_rss_mib, "VmHWM").values()))
        choices = _choices(handler.ann)
        ref = xmrank.cluster(X, knn="ann", **opts)
        from sklearn.metrics import adjusted_rand_score

        out.update(search=float("nan"), choices=choices, clusters=int(labels.max()) + 1,
                   ari_vs_one_machine=adjusted_rand_score(_singletons(ref), _singletons(labels)))
    out.update(peak_mib=_rss_mib("VmHWM"), extra_mib=_rss_mib("VmHWM") - base)
    return out


def _run(job, n, rows_per_id, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", job, str(n), "--dim", str(args.dim), "--k1",
           str(args.k1), "--k2", str(args.k2), "--eps", str(args.eps), "--rows-per-id", str(rows_per_id),
           "--noise", str(args.noise)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"job": job, "n": n, "rows_per_id": rows_per_id, "error": f"over {args.timeout:.0f}s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"job": job, "n": n, "rows_per_id": rows_per_id, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"done {job} rows/id={rows_per_id} N={n:,} in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return res


def _row(r):
    if "error" in r:
        return f"| {r['rows_per_id']} | {r['n']:,} | {r['job']} | {r['error']} | | | | | |"
    share = r["search"] / r["seconds"] if r.get("search") == r.get("search") else float("nan")
    exact = f"{r['exact_seconds']:.1f} / {r['auto_seconds']:.1f}" if "exact_seconds" in r else ""
    ari = (f"{r['ari_ann']:.4f}" if "ari_ann" in r else
           (f"{r['ari_vs_one_machine']:.4f}" if "ari_vs_one_machine" in r else ""))
    return (f"| {r['rows_per_id']} | {r['n']:,} | {r['job']} | {r['seconds']:.1f} | {exact} | "
            f"{share:.0%} | {r['peak_mib'] / 1024:.2f} | {ari} | {r['choices']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regimes", type=int, nargs="+", default=[2, 10, 40, 86], help="mean rows per identity")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    ap.add_argument("--million-regimes", type=int, nargs="+", default=[10, 40],
                    help="regimes run at sizes of 1,000,000 and more")
    ap.add_argument("--agree-size", type=int, default=50_000,
                    help="size at which ann is compared with exact search (time and ARI)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.5, help="noise norm (identity centres have norm 1)")
    ap.add_argument("--k1", type=int, default=30)
    ap.add_argument("--k2", type=int, default=6)
    ap.add_argument("--eps", type=float, default=0.6)
    ap.add_argument("--skip-dask", action="store_true", help="no LocalCluster row")
    ap.add_argument("--hard", action="store_true",
                    help="issue 23's noisy regime: 10 rows per identity, noise 0.9 (sets --regimes 10 --noise 0.9)")
    ap.add_argument("--full", action="store_true",
                    help="also run jaccard_distance without max_distance at each size (refused where it cannot fit)")
    ap.add_argument("--dask-regime", type=int, default=40,
                    help="rows per identity of the LocalCluster row (knn='ann' on 2 workers x 1 thread, compared "
                         "with knn='ann' on one machine)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per job")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()
    if args.hard:
        args.regimes, args.noise, args.million_regimes = [10], 0.9, [10]

    results = []
    for rpi in args.regimes:
        for n in args.sizes:
            if n >= 1_000_000 and rpi not in args.million_regimes:
                continue
            results.append(_run("agree" if n == args.agree_size else "ann", n, rpi, args))
            if args.full:
                results.append(_run("full", n, rpi, args))
    if not args.skip_dask:
        results.append(_run("dask", args.agree_size, args.dask_regime, args))

    print(f"\nxmrank.cluster(X, modalities=m, knn='ann', eps={args.eps}), modality-aware Jaccard k1={args.k1}, "
          f"k2={args.k2}, d={args.dim}, noise {args.noise}, {os.cpu_count()} cores\n")
    print("| rows/id | N | job | seconds | exact: faiss / auto s | search share | peak GB | ARI vs exact | "
          "search per modality |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(_row(r))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "args": vars(args)}, fh, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        ap = argparse.ArgumentParser()
        ap.add_argument("--child", nargs=2)
        ap.add_argument("--dim", type=int)
        ap.add_argument("--k1", type=int)
        ap.add_argument("--k2", type=int)
        ap.add_argument("--eps", type=float)
        ap.add_argument("--rows-per-id", type=int)
        ap.add_argument("--noise", type=float)
        a = ap.parse_args()
        print(json.dumps(child(a.child[0], int(a.child[1]), a)))
    else:
        main()
