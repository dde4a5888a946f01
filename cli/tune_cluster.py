"""``xmrank tune cluster``: choose the clustering's method, k1 and eps on labelled data (xmrank.select_clustering).

The command is attached to the ``tune`` group of ``cli/tune.py`` (it is not
registered on its own).
"""

from __future__ import annotations

import click

from ._bundle import load_bundle
from ._io import check_outputs, echo_report, fail, user_errors, write_json
from ._options import declared, jobs_option

__all__ = ["tune_cluster", "format_table"]


def _list(text, name, convert):
    """A comma-separated option value, each item converted (a bad one fails with one line)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        fail(f"{name} must list at least one value.")
    out = []
    for t in items:
        try:
            out.append(convert(t))
        except (ValueError, TypeError):
            fail(f"{name}: {t!r} is not a valid value.")
    return out


def _eps_item(text):
    return "auto" if text.lower() == "auto" else float(text)


def format_table(table, chosen, limit: int = 15) -> str:
    """The best settings of ``select_clustering``'s table, one line each, and the chosen one."""
    lines = [f"{'method':<10}{'k1':>4}{'k2':>4}{'eps':>7}{'ARI mean':>10}{'std':>7}{'largest':>9}{'noise':>7}"]
    for r in table[:limit]:
        eps = r["eps"] if isinstance(r["eps"], str) else f"{r['eps']:.3g}"
        lines.append(f"{r['method']:<10}{r['k1']:>4}{r['k2']:>4}{eps:>7}{r['ari_mean']:>10.3f}{r['ari_std']:>7.3f}"
                     f"{r['largest_share_mean']:>9.2f}{r['noise_share_mean']:>7.2f}")
    if len(table) > limit:
        lines.append(f"... {len(table) - limit} more settings (all in --json)")
    eps = chosen["eps"]
    lines.append(f"chosen: --method {chosen['method']} --k1 {chosen['k1']} --k2 {chosen['k2']} --eps "
                 f"{eps if isinstance(eps, str) else format(eps, '.3g')} --min-samples {chosen['min_samples']}")
    return "\n".join(lines)


@click.command("cluster")
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--modalities", "-m", type=click.Path(dir_okay=False),
              help="Per-row modality labels (a file of one array: .npy, .npz, .csv, .pt, ...; or PATH:KEY).")
@click.option("--cameras", "-c", type=click.Path(dir_okay=False), help="Per-row camera labels (as --modalities).")
@click.option("--labels", "--ids", "labels", type=click.Path(dir_okay=False),
              help="Per-row identities of the labelled (training) rows; or an 'ids' array in FEATURES.")
@click.option("--methods", help="Comma-separated Jaccard methods to try (default: vanilla,modality with two or more "
                                "modalities, else vanilla).")
@click.option("--k1s", default="5,10,20,30", show_default=True, help="Comma-separated k1 values to try (k2 = ceil(k1/5)).")
@click.option("--eps", "eps_values", help="Comma-separated eps values to try, 'auto' allowed (default: 0.1 to 0.9 "
                                          "by 0.05, and auto).")
@click.option("--splits", "n_splits", type=int, default=3, show_default=True,
              help="Identity folds of the cross-validation, >= 2.")
@declared("seed", help="Seed of the identity folds (0 to 2**64 - 1).")
@declared("min_samples")
@click.option("--knn", default="auto", show_default=True, help="Exact kNN engine: auto, faiss or numpy.")
@jobs_option("the Jaccard distances")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the chosen keyword arguments ('chosen') and the whole table ('table') as JSON "
                   "('-': standard output).")
@user_errors
def tune_cluster(features, modalities, cameras, labels, methods, k1s, eps_values, n_splits, seed, min_samples, knn,
                 n_jobs, json_path):
    """Choose --method, --k1 and --eps for `xmrank cluster` on labelled rows.

    Cross-validation over identities: the identities of FEATURES are dealt
    into --splits folds, each split clusters all identities but one fold's,
    and every method x k1 x eps is scored by ARI against the identities
    (noise rows as singletons). Prints the best settings and the options to
    pass to `xmrank cluster` on the unlabelled (test) rows. Run it on the
    labelled training rows only, never on the rows you will report.

    \b
    Examples:
      xmrank tune cluster train.npz --json chosen.json
      xmrank tune cluster train_feats.npy -m train_mods.npy --labels train_ids.npy --k1s 10,20 --eps 0.5,0.6,auto
    """
    import xmrank

    check_outputs([("--json", json_path)],
                  inputs=[("FEATURES", features), ("--modalities", modalities), ("--cameras", cameras),
                          ("--labels", labels)], stdout=("--json",))
    arrays = load_bundle(features, modalities=modalities, cameras=cameras, ids=labels)
    if arrays.get("ids") is None:
        fail("--labels is required: one identity per row (or an 'ids' array in the FEATURES file).")
    kwargs = {}
    if methods is not None:
        kwargs["methods"] = _list(methods, "--methods", str)
    kwargs["k1s"] = _list(k1s, "--k1s", int)
    if eps_values is not None:
        kwargs["eps"] = _list(eps_values, "--eps", _eps_item)
    chosen, table = xmrank.select_clustering(
        arrays["features"], arrays["ids"], modalities=arrays.get("modalities"), cameras=arrays.get("cameras"),
        n_splits=n_splits, seed=seed, min_samples=min_samples, knn=knn, n_jobs=n_jobs, return_table=True, **kwargs)
    if json_path:
        write_json(json_path, {"chosen": chosen, "table": table, "n_splits": n_splits, "seed": seed,
                               "xmrank_version": xmrank.__version__}, "--json")
    echo_report(format_table(table, chosen), json_path)
