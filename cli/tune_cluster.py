"""``xmrank tune cluster``: choose the clustering's method, k1 and eps on labelled data (xmrank.select_clustering).

The command is attached to the ``tune`` group of ``cli/tune.py`` (it is not
registered on its own).
"""

from __future__ import annotations

import click

from ._bundle import load_bundle
from ._io import check_outputs, echo_report, fail, user_errors, write_json
from ._options import aliases, option, options

__all__ = ["tune_cluster", "format_table"]


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
@aliases
@options("modalities", "cameras")
@option("ids", more="The identities of the labelled (training) rows; or an 'ids' array in FEATURES.")
@options("methods", "k1s", "eps_values", "n_splits")
@option("seed", more="The seed of the identity folds.")
@options("min_samples", "knn", "n_jobs", "json")
@user_errors
def tune_cluster(features, modalities, cameras, ids, methods, k1s, eps_values, n_splits, seed, min_samples, knn,
                 n_jobs, json_path, spellings):
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
      xmrank tune cluster train_feats.npy -m train_mods.npy --ids train_ids.npy --k1s 10,20 --eps-values 0.5,0.6,auto
    """
    import xmrank

    ids_opt = spellings["ids"]
    check_outputs([("--json", json_path)],
                  inputs=[("FEATURES", features), ("--modalities", modalities), ("--cameras", cameras),
                          (ids_opt, ids)], stdout=("--json",))
    arrays = load_bundle(features, modalities=modalities, cameras=cameras, ids=ids, spellings=spellings)
    if arrays.get("ids") is None:
        fail(f"{ids_opt} is required: one identity per row (or an 'ids' array in the FEATURES file).")
    kwargs = {"k1s": k1s}
    if methods is not None:
        kwargs["methods"] = methods
    if eps_values is not None:
        kwargs["eps"] = eps_values
    chosen, table = xmrank.select_clustering(
        arrays["features"], arrays["ids"], modalities=arrays.get("modalities"), cameras=arrays.get("cameras"),
        n_splits=n_splits, seed=seed, min_samples=min_samples, knn=knn, n_jobs=n_jobs, return_table=True, **kwargs)
    if json_path:
        write_json(json_path, {"chosen": chosen, "table": table, "n_splits": n_splits, "seed": seed,
                               "xmrank_version": xmrank.__version__}, "--json")
    echo_report(format_table(table, chosen), json_path)
