"""Clustering on the real two-view protocols (and synthetic sets): fixed grid, ``"auto"`` and validation-selected.

For each protocol of ``benchmarks/real_sets.py`` (two views of a real multi-view set as two modalities,
CCA fitted on half of the identities, the other half clustered) and a few synthetic sets, it prints:

- **grid best**: the best ARI over k1 in {5, 10, 20, 30} x eps in 0.05..0.95 (step 0.025), for the method
  ``method="auto"`` picks and over both methods (an oracle: it reads the test labels);
- **auto**: ``xmrank.cluster(X, modalities=m, k1="auto", k2="auto", eps="auto")``, with what it chose;
- **selected**: ``xmrank.select_clustering`` on the labelled train half, applied to the test half
  (synthetic sets: a second draw of the generator with another seed);
- **defaults**: ``xmrank.cluster(X, modalities=m)`` (k1 30, eps 0.6).

ARI scores noise rows as singletons. Run from the repository root::

    python benchmarks/bench_real_cluster.py [--json out.json] [--sets orl,cub] [--no-synthetic] [--seed 1] [--no-select]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_sets  # noqa: E402

GRID_K1 = (5, 10, 20, 30)


def ari(truth, labels):
    from xmrank.clustering.select import _ari_singletons

    return _ari_singletons(truth, labels)


def largest(labels):
    ok = labels >= 0
    return float(np.bincount(labels[ok]).max() / labels.size) if ok.any() else 0.0


def hard_set(n=2000, seed=0):
    """Issue 23's "hard" generator: d 128, offsets 0.8, noise 0.9, ~10 rows per identity, 35 % second modality."""
    rng = np.random.default_rng(seed)
    n_ids = n // 10
    ids = rng.integers(0, n_ids, n)
    mods = (rng.random(n) < 0.35).astype(np.int64)
    C = rng.standard_normal((n_ids, 128))
    off = rng.standard_normal((2, 128)) * 0.8
    X = C[ids] + off[mods] + rng.standard_normal((n, 128)) * 0.9
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), ids, mods


def synthetic_cases():
    from xmrank.datasets import make_biased, make_cross_modal

    def biased(gap):
        def make(seed):
            X, ids, m, _ = make_biased(n_ids=60, per_id=8, gap=gap, seed=seed)
            return X, ids, m
        return make

    yield "synthetic biased gap 1.5", biased(1.5)
    yield "synthetic biased gap 0.5", biased(0.5)
    yield "synthetic cross-modal 200x5", lambda seed: make_cross_modal(200, 5, seed=seed)
    yield "synthetic hard (issue 23) 2000", lambda seed: hard_set(2000, seed=seed)


def grid_best(X, ids, m, method):
    import xmrank
    from xmrank.clustering.auto import auto_k2
    from xmrank.clustering.eps import EPS_GRID, _dbscan_labels, _Prepared

    best = (-1.0, None)
    for k1 in GRID_K1:
        try:
            D = xmrank.jaccard_distance(X, modalities=m, method=method, k1=k1, k2=auto_k2(k1, method, 2),
                                        progress=False)
        except xmrank.InputError:
            continue
        P = _Prepared(D)
        for e in EPS_GRID:
            lab = _dbscan_labels(P, float(e), 4)  # DBSCAN's clusters (a border row between two may differ)
            a = ari(ids, lab)
            if a > best[0]:
                best = (a, {"k1": k1, "eps": float(e), "largest": largest(lab)})
    return best


def measure(name, test, train):
    import xmrank

    X, ids, m = test
    t0 = time.perf_counter()
    row = {"set": name, "rows": int(len(X)), "identities": int(np.unique(ids).size)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab, info = xmrank.cluster(X, modalities=m, return_info=True)
        row["defaults"] = {"ari": ari(ids, lab), "largest": largest(lab), "method": info["method"]}
        lab, info = xmrank.cluster(X, modalities=m, k1="auto", k2="auto", eps="auto", return_info=True)
        row["auto"] = {"ari": ari(ids, lab), "largest": largest(lab), "method": info["method"], "k1": info["k1"],
                       "k2": info["k2"], "eps": info["eps"],
                       "bias_ratio": (info["chosen"].get("method", {}).get("measurement") or {}).get("ratio")}
        t_auto = time.perf_counter()
        if train is not None:
            Xtr, idtr, mtr = train
            chosen = xmrank.select_clustering(Xtr, idtr, modalities=mtr)
            lab = xmrank.cluster(X, modalities=m, **chosen)
            row["selected"] = {"ari": ari(ids, lab), "largest": largest(lab), **chosen}
        else:
            row["selected"] = {"ari": float("nan"), "largest": float("nan")}
        for method in ("vanilla", "modality"):
            a, where = grid_best(X, ids, m, method)
            row[f"grid_{method}"] = {"ari": a, **(where or {})}
    row["grid_auto_method"] = row[f"grid_{row['auto']['method']}"]["ari"]
    row["grid_both"] = max(row["grid_vanilla"]["ari"], row["grid_modality"]["ari"])
    row["seconds_auto"] = round(t_auto - t0, 1)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows to this JSON file")
    parser.add_argument("--sets", help="comma-separated real set names (default: all of real_sets.DEFAULT_CASES)")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seed of the protocols' identity split (and synthetic draws)")
    parser.add_argument("--no-select", action="store_true", help="skip select_clustering (faster)")
    args = parser.parse_args(argv)
    rows = []
    header = (f"{'set':32s}{'rows':>6}{'ids':>5} {'defaults':>9}{'auto':>7} {'(method k1 eps)':22s}{'selected':>9}"
              f"{'grid(auto m.)':>14}{'grid(both)':>11}{'auto-grid':>10}{'largest':>8}")
    print(header)
    def cases():
        if not args.no_real:
            wanted = None if not args.sets else set(args.sets.split(","))
            for p in real_sets.protocols(tuple(c for c in real_sets.DEFAULT_CASES if wanted is None or c[0] in wanted),
                                         seed=args.seed):
                yield p.name, p.clustering("test"), p.clustering("train")
        if not args.no_synthetic:
            for name, make in synthetic_cases():
                yield name, make(2 * args.seed), make(2 * args.seed + 1)

    for name, test, train in cases():
        r = measure(name, test, None if args.no_select else train)
        rows.append(r)
        a = r["auto"]
        print(f"{name:32s}{r['rows']:>6}{r['identities']:>5} {r['defaults']['ari']:9.3f}{a['ari']:7.3f} "
              f"{a['method'][:8]:>9} {a['k1']:>3} {a['eps']:5.3f}   {r['selected']['ari']:9.3f}"
              f"{r['grid_auto_method']:14.3f}{r['grid_both']:11.3f}{a['ari'] - r['grid_auto_method']:10.3f}"
              f"{a['largest']:8.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
