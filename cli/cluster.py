"""``xmrank cluster``: Jaccard distance + DBSCAN/HDBSCAN, labels to a .npy file."""

from __future__ import annotations

import contextlib
import time

import click
import numpy as np

from xmrank.backend import DEVICES, KNN_ENGINES
from xmrank.jaccard.distance import METHODS

from ._features import load_inputs
from ._io import SEED, check_npy_output, check_outputs, fail, user_errors, write_json, write_npy


def _eps(value):
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"expected a positive number or 'auto'; got {value!r}") from None


@contextlib.contextmanager
def _dask_client(knn, scheduler):
    """With --knn dask: a client of the scheduler at ``scheduler``, or of a new local cluster."""
    if knn != "dask":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        fail("--knn dask needs dask.distributed: pip install 'xmrank[dask]'.")
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            fail(f"--scheduler {scheduler}: could not connect ({exc}).")
        with client:
            yield client
        return
    with LocalCluster(processes=True, dashboard_address=None) as local, Client(local) as client:
        yield client


@click.command("cluster")
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--modalities", "-m", type=click.Path(dir_okay=False), help="Per-row modality labels (.npy/.npz).")
@click.option("--cameras", "-c", type=click.Path(dir_okay=False), help="Per-row camera labels (.npy/.npz).")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="Jaccard method; 'auto' is 'modality' when modalities are given, else 'camera' with cameras, else 'vanilla'.")
@click.option("--mode", type=click.Choice(["global", "per-modality", "subset"]), default="global", show_default=True,
              help="global: all rows together; per-modality: each modality alone (vanilla Jaccard), labels unique; "
                   "subset: per-modality with the largest modality clustered on a random subset only (BMIL).")
@click.option("--k1", type=int, default=30, show_default=True, help="Neighbour-list length.")
@click.option("--k2", type=int, default=6, show_default=True, help="Query-expansion length (per modality for 'modality').")
@click.option("--k1-intra", type=int, default=5, show_default=True, help="CA-Jaccard same-camera list length.")
@click.option("--k1-inter", type=int, default=20, show_default=True, help="CA-Jaccard other-camera list length.")
@click.option("--k2-intra", type=int, default=2, show_default=True, help="CA-Jaccard same-camera expansion length.")
@click.option("--k2-inter", type=int, default=4, show_default=True, help="CA-Jaccard other-camera expansion length.")
@click.option("--eps", default="0.6", show_default=True, callback=lambda c, p, v: _eps(v),
              help="DBSCAN radius (0.6 on SYSU-MM01, 0.3 on RegDB), or 'auto' to pick it from the data.")
@click.option("--min-samples", type=int, default=4, show_default=True, help="Rows (self included) that make a core point.")
@click.option("--algorithm", type=click.Choice(["dbscan", "hdbscan"]), default="dbscan", show_default=True)
@click.option("--subset-ratio", type=float, default=0.5, show_default=True, help="Subset share for --mode subset.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed for --mode subset (0 to 2**64 - 1).")
@click.option("--knn", type=click.Choice(KNN_ENGINES), default="auto", show_default=True,
              help="kNN engine. auto: exact, faiss when installed, else blocked numpy. ann: approximate faiss IVF "
                   "search (recall >= 0.97, measured and logged with -v), for hundreds of thousands of rows and more. "
                   "dask: exact search in row blocks on a dask.distributed cluster (--scheduler, else a local one); "
                   "xmrank.distributed.jaccard_distance_dask also sends the Jaccard rows there.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="cuda: kNN and Jaccard on the GPU (needs the gpu extra: cupy, optionally faiss-gpu).")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --knn dask: address of a running dask scheduler (tcp://host:8786); "
                   "without it a local cluster is started.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write one int64 label per row (-1 = noise) to this .npy.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the summary as JSON.")
@user_errors
def cluster_cmd(features, modalities, cameras, method, mode, k1, k2, k1_intra, k1_inter, k2_intra, k2_inter, eps,
                min_samples, algorithm, subset_ratio, seed, knn, device, scheduler, output, json_path):
    """Cluster the rows of FEATURES (.npy, or .npz holding `features` and optionally
    `modalities`/`cameras`) with a k-reciprocal Jaccard distance and DBSCAN.

    \b
    Examples:
      xmrank cluster feats.npy --modalities mods.npy -o labels.npy
      xmrank cluster feats.npy -m mods.npy --method vanilla --eps auto
      xmrank cluster data.npz --mode subset --seed 3 -o stage1_labels.npy
      xmrank -v cluster big.npy -m mods.npy --knn ann -o labels.npy    # 10^5-10^6 rows
      xmrank cluster big.npy -m mods.npy --knn dask --scheduler tcp://10.0.0.5:8786
      xmrank cluster feats.npy -m mods.npy --device cuda
    """
    import xmrank

    check_npy_output(output, "--output")
    check_outputs([("--output", output), ("--json", json_path)],
                  inputs=[("FEATURES", features), ("--modalities", modalities), ("--cameras", cameras)])
    X, mods, cams, _ = load_inputs(features, modalities=modalities, cameras=cameras)
    if mode != "global" and mods is None:
        fail(f"--mode {mode} needs --modalities.")
    if scheduler and knn != "dask":
        fail("--scheduler is only used with --knn dask.")
    t0 = time.perf_counter()
    subsets = None
    common = dict(eps=eps, min_samples=min_samples, algorithm=algorithm, k1=k1, k2=k2, knn=knn, device=device)
    with _dask_client(knn, scheduler):
        if mode == "global":
            labels = xmrank.cluster(X, modalities=mods, cameras=cams, method=method, k1_intra=k1_intra,
                                    k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter, **common)
        elif mode == "per-modality":
            labels = xmrank.cluster_per_modality(X, mods, **common)
        else:
            labels, subsets = xmrank.subset_cluster(X, mods, ratio=subset_ratio, seed=seed, **common)
    elapsed = time.perf_counter() - t0
    summary = xmrank.cluster_summary(labels, mods)
    summary.update(seconds=round(elapsed, 3), mode=mode, method=method)
    if output:
        write_npy(output, labels.astype(np.int64), "--output")
    if json_path:
        write_json(json_path, summary, "--json")
    mixed = f", {summary['mixed_share']:.1%} of clusters mix modalities" if "mixed_share" in summary else ""
    click.echo(
        f"{summary['n_samples']} rows -> {summary['n_clusters']} clusters, {summary['n_noise']} noise "
        f"({summary['noise_share']:.1%}){mixed}; {elapsed:.2f}s"
        + (f"; labels written to {output}" if output else "")
    )
