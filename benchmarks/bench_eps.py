"""How close eps="auto" lands to the best eps of a sweep (ARI against identities), on real and synthetic sets.

    python benchmarks/bench_eps.py            # the table below (about a minute on 2 cores)
    python benchmarks/bench_eps.py --curves   # also the criterion and the ARI at every eps

Data sets:

- CLIP COCO pairs: the shipped CLIP ViT-B/16 features of 500 COCO images and
  their 500 captions (xmrank.datasets.load_clip_pairs); an identity is one image
  and its caption (two rows), with the default settings (k1=30, min_samples=4,
  where no cluster of two rows can form) and with settings for pairs (k1=4,
  k2=1, min_samples=2).
- digits two-view: a real two-view set built from scikit-learn's bundled
  digits (no download): 1,000 8x8 images (100 per class), each in two views,
  its raw pixels and its blurred square-root pixels (a different feature
  transform, so a modality gap: 99% of each row's 20 nearest neighbours are
  of its own view); 10 classes, 2,000 rows.
- synthetic: xmrank.datasets.make_biased, 60 identities x 8 rows x 2 modalities,
  modality gaps 0.5, 1.0, 1.5.

Columns: the best eps of a 0.025-step sweep (0.05-0.975) and its ARI, the eps
eps="auto" chose and its ARI, the gap (best ARI minus auto's ARI), and, for
comparison, the ARI of the previous rule (a jump of the sorted k-distance
curve) and of the papers' fixed eps=0.6.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

import xmrank
from xmrank.clustering import auto_eps, kth_neighbor_distance
from xmrank.datasets import load_clip_pairs, make_biased

SWEEP = np.round(np.arange(0.05, 1.0, 0.025), 3)


def digits_two_view(per_class: int = 100, seed: int = 0):
    """1,000 digits (``per_class`` per class) in two views: raw pixels, and blurred square-root pixels."""
    from scipy.ndimage import gaussian_filter
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, target = digits.images.astype(np.float64), digits.target
    rng = np.random.default_rng(seed)
    pick = np.sort(np.concatenate([rng.choice(np.flatnonzero(target == c), per_class, replace=False)
                                   for c in range(10)]))
    raw = images[pick].reshape(len(pick), -1)
    blurred = np.stack([gaussian_filter(im, 1.0) for im in images[pick]]).reshape(len(pick), -1) ** 0.5
    X = np.concatenate([raw, blurred])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = np.concatenate([target[pick], target[pick]]).astype(np.int64)
    return X.astype(np.float32), ids, np.repeat(np.array([0, 1], dtype=np.int64), len(pick))


def previous_rule(D, min_samples):
    """The eps='auto' of xmrank 0.1: the value after the largest jump of the sorted k-distances' upper half."""
    kd = np.sort(kth_neighbor_distance(D, min_samples))
    kd = kd[kd < 1.0]
    floor = float(np.quantile(kd, 0.95))
    upper = kd[kd >= np.quantile(kd, 0.5)]
    eps = floor
    if upper.size > 1:
        jump = upper[int(np.argmax(np.diff(upper))) + 1]
        if floor < jump < 0.9:
            eps = float(jump)
    return float(np.clip(eps, 1e-3, 0.999))


def row(name, X, ids, mods, *, method, k1=30, k2=6, min_samples=4, curves=False):
    D = xmrank.jaccard_distance(X, modalities=mods, method=method, k1=k1, k2=k2, progress=False)

    def ari(eps):
        return adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=eps, min_samples=min_samples))

    scores = np.array([ari(e) for e in SWEEP])
    best = int(np.argmax(scores))
    t0 = time.perf_counter()
    chosen, crit = auto_eps(D, min_samples=min_samples, return_scores=True)
    seconds = time.perf_counter() - t0
    a = ari(chosen)
    labels = xmrank.cluster_distance(D, eps=chosen, min_samples=min_samples)
    ok = labels >= 0
    largest = np.bincount(labels[ok]).max() / labels.size if ok.any() else 0.0
    settings = f"{method}, k1={k1}, ms={min_samples}"
    print(f"| {name} | {settings} | {SWEEP[best]:.3f} | {scores[best]:.3f} | {chosen:.3f} | {a:.3f} | "
          f"{scores[best] - a:.3f} | {largest:.0%} | {ari(previous_rule(D, min_samples)):.3f} | {ari(0.6):.3f} | "
          f"{seconds:.2f} |", flush=True)
    if curves:
        for i, e in enumerate(crit["eps"]):
            print(f"|   | eps {e:.3f} | ARI {ari(e):.3f} | score {crit['score'][i]:.3f} | modularity "
                  f"{crit['modularity'][i]:.3f} | silhouette {crit['silhouette'][i]:.3f} | clusters "
                  f"{crit['n_clusters'][i]} | noise {crit['noise_share'][i]:.2f} |")
    return scores[best] - a


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", action="store_true", help="print the criterion and the ARI at every eps")
    args = parser.parse_args()
    print("| data | settings | best eps (sweep) | ARI at best | eps='auto' | ARI at auto | gap | largest cluster "
          "at auto | ARI, previous auto | ARI at 0.6 | auto_eps s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    gaps = {"real": [], "synthetic": []}
    X, ids, mods = load_clip_pairs()
    gaps["real"].append(row("CLIP COCO pairs", X, ids, mods, method="modality", curves=args.curves))
    gaps["real"].append(row("CLIP COCO pairs", X, ids, mods, method="modality", k1=4, k2=1, min_samples=2,
                            curves=args.curves))
    X, ids, mods = digits_two_view()
    for method in ("modality", "vanilla"):
        gaps["real"].append(row("digits two-view (10 classes, 2,000 rows)", X, ids, mods, method=method,
                                curves=args.curves))
    for gap in (0.5, 1.0, 1.5):
        X, ids, mods, _ = make_biased(n_ids=60, per_id=8, gap=gap, seed=0)
        for method in ("modality", "vanilla"):
            gaps["synthetic"].append(row(f"synthetic gap {gap}", X, ids, mods, method=method, curves=args.curves))
    for kind, values in gaps.items():
        print(f"\nmean gap to the best eps, {kind} sets: {np.mean(values):.3f} (max {np.max(values):.3f})")


if __name__ == "__main__":
    main()
