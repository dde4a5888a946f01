"""How close eps="auto" lands to the best eps of a sweep (ARI against identities).

    python benchmarks/bench_eps.py

Data: synthetic biased sets of three modality gaps (xmrank.data.make_biased) and
the shared CLIP image/caption features (one image and one caption per identity,
so clusters have two rows: min_samples=2 there).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

import xmrank
from xmrank.clustering import auto_eps
from xmrank.data import load_clip_pairs, make_biased


def row(name, X, ids, mods, *, min_samples, k1, k2, method="modality"):
    D = xmrank.jaccard_distance(X, modalities=mods, method=method, k1=k1, k2=k2, progress=False)
    grid = np.round(np.arange(0.05, 1.0, 0.025), 3)
    scores = np.array([adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=e, min_samples=min_samples)) for e in grid])
    best = int(np.argmax(scores))
    e = auto_eps(D, min_samples=min_samples)
    a = adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=e, min_samples=min_samples))
    fixed = adjusted_rand_score(ids, xmrank.cluster_distance(D, eps=0.6, min_samples=min_samples))
    print(f"| {name} | {method} | {grid[best]:.3f} | {scores[best]:.3f} | {e:.3f} | {a:.3f} | {fixed:.3f} |")


def main():
    print("| data | method | best eps (sweep) | ARI at best | eps='auto' | ARI at auto | ARI at 0.6 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for gap in (0.5, 1.0, 1.5):
        X, ids, mods, _ = make_biased(n_ids=60, per_id=8, gap=gap, seed=0)
        row(f"synthetic gap {gap}", X, ids, mods, min_samples=4, k1=30, k2=6)
        row(f"synthetic gap {gap}", X, ids, mods, min_samples=4, k1=30, k2=6, method="vanilla")
    X, ids, mods = load_clip_pairs()
    row("CLIP COCO pairs", X, ids, mods, min_samples=2, k1=4, k2=1)


if __name__ == "__main__":
    main()
