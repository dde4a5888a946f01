"""The paper's ablation through xmrank's trainer, on the synthetic image set, on the CPU.

Run from the repository root (needs the ``torch`` extra; about 5 minutes a run
on 2 cores, 8 runs by default)::

    python benchmarks/bench_ablation.py                    # M1 M2 M3 M6, seeds 0 1
    python benchmarks/bench_ablation.py --rows M2 M3 --seeds 0 --jobs 2

Rows (the ``smoke`` preset; everything else equal):

- **M1** intra-modality only: stage 1 for all 12 epochs, no global clustering.
- **M2** + global clustering with the *vanilla* k-reciprocal Jaccard
  (no subset clustering, one prototype per global cluster).
- **M3** + global clustering with the *modality-aware* Jaccard
  (no subset clustering, one prototype per global cluster).
- **M6** the full method: modality-aware global clustering, subset
  clustering of the visible rows and split-and-contrast prototypes.
- **H**, **OT** (``--rows H OT``, not run by default): M6 with the stage-2
  global labels made by Hungarian or optimal-transport matching of
  per-modality clusters instead (:mod:`xmrank.association`).

Prints, per row, the final test mAP / Rank-1 (mean and each seed), and per
stage-2 epoch the number of global clusters, their ARI against the true
training identities and the share of clusters holding both modalities (mean
over seeds). Identities and test scores are never used for training.
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

ROWS = {
    "M1": dict(epochs_stage1=12, epochs_stage2=0),
    "M2": dict(global_method="vanilla", subset_ratio=1.0, split_contrast=False),
    "M3": dict(global_method="modality", subset_ratio=1.0, split_contrast=False),
    "M6": dict(global_method="modality", subset_ratio=0.5, split_contrast=True),
    # association baselines in place of the global clustering (not run by default: --rows H OT)
    "H": dict(global_labels="hungarian"),
    "OT": dict(global_labels="ot"),
}
DEFAULT_ROWS = ("M1", "M2", "M3", "M6")
DESCRIPTION = {
    "M1": "intra-modality only",
    "M2": "+ global, vanilla Jaccard",
    "M3": "+ global, modality-aware Jaccard",
    "M6": "full (subset + split-and-contrast)",
    "H": "M6 with Hungarian-matched global labels",
    "OT": "M6 with OT-matched global labels",
}


def run_one(row, seed, data_root, out, threads):
    """Train one row in this process; return its metrics."""
    from xmrank.torch.config import apply_overrides, preset_config
    from xmrank.torch.pipeline import train

    cfg = apply_overrides(preset_config("smoke"), {**ROWS[row], "seed": seed, "threads": threads})
    return train(cfg, dataset="synthetic", root=data_root, output=out, progress=False)


def summarise(metrics):
    final = metrics["final"] or metrics["stage1"]
    epochs = [e for e in metrics["epochs"] if e["stage"] == 2]
    return {
        "mAP": final["mAP"],
        "rank1": final["rank1"],
        "untrained_mAP": metrics["untrained"]["mAP"],
        "global": [
            {"clusters": e["clusters"]["global"]["n_clusters"], "ari": e["clusters"]["global"].get("ari"),
             "mixed": e["clusters"]["global"].get("mixed_share")}
            for e in epochs
        ],
        "time_s": metrics.get("time_s"),
    }


def _fmt(x, scale=100.0, digits=1):
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{scale * x:.{digits}f}"


def print_tables(results, seeds):
    print()
    print("Final test scores on the synthetic set (smoke preset; mean over seeds, then each seed)")
    print(f"{'row':<4} {'what':<36} {'mAP %':>7} {'Rank-1 %':>9}   per seed (mAP / Rank-1)")
    print("-" * 96)
    for row in ROWS:
        runs = [results[(row, s)] for s in seeds if (row, s) in results]
        if not runs:
            continue
        m = np.mean([r["mAP"] for r in runs])
        r1 = np.mean([r["rank1"] for r in runs])
        each = ", ".join(f"{_fmt(r['mAP'])} / {_fmt(r['rank1'])}" for r in runs)
        print(f"{row:<4} {DESCRIPTION[row]:<36} {_fmt(m):>7} {_fmt(r1):>9}   {each}")
    print()
    print("Stage-2 global clustering per epoch (mean over seeds): clusters / ARI vs identities / mixed-modality share %")
    n_ep = max((len(r["global"]) for r in results.values()), default=0)
    print(f"{'row':<4} " + " ".join(f"{'ep ' + str(i + 1):>17}" for i in range(n_ep)))
    for row in ROWS:
        runs = [results[(row, s)] for s in seeds if (row, s) in results]
        if not runs or not runs[0]["global"]:
            continue
        cells = []
        for i in range(n_ep):
            eps = [r["global"][i] for r in runs if len(r["global"]) > i]
            c = np.mean([e["clusters"] for e in eps])
            a = np.mean([e["ari"] for e in eps if e["ari"] is not None]) if eps else None
            mx = np.mean([e["mixed"] for e in eps if e["mixed"] is not None]) if eps else None
            cells.append(f"{c:4.0f}/{a:5.2f}/{_fmt(mx, digits=0):>4}")
        print(f"{row:<4} " + " ".join(f"{c:>17}" for c in cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each with cores/jobs threads)")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the summaries to this file")
    parser.add_argument("--one", nargs=3, metavar=("ROW", "SEED", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:  # a worker process: one run, its summary as JSON on the last line
        row, seed, out = args.one
        metrics = run_one(row, int(seed), args.data, out, args.threads)
        print(json.dumps(summarise(metrics)))
        return

    from xmrank.torch.config import preset_config
    from xmrank.datasets import make_synthetic

    base = args.out or tempfile.mkdtemp(prefix="xmrank_ablation_")
    data_root = os.path.join(base, "synthetic")
    if not os.path.isdir(data_root):
        cfg = preset_config("smoke")
        make_synthetic(data_root, n_train_ids=cfg.synthetic_train_ids, n_test_ids=cfg.synthetic_test_ids,
                       images_per_camera=cfg.synthetic_images_per_camera, height=cfg.synthetic_height,
                       width=cfg.synthetic_width, seed=0, progress=False)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    queue = [(row, seed) for seed in args.seeds for row in args.rows]
    running, results = [], {}
    t0 = time.perf_counter()
    while queue or running:
        while queue and len(running) < args.jobs:
            row, seed = queue.pop(0)
            out = os.path.join(base, f"{row}_seed{seed}")
            cmd = [sys.executable, os.path.abspath(__file__), "--one", row, str(seed), out, "--data", data_root,
                   "--threads", str(threads)]
            env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
            running.append(((row, seed), subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                          text=True, env=env)))
        time.sleep(1)
        for item in list(running):
            key, proc = item
            if proc.poll() is None:
                continue
            running.remove(item)
            text = proc.stdout.read().strip().splitlines()
            if proc.returncode != 0 or not text:
                print(f"{key[0]} seed {key[1]} failed (exit {proc.returncode})", flush=True)
                continue
            results[key] = json.loads(text[-1])
            print(f"{key[0]} seed {key[1]}: mAP {_fmt(results[key]['mAP'])}%, Rank-1 {_fmt(results[key]['rank1'])}% "
                  f"({results[key]['time_s']:.0f} s; {time.perf_counter() - t0:.0f} s elapsed)", flush=True)
    print_tables(results, args.seeds)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({f"{r}_seed{s}": v for (r, s), v in results.items()}, fh, indent=2)


if __name__ == "__main__":
    main()
