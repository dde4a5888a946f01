"""``xmrank cluster``: Jaccard distance + DBSCAN/HDBSCAN: labels, summary, cluster contents, scores."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time

import click
import numpy as np

from xmrank._params import ASSOCIATIONS
from xmrank._validation import check_label_values

from ._associate import cluster_associated, describe, parameters
from ._bundle import load_bundle
from ._io import (STDOUT, check_npy_output, check_output, check_outputs, committed, echo_report, fail, user_errors, write_json, write_npy,
                  write_sparse, write_text)
from ._options import aliases, jaccard_device, option, options


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


def _contents_format(path):
    """"csv" or "json" from the --contents file name (``-``: JSON on standard output)."""
    if path is None:
        return None
    if path == STDOUT:
        return "json"
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".json"):
        fail(f"--contents {path}: the file name must end with .csv or .json.")
    return ext[1:]


def _contents_csv(contents) -> str:
    """One line per member: cluster, cluster size, the cluster's modality make-up, row, modality, name."""
    buf = io.StringIO()
    has_mod = any("modalities" in c for c in contents)
    has_name = any("name" in m for c in contents for m in c["members"][:1])
    header = ["cluster", "size"] + (["cluster_modalities"] if has_mod else []) + ["row"] \
        + (["modality"] if has_mod else []) + (["name"] if has_name else [])
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for c in contents:
        makeup = ";".join(f"{k}:{v}" for k, v in c.get("modalities", {}).items())
        for m in c["members"]:
            writer.writerow([c["cluster"], c["size"]] + ([makeup] if has_mod else []) + [m["row"]]
                            + ([m.get("modality", "")] if has_mod else []) + ([m.get("name", "")] if has_name else []))
    return buf.getvalue()


@click.command("cluster")
@click.argument("features", type=click.Path(dir_okay=False))
@aliases
@options("modalities", "cameras")
@option("ids", more="Score the clustering against them (the scores of `xmrank diagnose`).")
@option("names", more="For --contents.")
@option("method")
@click.option("--mode", type=click.Choice(["global", "per-modality", "subset", "associate"]), default="global",
              show_default=True,
              help="global: all rows together; per-modality: each modality alone (vanilla Jaccard), labels unique; "
                   "subset: per-modality with the largest modality clustered on a random subset only (BMIL); "
                   "associate: per-modality, then the clusters joined across modalities (--association).")
@click.option("--association", type=click.Choice(ASSOCIATIONS), default=None,
              help="With --mode associate (default hungarian): hungarian: one-to-one matching of cluster prototypes "
                   "(PGM); ot: optimal transport between clusters, many-to-one (RPNR); ot-instance: each row of the "
                   "other modality sent to the first modality's prototypes by optimal transport (OTLA).")
@click.option("--refine", is_flag=True,
              help="--mode global or associate, DBSCAN: also cluster at eps - --eps-gap and eps + --eps-gap and keep "
                   "only the stable part (SpCL's independence and compactness); dropped rows become noise.")
@option("eps_gap", more="The step of --refine.")
@options("k1", "k2", "k1_intra", "k1_inter", "k2_intra", "k2_inter")
@option("eps", more="The eps chosen is printed and in --json (with k1/k2/method 'auto': 'chosen', each choice with "
                    "its measurement).")
@options("min_samples", "algorithm")
@option("ratio", more="For --mode subset.")
@option("seed", more="For --mode subset.")
@option("knn", more="--knn ann: calibrated, or exact search per modality where that costs less (measured and logged "
                    "with -v). --knn dask: --scheduler, else a local cluster; "
                    "xmrank.distributed.jaccard_distance_dask also sends the Jaccard rows there.")
@option("device")
@option("n_jobs")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --knn dask: address of a running dask scheduler (tcp://host:8786); "
                   "without it a local cluster is started.")
@option("noise", more="With --ids.")
@option("output", more="One int64 label per row (-1 = noise), .npy.")
@option("json", more="The summary: counts, cluster sizes, the scores with --ids, and every setting needed to rerun "
                     "it (resolved method, eps used, k1, k2, min_samples, kNN engine, device, xmrank version).")
@click.option("--contents", "contents_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write each cluster's members (row, modality, name), size and modality make-up: .csv (one line "
                   "per member) or .json (one entry per cluster, largest first; '-': standard output).")
@click.option("--with-noise", is_flag=True, help="List the noise rows in --contents too (as cluster -1).")
@click.option("--save-distance", "distance_path", type=click.Path(dir_okay=False),
              help="Write the sparse Jaccard distance (scipy.sparse.save_npz, .npz; --mode global only). With a "
                   "numeric eps and DBSCAN it holds the pairs within eps (all DBSCAN reads); otherwise every stored pair.")
@option("progress")
@user_errors
def cluster_cmd(features, modalities, cameras, ids, names, method, mode, k1, k2, k1_intra, k1_inter, k2_intra,
                k2_inter, eps, min_samples, algorithm, subset_ratio, seed, knn, device, n_jobs, scheduler, noise, output,
                json_path, contents_path, with_noise, distance_path, progress, association, refine, eps_gap, spellings):
    """Cluster the rows of FEATURES with a k-reciprocal Jaccard distance and DBSCAN.

    FEATURES is a .npy array, or a bundle holding `features` and optionally
    `modalities`, `cameras`, `ids` and `names` (the array names every command
    reads: `features` or `X`, `feats`, `embeddings`; `modalities` or `mods`;
    `cameras` or `cams`, `camids`; `ids` or `labels`, `pids`; `names` or
    `paths`): .npz, .pt/.pth (torch, read with weights_only), .csv/.tsv (a
    header names the label columns; the other columns are the features),
    .h5/.hdf5 (needs h5py) or .parquet (needs pyarrow; `pip install
    'xmrank[io]'`). The options below win over the bundled arrays.

    \b
    Examples:
      xmrank cluster feats.npy --modalities mods.npy -o labels.npy
      xmrank cluster feats.npy -m mods.npy --method vanilla --eps auto --json -
      xmrank cluster data.npz --ids ids.npy --contents clusters.csv
      xmrank cluster data.npz --mode subset --seed 3 -o stage1_labels.npy
      xmrank cluster data.npz --mode associate --association ot --refine -o labels.npy
      xmrank -v cluster big.npy -m mods.npy --knn ann -o labels.npy    # 10^5-10^6 rows
      xmrank cluster big.npy -m mods.npy --knn dask --scheduler tcp://10.0.0.5:8786
      xmrank cluster feats.pt -m mods.npy --device cuda:1 --save-distance D.npz
    """
    import xmrank

    check_npy_output(output, "--output")
    contents_format = _contents_format(contents_path)
    if distance_path is not None:
        check_output(distance_path, "--save-distance", suffix=".npz")
    ids_opt = spellings["ids"]
    check_outputs([("--output", output), ("--json", json_path), ("--contents", contents_path),
                   ("--save-distance", distance_path)],
                  inputs=[("FEATURES", features), ("--modalities", modalities), ("--cameras", cameras),
                          (ids_opt, ids), ("--names", names)],
                  stdout=("--json", "--contents"))
    if mode != "global" and distance_path is not None:
        fail(f"--save-distance needs --mode global: --mode {mode} computes one distance per modality.")
    if scheduler and knn != "dask":
        fail("--scheduler is only used with --knn dask.")
    if association is not None and mode != "associate":
        fail("--association is only used with --mode associate.")
    if refine and mode not in ("global", "associate"):
        fail(f"--refine needs --mode global or associate; got --mode {mode}.")
    if refine and algorithm != "dbscan":
        fail("--refine needs --algorithm dbscan: it compares clusterings at three radii.")
    if refine and distance_path is not None:
        fail("--save-distance cannot be combined with --refine.")
    arrays = load_bundle(features, modalities=modalities, cameras=cameras, ids=ids, names=names, spellings=spellings)
    X, mods, cams = arrays["features"], arrays.get("modalities"), arrays.get("cameras")
    id_labels, row_names = arrays.get("ids"), arrays.get("names")
    if mode != "global" and mods is None:
        fail(f"--mode {mode} needs --modalities.")
    if row_names is not None and (row_names.ndim != 1 or row_names.shape[0] != len(X)):
        fail(f"--names must hold one name per row of FEATURES ({len(X)}); got shape {row_names.shape}.")
    if id_labels is not None:  # checked before clustering: the scores read them only at the end
        check_label_values(id_labels, f"{ids_opt} (identities)", len(X))
    device = jaccard_device(device)
    t0 = time.perf_counter()
    subsets = D = None
    extra = {}
    common = dict(eps=eps, min_samples=min_samples, algorithm=algorithm, k1=k1, k2=k2, knn=knn, device=device,
                  n_jobs=n_jobs, progress=progress, return_info=True)
    with _dask_client(knn, scheduler):
        if mode == "associate" or refine:
            labels_out, info, extra = cluster_associated(
                X, mods, cams, mode=mode, association=association or "hungarian", refine=refine, eps_gap=eps_gap,
                method=method, camera_lengths=dict(k1_intra=k1_intra, k1_inter=k1_inter, k2_intra=k2_intra,
                                                   k2_inter=k2_inter), common=common)
        elif mode == "global":
            result = xmrank.cluster(X, modalities=mods, cameras=cams, method=method, k1_intra=k1_intra,
                                    k1_inter=k1_inter, k2_intra=k2_intra, k2_inter=k2_inter,
                                    return_distance=distance_path is not None, **common)
            labels_out, info = result[0], result[-1]
            D = result[1] if distance_path is not None else None
        elif mode == "per-modality":
            labels_out, info = xmrank.cluster_per_modality(X, mods, **common)
        else:
            labels_out, subsets, info = xmrank.subset_cluster(X, mods, ratio=subset_ratio, seed=seed, **common)
    elapsed = time.perf_counter() - t0
    summary = xmrank.cluster_summary(labels_out, mods)
    scores = None
    if id_labels is not None:
        from xmrank.diagnostics import cluster_scores

        scores = cluster_scores(id_labels, labels_out, modalities=mods, noise=noise)
        summary["scores"] = scores
    summary["seconds"] = round(elapsed, 3)
    summary["parameters"] = _parameters(info, mode=mode, requested_method=method, subset_ratio=subset_ratio,
                                        seed=seed, scheduler=scheduler)
    summary["parameters"].update(parameters(mode, association or "hungarian", refine, eps_gap))
    summary.update(extra)
    given = {"modalities": modalities, "cameras": cameras, "ids": ids, "names": names}
    summary["inputs"] = {"features": features, **given,
                         "from_features_file": [k for k, v in given.items() if v is None and arrays.get(k) is not None]}
    summary["xmrank_version"] = xmrank.__version__
    summary["warnings"] = _warnings(info)
    summary["chosen"] = _chosen(info)
    with committed():  # every output replaces its file, or (one fails) none does
        if output:
            write_npy(output, labels_out.astype(np.int64), "--output")
        if D is not None:
            write_sparse(distance_path, D, "--save-distance")
        if contents_path:
            from xmrank.clustering import cluster_contents

            contents = cluster_contents(labels_out, mods, row_names, include_noise=with_noise)
            if contents_format == "csv":
                write_text(contents_path, _contents_csv(contents), "--contents")
            else:
                write_json(contents_path, contents, "--contents")
        if json_path:
            write_json(json_path, summary, "--json")
    mixed = f", {summary['mixed_share']:.1%} of clusters mix modalities" if "mixed_share" in summary else ""
    eps_used = info.get("eps")
    eps_text = "".join(f"; {name}=auto chose {info[name]}" for name in ("k1", "k2")
                       if info.get(f"{name}_requested") == "auto" and info.get(name) is not None)
    if info.get("method_requested") == "auto" and "method" in info.get("chosen", {}):
        eps_text = f"; method=auto chose {info['method']}" + eps_text
    if eps == "auto" and eps_used is not None:
        eps_text += ("; eps=auto chose " + (f"{eps_used:.3f}" if not isinstance(eps_used, dict) else
                                           ", ".join(f"{k}: {v:.3f}" for k, v in eps_used.items())))
    score_text = (f"; ARI {scores['ari']:.3f}, NMI {scores['nmi']:.3f}, pairwise F {scores['pairwise_f1']:.3f}"
                  if scores is not None else "")
    echo_report(
        f"{summary['n_samples']} rows -> {summary['n_clusters']} clusters, {summary['n_noise']} noise "
        f"({summary['noise_share']:.1%}){mixed}{eps_text}{score_text}{describe(extra)}; {elapsed:.2f}s"
        + (f"; labels written to {output}" if output else ""),
        json_path, contents_path,
    )


def _parameters(info, *, mode, requested_method, subset_ratio, seed, scheduler):
    """Every setting of the run, resolved (the method and eps used, the kNN engine that ran)."""
    keep = ("method", "algorithm", "eps", "eps_requested", "min_samples", "k1", "k1_requested", "k2", "k2_requested",
            "k1_intra", "k1_inter", "k2_intra", "k2_inter", "knn", "knn_requested", "device")
    out = {"mode": mode, "method_requested": requested_method}
    out.update({k: info[k] for k in keep if k in info})
    if "auto_eps" in info:
        out["auto_eps"] = info["auto_eps"]
    if "per_modality" in info and info.get("eps_requested") == "auto":
        out["auto_eps"] = {m: i.get("auto_eps") for m, i in info["per_modality"].items()}
    if mode == "subset":
        out.update(subset_ratio=subset_ratio, seed=seed, subset_modality=info.get("subset_modality"))
    if scheduler:
        out["scheduler"] = scheduler
    return out


def _chosen(info):
    """What each "auto" setting chose and the measurement behind it (per modality with --mode per-modality)."""
    if "per_modality" in info:
        return {m: i.get("chosen", {}) for m, i in info["per_modality"].items()}
    return info.get("chosen", {})


def _warnings(info):
    if "per_modality" in info:
        return [i["warning"] for i in info["per_modality"].values() if i.get("warning")]
    return [info["warning"]] if info.get("warning") else []
