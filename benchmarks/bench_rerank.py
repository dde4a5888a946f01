"""Re-ranking and evaluation benchmark: accuracy, the automatic list lengths, memory and speed.

Run from the repository root:

    python benchmarks/bench_rerank.py              # accuracy tables and timings
    python benchmarks/bench_rerank.py --quick      # accuracy tables only
    python benchmarks/bench_rerank.py --memory     # torchreid's re_ranking vs xmrank.compat.re_ranking
    python benchmarks/bench_rerank.py --gnn        # GNN vs k-reciprocal re-ranking: accuracy tables
    python benchmarks/bench_rerank.py --gnn-speed  # GNN: time and memory, sparse vs dense vs k-reciprocal

Tables:

1. Rank-1 / mAP on the real CLIP ViT-B/16 COCO image/caption features, both
   directions (one image and one caption per id): cosine, k-reciprocal
   re-ranking (fixed and ``k1="auto"``), hubness reduction (QB-Norm, DBNorm)
   and query expansion (AQE, alpha-QE, plain and modality-balanced).
2. The same on synthetic cross-modal sets with several images per identity and
   modality, and with one.
3. ``k1="auto", k2="auto"`` against a grid of fixed settings.
4. Time of ``xmrank.rerank`` for 4,000 queries x 4,000 gallery items against the
   time of the exact kNN search it runs (best of several interleaved repeats).
5. Time of a 3,803 x 301 x 10-trial SYSU-MM01 evaluation.
6. (``--memory``) Peak memory and time of torchreid's dense ``re_ranking``
   (``tests/reference_rerank.py``, the same steps and arrays) against
   ``xmrank.compat.re_ranking`` on Euclidean distance matrices, each size in
   a fresh process; the peak is the process's resident high-water mark
   (``VmHWM``, reset just before the call), above what it held before.
7. (``--gnn``) GNN re-ranking beside k-reciprocal: mAP / Rank-1 of cosine, each
   k-reciprocal rule and each graph rule on the real multi-view sets in
   ``../shared/data/real`` (CCA fitted on half the classes, scored on the
   other half, both directions), the CLIP COCO pairs and the synthetic sets,
   as markdown tables (docs/gnn.md holds a run).
8. (``--gnn-speed``) Time and peak memory of the sparse GNN re-ranking against
   the dense port of the published code (``tests/reference_gnn.py``, only at
   the sizes where it fits) and against k-reciprocal re-ranking, at
   Market-1501 size (3,368 x 15,913, d = 2048) and 10k x 20k.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import xmrank
from xmrank.datasets import load_clip_pairs, make_cross_modal
from xmrank.knn import knn_search
from xmrank.retrieval import auto_k, db_norm, evaluate, qb_norm, query_expansion, rerank

HERE = os.path.dirname(os.path.abspath(__file__))


def load_clip():
    """The bundled CLIP pairs with rows normalised exactly."""
    X, ids, mods = load_clip_pairs()
    return X / np.linalg.norm(X, axis=1, keepdims=True), ids, mods


CONFIGS = [  # (label, method, k1, k2)
    ("rerank vanilla", "vanilla", 20, 6),
    ("rerank modality", "modality", 20, 6),
    ("rerank modality", "modality", 4, 1),
    ("rerank modality", "modality", "auto", "auto"),
]


def compare(X, ids, mods, q_mod, *, lambda_value=0.3):
    """Rank-1 and mAP of cosine, each re-ranking config, hubness reduction and query expansion.

    Queries of modality q_mod, gallery the other; every query bank is the queries themselves
    (no training split here), every gallery bank the gallery.
    """
    q, g = mods == q_mod, mods != q_mod
    Q, G = X[q], X[g]
    qi, gi = ids[q], ids[g]
    score = lambda D: evaluate(D, qi, gi, protocol="regdb")  # noqa: E731
    side = dict(query_modalities=q_mod, gallery_modalities=1 - q_mod)
    rows = [("cosine", "", score(-(Q @ G.T)))]
    for label, method, k1, k2 in CONFIGS:
        labels = side if method == "modality" else {}
        if k1 == "auto":
            chosen = auto_k(Q, G, method=method, **labels)
            ks = f"auto={chosen['k1']}/{chosen['k2']}"
        else:
            ks = f"{k1}/{k2}"
        D = rerank(Q, G, method=method, k1=k1, k2=k2, lambda_value=lambda_value, **labels)
        rows.append((label, ks, score(D)))
    rows.append(("QB-Norm", "beta auto", score(qb_norm(Q, G))))
    rows.append(("QB-Norm", "beta 20", score(qb_norm(Q, G, beta=20))))
    rows.append(("DBNorm", "beta auto", score(db_norm(Q, G))))
    for label, kw in (("alpha-QE plain", dict(k=5, alpha=3.0)),
                      ("AQE balanced", dict(k="auto", alpha=0.0, **side)),
                      ("alpha-QE balanced", dict(k="auto", alpha=3.0, **side))):
        Qe, Ge = query_expansion(Q, G, **kw)
        rows.append((label, f"k={kw['k']}", score(-(Qe @ Ge.T))))
    return rows


def print_accuracy(title, sets):
    print(f"\n{title}")
    print(f"{'data set':<34}{'queries':<10}{'method':<20}{'setting':<14}{'Rank-1':>8}{'mAP':>8}")
    for name, direction, rows in sets:
        for method, ks, r in rows:
            print(f"{name:<34}{direction:<10}{method:<20}{ks:<14}{100 * r['cmc'][0]:>8.2f}{100 * r['mAP']:>8.2f}")


GRID = [(k1, k2) for k1 in (2, 4, 8, 12, 16, 20, 24, 30) for k2 in (1, 2, 3, 6) if k2 <= k1 // 2]


def auto_table(sets):
    """``k1="auto", k2="auto"`` against every fixed (k1, k2) of GRID (modality-aware, lambda 0.3)."""
    print("\nk1/k2 'auto' against fixed settings (modality-aware re-ranking, lambda 0.3; best fixed = highest mAP)")
    print(f"{'data set':<34}{'queries':<10}{'cosine R1/mAP':>15}{'auto (k1/k2)':>16}{'auto R1/mAP':>14}"
          f"{'best fixed':>12}{'R1/mAP':>14}{'20/6 R1/mAP':>14}")
    for name, direction, X, ids, mods, q_mod in sets:
        q, g = mods == q_mod, mods != q_mod
        Q, G = X[q], X[g]
        side = dict(query_modalities=q_mod, gallery_modalities=1 - q_mod)
        score = lambda D: evaluate(D, ids[q], ids[g], protocol="regdb")  # noqa: E731
        cos = score(-(Q @ G.T))
        chosen = auto_k(Q, G, **side)
        auto = score(rerank(Q, G, k1="auto", k2="auto", **side))
        fixed = {(k1, k2): score(rerank(Q, G, k1=k1, k2=k2, **side)) for k1, k2 in GRID}
        best = max(fixed, key=lambda k: fixed[k]["mAP"])
        fmt = lambda r: f"{100 * r['cmc'][0]:.1f}/{100 * r['mAP']:.1f}"  # noqa: E731
        print(f"{name:<34}{direction:<10}{fmt(cos):>15}{chosen['k1']:>11}/{chosen['k2']:<4}{fmt(auto):>14}"
              f"{best[0]:>9}/{best[1]:<2}{fmt(fixed[best]):>14}{fmt(fixed[(20, 6)]):>14}")


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
    X, ids, mods = make_cross_modal(400, 10, dim=512, noise=1.0, seed=1)  # 4,000 rows per modality
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


# --- memory: torchreid's dense re_ranking against xmrank.compat.re_ranking ----------------------

def _euclidean_blocks(nq, ng, d, seed):
    """Query x gallery, query x query, gallery x gallery Euclidean distances (float32) of clustered unit rows,
    written block by block into preallocated arrays (no temporary of their size)."""
    rng = np.random.default_rng(seed)
    n_ids = max(2, (nq + ng) // 10)
    centres = rng.standard_normal((n_ids, d)).astype(np.float32)

    def rows(n):
        X = centres[rng.integers(0, n_ids, n)] + rng.standard_normal((n, d)).astype(np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    Q, G = rows(nq), rows(ng)

    def dist(A, B):
        out = np.empty((len(A), len(B)), dtype=np.float32)
        for lo in range(0, len(A), 1024):
            block = out[lo:lo + 1024]
            np.matmul(A[lo:lo + 1024], B.T, out=block)
            np.multiply(block, -2.0, out=block)
            block += 2.0
            np.maximum(block, 0.0, out=block)
            np.sqrt(block, out=block)
        return out

    return dist(Q, G), dist(Q, Q), dist(G, G)


def _rss_now_and_peak():
    """(current RSS, peak RSS since the last reset) in bytes, from /proc/self/status."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def memory_child(impls, nq, ng, d, seed, save_dir):
    """Measurements in this (fresh) process, one implementation after the other; a JSON line each.

    Both implementations run on the same inputs in the same process, so their time ratio is
    not skewed by load changes between processes; the resident high-water mark is reset
    before each call.
    """
    qg, qq, gg = _euclidean_blocks(nq, ng, d, seed)
    inputs = qg.nbytes + qq.nbytes + gg.nbytes
    for impl in impls:
        if impl == "dense":
            sys.path.insert(0, os.path.join(HERE, "..", "tests"))
            from reference_rerank import dense_re_ranking as fn
        else:
            from xmrank.compat import re_ranking as fn

            fn(qg[:50, :60], qq[:50, :50], gg[:60, :60], k1=10, k2=3)  # load the compiled kernels first
        _reset_peak()
        before, _ = _rss_now_and_peak()
        t = time.perf_counter()
        out = fn(qg, qq, gg, k1=20, k2=6, lambda_value=0.3)
        seconds = time.perf_counter() - t
        _, peak = _rss_now_and_peak()
        if save_dir:
            np.save(os.path.join(save_dir, f"{impl}.npy"), out)
        print(json.dumps({"impl": impl, "nq": nq, "ng": ng, "seconds": seconds, "inputs": inputs,
                          "output": out.nbytes, "before": before, "peak": peak, "extra": peak - before}), flush=True)
        del out


def memory_table(dense_sizes, xmrank_sizes, d):
    """Each size in a fresh process (one at a time); within it xmrank, then the dense original; outputs compared."""
    print(f"\nMemory and time of re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda=0.3), float32 Euclidean distances, "
          f"d={d} (peak = resident high-water mark during the call, above what the process held before: "
          f"the inputs and the loaded libraries)")
    print(f"{'queries x gallery':>18}{'implementation':>22}{'inputs':>10}{'output':>10}{'peak above':>12}"
          f"{'time (s)':>10}{'max |diff|':>12}")
    gib = 2.0**30
    with tempfile.TemporaryDirectory() as tmp:
        for nq, ng in sorted(set(dense_sizes) | set(xmrank_sizes)):
            impls = [i for i, sizes in (("xmrank", xmrank_sizes), ("dense", dense_sizes)) if (nq, ng) in sizes]
            save = tmp if len(impls) == 2 else ""
            proc = subprocess.run([sys.executable, __file__, "--child", ",".join(impls), str(nq), str(ng), str(d), "0",
                                   save], capture_output=True, text=True)
            results = {r["impl"]: r for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
                print(f"{nq:>8} x {ng:<8}{'':>22}   {', '.join(i for i in impls if i not in results)} failed: {tail}")
            diff = ""
            if len(results) == 2:
                a = np.load(os.path.join(tmp, "dense.npy"), mmap_mode="r")
                b = np.load(os.path.join(tmp, "xmrank.npy"), mmap_mode="r")
                diff = f"{float(np.abs(a - b).max()):.1e}"
            for impl in ("dense", "xmrank"):
                if impl not in results:
                    continue
                r = results[impl]
                name = "torchreid (dense)" if impl == "dense" else "xmrank.compat"
                print(f"{nq:>8} x {ng:<8}{name:>22}{r['inputs'] / gib:>9.2f}G{r['output'] / gib:>9.2f}G"
                      f"{r['extra'] / gib:>11.2f}G{r['seconds']:>10.1f}{diff if impl == 'xmrank' else '':>12}")
            if len(results) == 2:
                dense, fast = results["dense"], results["xmrank"]
                print(f"{'':>18}{'ratio dense / xmrank':>22}{'':>20}{dense['extra'] / fast['extra']:>11.1f}x"
                      f"{dense['seconds'] / fast['seconds']:>9.1f}x")


# --- GNN re-ranking (Zhang et al.) beside k-reciprocal: accuracy, time and memory ----------------

REAL = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data", "real")
#: (name, file under REAL, view pairs): multi-view / cross-modal real sets (see their README.md files)
REAL_SETS = [
    ("ORL", "orl_mv/ORL.mat", [(0, 2), (1, 3), (0, 1)]),
    ("LandUse-21", "landuse21/LandUse-21.mat", [(0, 1)]),
    ("Wikipedia", "wikipedia/Wikipedia.mat", [(0, 1)]),
    ("CUB image/text", "cub_img_txt/cub_googlenet_doc2vec_c10.mat", [(0, 1)]),
]
#: (column, rerank keyword arguments or None for cosine); lambda 0.3 everywhere
GNN_CONFIGS = [
    ("cosine", None),
    ("k-rec. vanilla 20/6", dict(method="vanilla", k1=20, k2=6)),
    ("k-rec. modality 20/6", dict(method="modality", k1=20, k2=6)),
    ("k-rec. modality-qe 20/6", dict(method="modality-qe", k1=20, k2=6)),
    ("k-rec. modality auto", dict(method="modality", k1="auto", k2="auto")),
    ("GNN vanilla 26/7", dict(algorithm="gnn", method="vanilla", k1=26, k2=7)),
    ("GNN modality 26/7", dict(algorithm="gnn", method="modality", k1=26, k2=7)),
    ("GNN modality 12/4", dict(algorithm="gnn", method="modality", k1=12, k2=4)),
    ("GNN modality-qe 26/7", dict(algorithm="gnn", method="modality-qe", k1=26, k2=7)),
    ("GNN modality auto", dict(algorithm="gnn", method="modality", k1="auto", k2="auto")),
]
CAMERA_CONFIGS = [
    ("cosine", None),
    ("k-rec. camera", dict(method="camera")),
    ("k-rec. modality-camera 20/6", dict(method="modality-camera", k1=20, k2=6)),
    ("GNN camera", dict(algorithm="gnn", method="camera")),
    ("GNN modality-camera 20/6", dict(algorithm="gnn", method="modality-camera", k1=20, k2=6)),
    ("GNN modality 26/7", dict(algorithm="gnn", method="modality", k1=26, k2=7)),
    ("GNN modality 26/7 + CEIL cameras 0.5", dict(algorithm="gnn", method="modality", k1=26, k2=7, camera_weight=0.5)),
    ("GNN vanilla 26/7 + CEIL cameras 0.5", dict(algorithm="gnn", method="vanilla", k1=26, k2=7, camera_weight=0.5)),
]


def load_real(path):
    """Views (rows = samples, float64) and labels of a multi-view ``.mat`` file (``X`` cell array; ``Y``/``y``/``gt``)."""
    import scipy.io as sio

    m = sio.loadmat(os.path.join(REAL, path))
    y = next(np.asarray(m[k]).ravel().astype(int) for k in ("Y", "y", "gt", "truelabel") if k in m)
    views = []
    for c in np.asarray(m["X"]).ravel():
        c = np.asarray(c.toarray() if hasattr(c, "toarray") else c, dtype=np.float64)
        views.append(c if c.shape[0] == len(y) else c.T)
    return views, y


def cca_split(A, B, y, seed=0):
    """CCA fitted on half the classes, applied to the other half: L2-normalised (Z_a, Z_b, labels) of the held-out rows.

    Each view is standardised and reduced by PCA (fitted on the training half, at most 64 components)
    before scikit-learn's CCA (at most 16 components), so that CCA is well posed on small sets.
    """
    from sklearn.cross_decomposition import CCA
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    classes = np.random.default_rng(seed).permutation(np.unique(y))
    train = np.isin(y, classes[: len(classes) // 2])
    parts = []
    for V in (A, B):
        scaler = StandardScaler().fit(V[train])
        n_pca = min(64, V.shape[1], int(train.sum()) // 2)
        pca = PCA(n_pca, random_state=0).fit(scaler.transform(V[train]))
        parts.append((pca.transform(scaler.transform(V[train])), pca.transform(scaler.transform(V[~train]))))
    (a_tr, a_te), (b_tr, b_te) = parts
    cca = CCA(n_components=min(16, a_tr.shape[1], b_tr.shape[1]), max_iter=1000).fit(a_tr, b_tr)
    za, zb = cca.transform(a_te, b_te)
    unit = lambda Z: (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(za), unit(zb), y[~train]


def score_configs(Q, G, qi, gi, configs, q_cams=None, g_cams=None):
    """``{column: evaluate(...)}`` of cosine and each re-ranking of ``configs`` (queries modality 1, gallery 0)."""
    out = {}
    for name, kw in configs:
        if kw is None:
            D = -(Q @ G.T)
        else:
            kw = dict(kw)
            if kw["method"] != "vanilla":  # every other rule reads the modalities
                kw.update(query_modalities=1, gallery_modalities=0)
            if "camera" in kw["method"] or kw.get("camera_weight"):
                kw.update(query_cameras=q_cams, gallery_cameras=g_cams)
            D = rerank(Q, G, lambda_value=0.3, **kw)
        out[name] = evaluate(D, qi, gi, protocol="regdb")
    return out


def gnn_accuracy_sets():
    """``(set name, direction, Q, G, query ids, gallery ids, query cams, gallery cams)`` for the comparison."""
    sets = []
    if os.path.isdir(REAL):
        for name, path, pairs in REAL_SETS:
            if not os.path.exists(os.path.join(REAL, path)):
                continue
            views, y = load_real(path)
            for a, b in pairs:
                za, zb, yt = cca_split(views[a], views[b], y)
                sets.append((f"{name} (CCA, held-out half)", f"{a}->{b}", za, zb, yt, yt, None, None))
                sets.append((f"{name} (CCA, held-out half)", f"{b}->{a}", zb, za, yt, yt, None, None))
    else:
        print(f"(real sets not found under {REAL}: skipped)")
    X, ids, mods = load_clip()
    for q_mod, direction in ((0, "images->captions"), (1, "captions->images")):
        q, g = mods == q_mod, mods != q_mod
        sets.append(("CLIP COCO pairs (1 per id)", direction, X[q], X[g], ids[q], ids[g], None, None))
    from xmrank.datasets import make_biased

    Xb, ib, mb, cb = make_biased(100, 10, gap=1.5)
    sets.append(("make_biased 100 ids x 10, gap 1.5", "IR->visible", Xb[mb == 1], Xb[mb == 0], ib[mb == 1],
                 ib[mb == 0], cb[mb == 1], cb[mb == 0]))
    for n_ids, per_id in ((200, 5), (1000, 1)):
        Xs, si, sm = make_cross_modal(n_ids, per_id, noise=1.4)
        sets.append((f"make_cross_modal {n_ids} ids x {per_id}", "mod. 1->0", Xs[sm == 1], Xs[sm == 0], si[sm == 1],
                     si[sm == 0], None, None))
    Xn, i_n, mn, cn = make_biased(100, 6, gap=1.5, noise=1.2, camera_gap=0.4, dim=128, seed=1)
    sets.append(("make_biased noisy, camera gap 0.4", "IR->visible", Xn[mn == 1], Xn[mn == 0], i_n[mn == 1],
                 i_n[mn == 0], cn[mn == 1], cn[mn == 0]))
    return sets


def print_markdown(title, columns, rows):
    """One markdown table: a row per (set, direction), a column per method, cells ``mAP / R1`` in %; best mAP bold."""
    print(f"\n{title}\n")
    print("| set | queries | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for name, direction, res in rows:
        best = max(res[c]["mAP"] for c in columns)
        cells = []
        for c in columns:
            text = f"{100 * res[c]['mAP']:.1f} / {100 * res[c]['cmc'][0]:.1f}"
            cells.append(f"**{text}**" if res[c]["mAP"] == best else text)
        print(f"| {name} | {direction} | " + " | ".join(cells) + " |")


def gnn_accuracy():
    sets = gnn_accuracy_sets()
    rows, cam_rows = [], []
    for name, direction, Q, G, qi, gi, qc, gc in sets:
        rows.append((name, direction, score_configs(Q, G, qi, gi, GNN_CONFIGS)))
        if qc is not None:
            cam_rows.append((name, direction, score_configs(Q, G, qi, gi, CAMERA_CONFIGS, qc, gc)))
    print_markdown("mAP / Rank-1 (%), lambda 0.3, queries of one modality against a gallery of the other "
                   "(k1/k2 as named; 'auto': xmrank.auto_k)", [c for c, _ in GNN_CONFIGS], rows)
    print_markdown("Camera rules and CEIL's camera-weighted graph (sets with cameras)",
                   [c for c, _ in CAMERA_CONFIGS], cam_rows)


def _clustered_rows(n, d, seed):
    """Unit rows around ``n // 13`` identity centres (about Market-1501's 13 images per identity), float32."""
    rng = np.random.default_rng(seed)
    n_ids = max(2, n // 13)
    centres = rng.standard_normal((n_ids, d), dtype=np.float32)
    X = centres[rng.integers(0, n_ids, n)]
    X += rng.standard_normal((n, d), dtype=np.float32) * 1.2
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def gnn_speed_child(impls, nq, ng, d, seed):
    """Time (wall and process CPU) and peak resident memory of each implementation in this fresh process."""
    X = _clustered_rows(nq + ng, d, seed)
    Q, G = X[:nq], X[nq:]
    inputs = X.nbytes
    from xmrank.compat import gnn_reranking

    gnn_reranking(Q[:50], G[:60], 10, 3)  # load the compiled kernels and the search engine first
    rerank(Q[:50], G[:60], method="vanilla", k1=10, k2=3)
    knn_search(X[:512], X[:8192], 26)
    for impl in impls:
        if impl == "dense":
            sys.path.insert(0, os.path.join(HERE, "..", "tests"))
            from reference_gnn import dense_gnn_reranking

            fn = lambda: dense_gnn_reranking(Q, G, 26, 7, 0.3)  # noqa: E731
        elif impl == "knn":
            fn = lambda: knn_search(X, X, 26)  # noqa: E731
        elif impl == "gnn":
            fn = lambda: gnn_reranking(Q, G, 26, 7, 0.3)  # noqa: E731
        elif impl == "gnn-distances":
            fn = lambda: rerank(Q, G, algorithm="gnn", method="vanilla", k1=26, k2=7)  # noqa: E731
        else:
            fn = lambda: rerank(Q, G, method="vanilla", k1=20, k2=6)  # noqa: E731
        _reset_peak()
        before, _ = _rss_now_and_peak()
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        _, peak = _rss_now_and_peak()
        print(json.dumps({"impl": impl, "nq": nq, "ng": ng, "seconds": seconds, "cpu": cpu, "inputs": inputs,
                          "before": before, "peak": peak, "extra": peak - before}), flush=True)
        del out


GNN_IMPL_NAMES = {"knn": "exact kNN search alone (26 per row)", "gnn": "xmrank.compat.gnn_reranking",
                  "gnn-distances": "xmrank.rerank(algorithm='gnn')", "krec": "xmrank.rerank k-reciprocal 20/6",
                  "dense": "dense port of the published code"}


def gnn_speed(sizes, dense_sizes, d):
    print(f"\nGNN re-ranking (k1=26, k2=7, lambda=0.3) against the dense published port and k-reciprocal "
          f"re-ranking, clustered unit rows, d={d}; each size in a fresh process; peak = resident high-water mark "
          f"above what the process held before (inputs and libraries); CPU = process CPU time, all threads")
    print(f"{'queries x gallery':>20}  {'implementation':<40}{'wall (s)':>9}{'CPU (s)':>9}{'peak above':>12}")
    gib = 2.0**30
    for nq, ng in sizes:
        impls = ["knn", "gnn", "gnn-distances", "krec"] + (["dense"] if (nq, ng) in dense_sizes else [])
        proc = subprocess.run([sys.executable, __file__, "--gnn-child", ",".join(impls), str(nq), str(ng), str(d), "0"],
                              capture_output=True, text=True)
        results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        for r in results:
            print(f"{nq:>9} x {ng:<9}  {GNN_IMPL_NAMES[r['impl']]:<40}{r['seconds']:>9.2f}{r['cpu']:>9.2f}"
                  f"{r['extra'] / gib:>11.2f}G")
        if proc.returncode != 0:
            print(f"{nq:>9} x {ng:<9}  failed: {(proc.stderr.strip().splitlines() or ['killed'])[-1]}")
        if (nq, ng) not in dense_sizes:
            n = nq + ng
            print(f"{nq:>9} x {ng:<9}  {'dense port: not run':<40} (holds 3-4 dense {n} x {n} float32 matrices, "
                  f"{4 * n * n / gib:.1f} GiB each, and a {nq} x {n} x {ng} matrix product)")


def _sizes(text):
    return [tuple(int(v) for v in part.split("x")) for part in text.split(",") if part]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--gnn-child":
        impls, nq, ng, d, seed = sys.argv[2:7]
        gnn_speed_child(impls.split(","), int(nq), int(ng), int(d), int(seed))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        impls, nq, ng, d, seed, save_dir = sys.argv[2:8]
        memory_child(impls.split(","), int(nq), int(ng), int(d), int(seed), save_dir)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="accuracy tables only")
    ap.add_argument("--memory", action="store_true", help="only the memory/time comparison with torchreid's re_ranking")
    ap.add_argument("--dense-sizes", default="1000x2000,2500x5000,5000x10000",
                    help="sizes (QxG, comma-separated) run with torchreid's dense re_ranking")
    ap.add_argument("--xmrank-sizes", default="1000x2000,2500x5000,5000x10000,10000x20000",
                    help="sizes run with xmrank.compat.re_ranking")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--gnn", action="store_true",
                    help="only the GNN comparison: mAP / Rank-1 of cosine, k-reciprocal and GNN rules on the real, "
                         "CLIP and synthetic sets")
    ap.add_argument("--gnn-speed", action="store_true",
                    help="only the GNN time / memory comparison (--gnn-sizes, --gnn-dense-sizes, --gnn-dim)")
    ap.add_argument("--gnn-sizes", default="3368x15913,10000x20000",
                    help="sizes (QxG) of the GNN time / memory comparison (Market-1501 and 10k x 20k)")
    ap.add_argument("--gnn-dense-sizes", default="1000x4000,2000x8000",
                    help="sizes also run with the dense published port")
    ap.add_argument("--gnn-dim", type=int, default=2048, help="feature width of the GNN time / memory comparison")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}
    print(f"xmrank {xmrank.__version__}, numpy {np.__version__}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.2f}, thread limits {threads or 'none'}")
    if args.memory:
        memory_table(_sizes(args.dense_sizes), _sizes(args.xmrank_sizes), args.dim)
        return
    if args.gnn:
        gnn_accuracy()
        return
    if args.gnn_speed:
        dense = _sizes(args.gnn_dense_sizes)
        gnn_speed(sorted(set(_sizes(args.gnn_sizes)) | set(dense)), dense, args.gnn_dim)
        return

    X, ids, mods = load_clip()
    print_accuracy(
        "Accuracy on real CLIP ViT-B/16 COCO features (500 images + 500 captions: ONE of each per id; lambda=0.3)",
        [("CLIP COCO pairs", "images", compare(X, ids, mods, 0)), ("CLIP COCO pairs", "captions", compare(X, ids, mods, 1))],
    )
    sets, raw = [], [("CLIP COCO pairs", "images", X, ids, mods, 0), ("CLIP COCO pairs", "captions", X, ids, mods, 1)]
    for n_ids, per_id in ((200, 5), (1000, 1), (500, 2), (100, 10)):
        Xs, si, sm = make_cross_modal(n_ids, per_id, noise=1.4)
        name = f"synthetic {n_ids} ids x {per_id}/modality"
        raw.append((name, "mod. 1", Xs, si, sm, 1))
        if per_id in (5, 1):
            sets.append((name, "mod. 1", compare(Xs, si, sm, 1)))
    print_accuracy("Accuracy on synthetic cross-modal sets (gap 1.5, noise 1.4, d=128; lambda=0.3)", sets)
    auto_table(raw)
    if args.quick:
        return
    timing_rerank(args.repeats)
    timing_evaluate(args.repeats)


if __name__ == "__main__":
    main()
