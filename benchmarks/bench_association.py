"""Association baselines vs the modality-aware Jaccard: ARI, cross-modal pair recall and time.

Run from the repository root::

    python benchmarks/bench_association.py                        # biased sets + CLIP pairs (about a minute)
    python benchmarks/bench_association.py --image-model RUN/model.pt   # + the synthetic image set (torch extra)
    python benchmarks/bench_association.py --image-untrained      # + image features of an untrained network
    python benchmarks/bench_association.py --image-features F.npz --eps-grid   # saved features, best eps per row

Rows (each scored by :func:`xmrank.cluster_scores`, noise as singletons):

- ``per-modality + Hungarian`` / ``+ OT (clusters)`` / ``+ OT (rows)``:
  :func:`xmrank.associate`: vanilla Jaccard + DBSCAN in each modality, then
  :func:`xmrank.match_clusters` with ``method="hungarian"``, ``"ot"``,
  ``"ot-instance"`` (PGM / RPNR / OTLA-style joins);
- ``per-modality + Hungarian + refine``: the same with the tight/loose
  refinement (SpCL's independence and compactness, ``eps_gap`` 0.02);
- ``global, vanilla Jaccard``: :func:`xmrank.cluster` with ``method="vanilla"``;
- ``global, modality-aware Jaccard``: the BMIL distance (``method="modality"``);
- ``global, modality-aware + refine``: :func:`xmrank.cluster_refined`.

Data sets:

- ``biased g``: :func:`xmrank.datasets.make_biased` (50 identities, 8 rows per
  identity and modality, noise 0.3, seed 0) at modality gap ``g``;
  eps 0.6, min_samples 4, k1 30, k2 6 (``xmrank demo``'s settings);
- ``CLIP pairs``: the shipped CLIP ViT-B/16 COCO image/caption features (one
  image and one caption per id); min_samples 1, k1 20, and, for every row
  alike, the eps of the grid 0.05, 0.1, ..., 0.8 with the best ARI (an
  oracle choice: the point is what each method can reach);
- ``images``: the synthetic visible/infrared image set
  (:func:`xmrank.torch.make_synthetic`, default parameters, seed 0) embedded
  by ``--image-model`` (an xmrank ``model.pt``; the README's numbers use the
  smoke preset trained 12 epochs of stage 1 only, ``bench_ablation.py``'s
  M1 row) or by an untrained smoke ResNet-18 (``--image-untrained``);
  un-normalised flip-averaged features as the trainer clusters them; eps
  0.6, min_samples 4, k1 12, k2 3 (the smoke preset).

Times are each row's total over the data sets as a multiple of the
modality-aware Jaccard's, measured in this one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")
warnings.filterwarnings("ignore", message=".*degenerate clustering")  # the eps grids reach them on purpose

ROWS = (
    "per-modality + Hungarian",
    "per-modality + OT (clusters)",
    "per-modality + OT (rows)",
    "per-modality + Hungarian + refine",
    "global, vanilla Jaccard",
    "global, modality-aware Jaccard",
    "global, modality-aware + refine",
)
REFERENCE = "global, modality-aware Jaccard"
CLIP_EPS = tuple(np.round(np.arange(0.05, 0.81, 0.05), 2).tolist())


def run_row(row, X, mods, *, eps, min_samples, k1, k2):
    """Labels of one row of the table."""
    import xmrank

    common = dict(eps=eps, min_samples=min_samples, k1=k1, k2=k2, progress=False)
    if row.startswith("per-modality"):
        method = {"Hungarian": "hungarian", "OT (clusters)": "ot", "OT (rows)": "ot-instance"}[
            row.split(" + ")[1]]
        return xmrank.associate(X, mods, method=method, refine=row.endswith("refine"), **common)
    if row == "global, vanilla Jaccard":
        return xmrank.cluster(X, modalities=mods, method="vanilla", **common)
    if row == "global, modality-aware Jaccard":
        return xmrank.cluster(X, modalities=mods, method="modality", **common)
    return xmrank.cluster_refined(X, modalities=mods, method="modality", **common)


def score(row, X, ids, mods, *, eps_grid, min_samples, k1, k2, rows=ROWS):
    """Scores of ``row`` (the best ARI over ``eps_grid``) and its time at that eps."""
    from xmrank import InputError, cluster_scores

    best = None
    for eps in eps_grid:
        t0 = time.perf_counter()
        try:
            labels = run_row(row, X, mods, eps=eps, min_samples=min_samples, k1=k1, k2=k2)
        except InputError:  # e.g. eps - eps_gap <= 0 for the refined rows
            continue
        dt = time.perf_counter() - t0
        s = cluster_scores(ids, labels, modalities=mods)
        s.update(eps=eps, seconds=dt)
        if best is None or s["ari"] > best["ari"]:
            best = s
    return best


def image_features(model_path, *, root=None, untrained=False):
    """Flip-averaged, un-normalised features of the synthetic set's training images (the trainer's)."""
    import torch

    from xmrank.torch import build_model, extract_features, load_model, make_synthetic, training_records

    if root is None:
        root = os.path.join(tempfile.mkdtemp(prefix="xmrank_assoc_"), "synthetic")
        make_synthetic(root, progress=False)
    records = training_records("synthetic", root)
    if untrained:
        torch.manual_seed(0)
        model = build_model("resnet18", pretrained="none", non_local=(0, 0, 0, 0))
        height, width = 64, 32
    else:
        model, cfg = load_model(model_path, return_config=True)
        height, width = cfg.height, cfg.width
    feats = extract_features(model, records, height=height, width=width, normalize=False, interpolation="bicubic",
                             num_workers=0, progress=False)
    ids = np.array([r.pid for r in records], dtype=np.int64)
    mods = np.array([r.modality for r in records], dtype=np.int64)
    return np.asarray(feats, dtype=np.float32), ids, mods


def datasets(args):
    from xmrank.datasets import load_clip_pairs, make_biased

    out = []
    for gap in args.gaps:
        X, ids, mods, _ = make_biased(n_ids=50, per_id=8, gap=gap, noise=0.3, seed=0)
        out.append((f"biased {gap:g}", X, ids, mods, dict(eps_grid=(0.6,), min_samples=4, k1=30, k2=6)))
    X, ids, mods = load_clip_pairs()
    out.append(("CLIP pairs", X, ids, mods, dict(eps_grid=CLIP_EPS, min_samples=1, k1=20, k2=6)))
    if args.image_features or args.image_model or args.image_untrained:
        t0 = time.perf_counter()
        if args.image_features:
            with np.load(args.image_features) as npz:
                X, ids, mods = npz["features"], npz["ids"], npz["modalities"]
        else:
            X, ids, mods = image_features(args.image_model, root=args.image_root, untrained=args.image_untrained)
            if args.save_image_features:
                np.savez(args.save_image_features, features=X, ids=ids, modalities=mods)
        name = "images (untrained)" if args.image_untrained else "images"
        print(f"[{name}: {X.shape[0]} rows in {time.perf_counter() - t0:.0f}s]", file=sys.stderr)
        out.append((name, X, ids, mods, dict(eps_grid=(0.6,), min_samples=4, k1=12, k2=3)))
    return out


def table(results, names):
    head = "| method | " + " | ".join(names) + " | time (× modality-aware) |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    ref = sum(results[REFERENCE][n]["seconds"] for n in names)
    for row in ROWS:
        cells = []
        for n in names:
            s = results[row][n]
            cells.append(f"{s['ari']:.2f} / {s['cross_modal_pair_recall']:.2f}")
        t = sum(results[row][n]["seconds"] for n in names)
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {t / ref:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", nargs="+", type=float, default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--image-model", default=None, help="an xmrank model.pt to embed the synthetic image set")
    parser.add_argument("--image-untrained", action="store_true", help="embed it with an untrained smoke ResNet-18")
    parser.add_argument("--image-root", default=None, help="the synthetic set (default: generated in a temp folder)")
    parser.add_argument("--save-image-features", default=None, help="keep the image features in this .npz")
    parser.add_argument("--image-features", default=None, help="read them back from such an .npz")
    parser.add_argument("--eps-grid", action="store_true",
                        help="every data set at its best-ARI eps of 0.3, 0.4, ..., 0.8 (CLIP: its own grid)")
    parser.add_argument("--json", default=None, help="also write every score to this file")
    args = parser.parse_args(argv)

    import xmrank

    warm = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    xmrank.cluster(warm, k1=8, progress=False)  # compiles (or loads) the kernels before anything is timed
    sets = datasets(args)
    if args.eps_grid:
        grid = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
        sets = [(n, X, i, m, {**kw, "eps_grid": kw["eps_grid"] if n == "CLIP pairs" else grid})
                for n, X, i, m, kw in sets]
    results = {row: {} for row in ROWS}
    for name, X, ids, mods, kw in sets:
        for row in ROWS:
            results[row][name] = score(row, X, ids, mods, **kw)
        print(f"[{name} done]", file=sys.stderr)
    names = [s[0] for s in sets]
    print("ARI / cross-modal pair recall (noise scored as singletons)\n")
    print(table(results, names))
    for n in names if args.eps_grid else ["CLIP pairs"]:
        print(f"\n{n}: eps with the best ARI per row: "
              + ", ".join(f"{r}: {results[r][n]['eps']:g}" for r in ROWS))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=float)
    return results


if __name__ == "__main__":
    main()
