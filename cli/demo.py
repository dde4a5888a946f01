"""``xmrank demo``: vanilla vs modality-aware clustering on an embedded biased data set."""

from __future__ import annotations

import logging
import time

import click

from xmrank._params import DEFAULTS as _D

from ._io import fail, user_errors
from ._options import FiniteFloat, option


_K1 = _D["k1"]  # neighbour-list length of the demo: xmrank.cluster's default
_MAX_ROWS = 200_000  # a demo, not a benchmark


@click.command("demo")
@click.option("--n-ids", type=click.IntRange(min=2), default=60, show_default=True, help="Identities in the synthetic set (2 or more).")
@click.option("--per-id", type=click.IntRange(min=1), default=8, show_default=True, help="Rows per identity in each modality.")
@click.option("--gap", type=FiniteFloat(min=0.0), default=1.5, show_default=True,
              help="Norm of each modality's offset (the bias), >= 0.")
@option("seed", more="The seed of the synthetic set.")
@option("eps")
@user_errors
def demo_cmd(n_ids, per_id, gap, seed, eps):
    """Cluster a synthetic two-modality set (generated on the fly, no download)
    with vanilla, modality-qe and modality-aware Jaccard, and print them side by side.

    The set has a strong modality gap: every row's nearest neighbours are other
    identities of its own modality, so vanilla Jaccard never joins the two
    modalities of an identity. The modality-aware distance does.
    """
    n_rows = 2 * n_ids * per_id
    if n_rows <= _K1 + 1:
        fail(f"--n-ids x --per-id: the set would have {n_rows} rows ({n_ids} x {per_id} per modality); the demo's "
             f"{_K1}-neighbour lists need more than {_K1 + 1} (e.g. --n-ids {n_ids} --per-id {-(-(_K1 + 2) // (2 * n_ids))}).")
    if n_rows > _MAX_ROWS:
        fail(f"--n-ids x --per-id: the set would have {n_rows} rows; the demo makes at most {_MAX_ROWS:,} "
             f"(use `xmrank cluster` on your own features for larger sets).")

    import xmrank
    from xmrank.datasets import make_biased
    from xmrank.diagnostics.scores import cluster_scores

    X, ids, mods, _ = make_biased(n_ids=n_ids, per_id=per_id, gap=gap, seed=seed)
    # untimed first pass: compiles the kernels where this machine has not yet (announced on stderr, once)
    # and loads them from the cache otherwise, so that the times below are the algorithms' alone
    log = logging.getLogger("xmrank")
    level = log.level
    log.setLevel(max(level, logging.WARNING))  # its -v timings would only repeat the table's
    try:
        xmrank.cluster(X, modalities=mods, method="vanilla", eps=eps, k1=_K1, progress=False)
    finally:
        log.setLevel(level)
    share = _cross_modal_neighbour_share(X, mods)
    click.echo(
        f"Synthetic set: {X.shape[0]} rows x {X.shape[1]} dims, {n_ids} identities, 2 modalities "
        f"(gap {gap}); {share:.1%} of each row's {_K1} nearest neighbours are of the other modality.\n"
    )
    header = f"{'method':<14}{'clusters':>9}{'noise':>8}{'mixed':>8}{'ARI':>7}{'x-modal recall':>16}{'time':>8}"
    click.echo(header)
    click.echo("-" * len(header))
    for method in ("vanilla", "modality-qe", "modality"):
        t0 = time.perf_counter()
        labels = xmrank.cluster(X, modalities=mods, method=method, eps=eps, k1=_K1, progress=False)
        dt = time.perf_counter() - t0
        s = cluster_scores(ids, labels, modalities=mods)
        click.echo(
            f"{method:<14}{s['n_clusters']:>9}{s['noise_share']:>8.1%}{s['mixed_modality_cluster_share']:>8.1%}"
            f"{s['ari']:>7.3f}{s['cross_modal_pair_recall']:>16.1%}{dt:>7.2f}s"
        )
    click.echo(
        "\nmixed = share of clusters holding both modalities; x-modal recall = share of same-identity\n"
        "visible/infrared pairs placed in one cluster. Next: `xmrank cluster FEATURES.npy --modalities MODS.npy`."
    )


def _cross_modal_neighbour_share(X, mods, k=_K1):
    from xmrank.knn import knn_search

    _, idx = knn_search(X, X, k + 1)
    return float((mods[idx[:, 1:]] != mods[:, None]).mean())
