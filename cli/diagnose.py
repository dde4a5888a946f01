"""``xmrank diagnose``: measure modality bias and score clusterings against identities."""

from __future__ import annotations

import os

import click

from ._bundle import BUNDLE_HELP, load_bundle
from ._io import atomic_path, check_outputs, committed, echo_report, fail, user_errors, write_json
from ._options import aliases, option, options


def _check_plot_format(path):
    if path is None:
        return
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        fail("--plot needs matplotlib: pip install 'xmrank[plot]'")
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext not in formats:
        fail(f"--plot: unknown image format {ext or '(none)'!r} of {path}; use one of {', '.join(sorted(formats))}.")


def _fmt(x, spec=".3f"):
    return "n/a" if x is None else format(x, spec)


def format_report(report) -> str:
    """A short text summary of ``diagnose``'s report."""
    mk = report["neighbor_makeup"]
    lines = [
        f"{report['n_samples']} rows, {report['n_features']} features, modalities "
        + ", ".join(f"{k}: {v}" for k, v in report["modality_counts"].items()),
        "",
        f"neighbour make-up: cross-modal share of each row's k1={mk['k1']} neighbours (mean)",
        f"  plain kNN lists       {_fmt(mk['knn']['cross_modal_share_mean'])}"
        f"   (rows with none: {_fmt(mk['knn']['rows_without_cross_modal_neighbour'])})",
        f"  modality-aware lists  {_fmt(mk['modality']['cross_modal_share_mean'])}",
        f"  random neighbours     {_fmt(mk['uniform_cross_modal_share'])}",
        "",
        f"{'distance':<13}{'intra mean':>11}{'inter mean':>11}{'gap':>8}{'overlap':>9}{'intra <1':>10}{'inter <1':>10}",
    ]
    for name, s in report["distances"].items():
        below = [_fmt(s.get(f"{k}_modality_share_below_one"), ".2%") if name != "original" else "-"
                 for k in ("intra", "inter")]
        lines.append(f"{name:<13}{_fmt(s['intra_modality_mean']):>11}{_fmt(s['inter_modality_mean']):>11}"
                     f"{_fmt(s['inter_minus_intra']):>8}{_fmt(s['histogram_overlap']):>9}{below[0]:>10}{below[1]:>10}")
    if "clustering" in report:
        noise = report["parameters"]["noise"]
        width = 19 if any("k1" in c for c in report["clustering"].values()) else 13
        lines += ["", f"clustering (DBSCAN, min_samples={report['parameters']['min_samples']}, noise scored as {noise})",
                  f"{'method':<{width}}{'eps':>6}{'ARI':>7}{'NMI':>7}{'pair F':>8}{'clusters/ids':>14}{'noise':>7}"
                  f"{'mixed':>7}{'xm recall':>10}"]
        for name, s in report["clustering"].items():
            if "k1" in s:
                name = f"{name} k1={s['k1']}"
            lines.append(
                f"{name:<{width}}{_fmt(s['eps'], '.2f' if abs(s['eps'] or 0) < 1000 else '.3g'):>6}{_fmt(s['ari']):>7}"
                f"{_fmt(s['nmi']):>7}{_fmt(s['pairwise_f1']):>8}"
                f"{s['n_clusters']:>7}/{s['n_identities']:<6}{_fmt(s['noise_share'], '.2f'):>7}"
                f"{_fmt(s['mixed_modality_cluster_share'], '.2f'):>7}{_fmt(s['cross_modal_pair_recall']):>10}"
            )
    return "\n".join(lines)


@click.command("diagnose", help=f"""Measure modality bias: neighbour make-up, distance histograms, cluster scores.

FEATURES is a .npy array (n_rows x dim, L2-normalised rows) or a bundle
holding 'features' and optionally 'modalities', 'ids' and 'cameras' (the
array names every command reads: {BUNDLE_HELP}): .npz, .pt/.pth (torch),
.csv/.tsv (a header names the label columns), .h5 (h5py) or .parquet
(pyarrow); the options below override the bundle's arrays. Each per-row
array is a file of n_rows labels (.npy, .csv, ..., or PATH:KEY).

Reports (1) the share of cross-modal rows among each row's k1 neighbours, for
plain kNN lists and for the modality-aware lists; (2) intra- vs
inter-modality distance histograms for the original distance 2 - 2 x.y and
each Jaccard method (mean of each, their gap, the histograms' overlap and,
for Jaccard, the share of pairs closer than 1); (3) with --ids, DBSCAN
on each Jaccard method scored against the identities: ARI, NMI, pairwise
precision/recall/F, clusters vs identities, noise share, share of clusters
mixing modalities and cross-modal pair recall (same-identity pairs of
different modalities that end up in one cluster).

Noise (-1) is scored as singletons by default (each noise row its own
cluster: DBSCAN's noise belongs with nobody); --noise cluster scores all
noise rows as one cluster, as scikit-learn's ARI reads -1.

Example:

\b
  xmrank diagnose feats.npy --modalities mods.npy --ids ids.npy \\
      --plot bias.png --json bias.json
""")
@click.argument("features", type=click.Path(dir_okay=False))
@aliases
@option("modalities", more="At least two distinct values.")
@option("ids", more="Adds the clustering scores.")
@option("cameras", more="Adds the camera-aware Jaccard.")
@option("methods", more="Default: vanilla, modality-qe, modality, plus camera with --cameras.")
@option("k1", more="'auto' is chosen per method, as `xmrank cluster --k1 auto` chooses it (the choice and its "
                   "measurement in --json, 'chosen').")
@option("k2")
@option("eps", more="The DBSCAN radius of the scores ('auto': chosen per method).")
@options("min_samples", "noise", "bins", "max_pairs", "knn")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Draw the make-up and histograms into this image (.png, .pdf, .svg; needs matplotlib).")
@option("json", more="The full report (numbers and histograms).")
@options("n_jobs", "progress")
@user_errors
def diagnose_cmd(features, modalities, ids, cameras, methods, k1, k2, eps, min_samples, noise, bins, max_pairs,
                 knn, plot_path, json_path, n_jobs, progress, spellings):
    from xmrank.diagnostics import diagnose

    check_outputs([("--plot", plot_path), ("--json", json_path)],
                  inputs=[("FEATURES", features), ("--modalities", modalities), (spellings["ids"], ids),
                          ("--cameras", cameras)],
                  stdout=("--json",))
    _check_plot_format(plot_path)
    arrays = load_bundle(features, modalities=modalities, ids=ids, cameras=cameras, spellings=spellings)
    if arrays.get("modalities") is None:
        fail("--modalities is required: one modality label per row (or a 'modalities' array in the FEATURES file).")
    report = diagnose(
        arrays["features"], arrays["modalities"], labels=arrays.get("ids"), cameras=arrays.get("cameras"),
        k1=k1, k2=k2, eps=eps, min_samples=min_samples, methods=methods, noise=noise,
        bins=bins, max_pairs=max_pairs, knn=knn, n_jobs=n_jobs, progress=progress,
    )
    echo_report(format_report(report), json_path)
    with committed():  # both outputs replace their files, or (one fails) neither does
        if plot_path:
            from xmrank.diagnostics import plot_diagnosis

            with atomic_path(plot_path, "--plot") as tmp:
                try:
                    plot_diagnosis(report, tmp)
                except ValueError as exc:
                    fail(f"--plot: cannot write {plot_path}: {exc}")
        if json_path:
            write_json(json_path, report, "--json")
