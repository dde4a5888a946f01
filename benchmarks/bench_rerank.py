"""Re-ranking and evaluation benchmark: accuracy (cosine vs vanilla vs modality-aware re-ranking) and speed.

Run from the repository root:

    python benchmarks/bench_rerank.py            # everything
    python benchmarks/bench_rerank.py --quick    # accuracy tables only

Prints four tables:

1. Rank-1 / mAP on the real CLIP ViT-B/16 COCO image/caption features, both
   directions (one image and one caption per id).
2. The same on synthetic cross-modal sets with several images per identity and
   modality, and with one.
3. Time of ``xmrank.rerank`` for 4,000 queries x 4,000 gallery items against the
   time of the exact kNN search it runs (best of several interleaved repeats).
4. Time of a 3,803 x 301 x 10-trial SYSU-MM01 evaluation.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import xmrank
from xmrank.knn import knn_search
from xmrank.retrieval import evaluate, rerank

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP_PATHS = [
    os.path.join(HERE, "..", "xmrank", "data", "clip_coco_pairs.npz"),
    "/work/shared/data/clip_coco_pairs.npz",
]


def load_clip():
    for path in CLIP_PATHS:
        if os.path.exists(path):
            with np.load(path) as z:
                X = z["features"].astype(np.float32)
                return X / np.linalg.norm(X, axis=1, keepdims=True), z["ids"], z["modalities"]
    raise SystemExit("clip_coco_pairs.npz not found in xmrank/data or /work/shared/data")


def synthetic(n_ids, per_id, *, gap=1.5, noise=1.0, dim=128, seed=0):
    """Identity centres + an orthogonal offset per modality + Gaussian noise; unit rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    offsets, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    ids = np.tile(np.repeat(np.arange(n_ids), per_id), 2)
    mods = np.repeat([0, 1], n_ids * per_id)
    X = centres[ids] + gap * offsets.T[mods] + rng.standard_normal((len(ids), dim)) * noise / np.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), ids, mods


CONFIGS = [  # (label, method, k1, k2)
    ("rerank vanilla", "vanilla", 20, 6),
    ("rerank modality", "modality", 20, 6),
    ("rerank vanilla", "vanilla", 4, 1),
    ("rerank modality", "modality", 4, 1),
]


def compare(X, ids, mods, q_mod, *, lambda_value=0.3):
    """Rank-1 and mAP of cosine and of each re-ranking config, queries of modality q_mod, gallery the other."""
    q, g = mods == q_mod, mods != q_mod
    Q, G = X[q], X[g]
    rows = [("cosine", "", evaluate(-(Q @ G.T), ids[q], ids[g], protocol="regdb"))]
    for label, method, k1, k2 in CONFIGS:
        labels = dict(query_modalities=q_mod, gallery_modalities=1 - q_mod) if method == "modality" else {}
        D = rerank(Q, G, method=method, k1=k1, k2=k2, lambda_value=lambda_value, **labels)
        rows.append((label, f"{k1}/{k2}", evaluate(D, ids[q], ids[g], protocol="regdb")))
    return rows


def print_accuracy(title, sets):
    print(f"\n{title}")
    print(f"{'data set':<34}{'queries':<10}{'method':<18}{'k1/k2':<7}{'Rank-1':>8}{'mAP':>8}")
    for name, direction, rows in sets:
        for method, ks, r in rows:
            print(f"{name:<34}{direction:<10}{method:<18}{ks:<7}{100 * r['cmc'][0]:>8.2f}{100 * r['mAP']:>8.2f}")


def best_of(fn, repeats):
    """Best and median wall time of ``repeats`` calls, and the best process CPU time (all threads)."""
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(times), float(np.median(times)), min(cpu)


def timing_rerank(repeats):
    X, ids, mods = synthetic(400, 10, dim=512, noise=1.0, seed=1)  # 4,000 rows per modality
    q, g = mods == 1, mods == 0
    Q, G = X[q], X[g]
    Xs = np.vstack([Q, G])
    ms = np.repeat([1, 0], [len(Q), len(G)])
    rerank(Q[:200], G[:200], query_modalities=1, gallery_modalities=0)  # compile the kernels
    rerank(Q[:200], G[:200], method="vanilla")
    cases = {
        "modality": (
            lambda: [knn_search(Xs, Xs[ms == m], 10) for m in (0, 1)],  # k1 // 2 per modality
            lambda: rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=20, k2=6),
        ),
        "vanilla": (
            lambda: knn_search(Xs, Xs, 20),
            lambda: rerank(Q, G, method="vanilla", k1=20, k2=6),
        ),
        "modality, normalize='union'": (
            lambda: [knn_search(Xs, Xs[ms == m], 10) for m in (0, 1)],
            lambda: rerank(Q, G, query_modalities=1, gallery_modalities=0, k1=20, k2=6, normalize="union"),
        ),
    }
    print(f"\nRe-ranking time, {len(Q)} queries x {len(G)} gallery, d={X.shape[1]}, k1=20, k2=6 "
          f"(wall best / median of {repeats}, interleaved; CPU = best process CPU time, all threads)")
    print(f"{'method':<30}{'kNN search (s)':>16}{'rerank (s)':>15}{'wall ratio':>12}{'CPU kNN':>9}{'CPU rerank':>12}{'CPU ratio':>11}")
    for name, (knn_fn, rr_fn) in cases.items():
        kt, rt, kc, rc = [], [], [], []
        for _ in range(repeats):
            w, _, c = best_of(knn_fn, 1)
            kt.append(w)
            kc.append(c)
            w, _, c = best_of(rr_fn, 1)
            rt.append(w)
            rc.append(c)
        print(f"{name:<30}{min(kt):>8.3f} / {np.median(kt):.3f}{min(rt):>8.3f} / {np.median(rt):.3f}"
              f"{min(rt) / min(kt):>11.2f}x{min(kc):>9.3f}{min(rc):>12.3f}{min(rc) / min(kc):>10.2f}x")


def timing_evaluate(repeats):
    rng = np.random.default_rng(0)
    ids = np.arange(96)
    q_ids = np.repeat(ids, 40)[:3803]
    q_cams = rng.choice([3, 6], 3803)
    g_ids = np.repeat(ids, 4)[:301]
    g_cams = np.tile([1, 2, 4, 5], 76)[:301]
    centres = rng.standard_normal((96, 2048)).astype(np.float32)
    Qf = centres[q_ids] + rng.standard_normal((3803, 2048)).astype(np.float32) * 2
    Gf = centres[g_ids] + rng.standard_normal((301, 2048)).astype(np.float32) * 2
    Qf /= np.linalg.norm(Qf, axis=1, keepdims=True)
    Gf /= np.linalg.norm(Gf, axis=1, keepdims=True)
    dists = [-(Qf @ Gf.T) + rng.normal(scale=1e-3, size=(3803, 301)) for _ in range(10)]

    def ten_trials():
        return [evaluate(d, q_ids, g_ids, q_cams, g_cams, protocol="sysu") for d in dists]

    def ten_trials_with_distances():
        return [evaluate(-(Qf @ Gf.T), q_ids, g_ids, q_cams, g_cams, protocol="sysu") for _ in range(10)]

    ten_trials()
    print(f"\nSYSU-MM01 evaluation, 3803 queries x 301 gallery x 10 trials (wall best / median of {repeats}; CPU best)")
    for label, fn in (("evaluate() on 10 distance matrices", ten_trials),
                      ("-q.g (d=2048) + evaluate(), 10 trials", ten_trials_with_distances)):
        b, m, c = best_of(fn, repeats)
        print(f"{label:<44}{b:>7.3f} s / {m:.3f} s   CPU {c:.3f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="accuracy tables only")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}
    print(f"xmrank {xmrank.__version__}, numpy {np.__version__}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.2f}, thread limits {threads or 'none'}")

    X, ids, mods = load_clip()
    print_accuracy(
        "Accuracy on real CLIP ViT-B/16 COCO features (500 images + 500 captions: ONE of each per id; lambda=0.3)",
        [("CLIP COCO pairs", "images", compare(X, ids, mods, 0)), ("CLIP COCO pairs", "captions", compare(X, ids, mods, 1))],
    )
    sets = []
    for n_ids, per_id in ((200, 5), (1000, 1)):
        Xs, si, sm = synthetic(n_ids, per_id, noise=1.4)
        sets.append((f"synthetic {n_ids} ids x {per_id}/modality", "mod. 1", compare(Xs, si, sm, 1)))
    print_accuracy("Accuracy on synthetic cross-modal sets (gap 1.5, noise 1.4, d=128; lambda=0.3)", sets)
    if args.quick:
        return
    timing_rerank(args.repeats)
    timing_evaluate(args.repeats)


if __name__ == "__main__":
    main()
