"""``xmrank tune rerank``: choose the re-ranking's method, k1, k2 and lambda on labelled data (xmrank.select_rerank).

The command is attached to the ``tune`` group of ``cli/tune.py`` (it is not registered on its own).
"""

from __future__ import annotations

import click

from ._bundle import load_side
from ._io import check_outputs, echo_report, user_errors, write_json
from ._options import aliases, option, options
from ._retrieval import SIDE_HELP, check_protocol, labels_pair, require

__all__ = ["tune_rerank", "format_tune_table"]


def format_tune_table(table, top: int) -> str:
    """The table: one line per setting, best first; mAP and Rank-1 in percent (mean ± std over the folds)."""
    lines = [f"{'method':<16}{'k1':>5}{'k2':>5}{'lambda':>8}{'mAP':>9}{'±':>7}{'Rank-1':>9}{'±':>7}"]
    for row in table[:top]:
        k1 = "-" if row["k1"] is None else row["k1"]
        k2 = "-" if row["k2"] is None else row["k2"]
        lines.append(f"{row['method']:<16}{k1:>5}{k2:>5}{row['lambda_value']:>8.2f}{100 * row['mAP']:>9.2f}"
                     f"{100 * row['mAP_std']:>7.2f}{100 * row['rank1']:>9.2f}{100 * row['rank1_std']:>7.2f}")
    if len(table) > top:
        lines.append(f"... {len(table) - top} more (--top, or all in --json)")
    return "\n".join(lines)


@click.command("rerank", help=f"""Select the re-ranking setting (method x k1 x k2 x lambda) on labelled data.

Every setting re-ranks QUERY x GALLERY once and is scored (mAP, Rank-1) on
the queries of each fold of identities under --protocol; the setting of the
best mean mAP, or of those within one standard error of it the one nearest
the published setting, is chosen (xmrank.select_rerank). The original
distance alone is scored too. Prints the table, best first; --json writes
the chosen keyword arguments of xmrank.rerank and the whole table. Apply the
choice to the test split with `xmrank rerank --method M --k1 K1 --k2 K2
--lambda L`.

{SIDE_HELP} Both sides need ids; every identity must have rows on both sides.

Examples:

\\b
  xmrank tune rerank val_ir.npz val_rgb.npz --query-modalities 1 --gallery-modalities 0
  xmrank tune rerank q.npz g.npz --k1s 10,20,30 --k2s 3,6 --lambdas 0.3 --protocol regdb --json tuned.json
""")
@click.argument("query", type=click.Path(dir_okay=False))
@click.argument("gallery", type=click.Path(dir_okay=False))
@aliases
@options("query_ids", "gallery_ids", "query_modalities", "gallery_modalities", "query_cameras", "gallery_cameras",
         "methods", "rerank_k1s", "k2s", "lambdas", "n_splits")
@option("seed", more="The seed of the folds.")
@options("protocol")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Rows of the table printed.")
@option("json")
@user_errors
def tune_rerank(query, gallery, query_ids, gallery_ids, query_modalities, gallery_modalities, query_cameras,
                gallery_cameras, methods, k1s, k2s, lambdas, n_splits, seed, protocol, top, json_path, spellings):
    from xmrank import _warmup
    from xmrank.retrieval import select_rerank

    q_cam_opt, g_cam_opt = spellings["query_cameras"], spellings["gallery_cameras"]
    check_outputs([("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--query-ids", query_ids),
                          ("--gallery-ids", gallery_ids), ("--query-modalities", query_modalities),
                          ("--gallery-modalities", gallery_modalities), (q_cam_opt, query_cameras),
                          (g_cam_opt, gallery_cameras)],
                  stdout=("--json",))
    qa = load_side(query, "query", {"modalities": query_modalities, "cameras": query_cameras, "ids": query_ids},
                   {"cameras": q_cam_opt})
    ga = load_side(gallery, "gallery", {"modalities": gallery_modalities, "cameras": gallery_cameras,
                                        "ids": gallery_ids}, {"cameras": g_cam_opt})
    hint = "the {} file has no 'features' array"
    Q = require(qa, "features", "query", hint.format("query"))
    G = require(ga, "features", "gallery", hint.format("gallery"))
    ids_hint = "add an 'ids' array to the file or pass --{}-ids"
    q_ids = require(qa, "ids", "query", ids_hint.format("query"))
    g_ids = require(ga, "ids", "gallery", ids_hint.format("gallery"))
    nq, ng = len(Q), len(G)
    labels = {}
    for field in ("modalities", "cameras"):
        labels[f"query_{field}"], labels[f"gallery_{field}"] = labels_pair(qa, ga, field, nq, ng, spellings)
    protocol = check_protocol(protocol, labels["query_cameras"], labels["gallery_cameras"], spellings)
    _warmup.ensure_compiled()  # as main.KERNEL_COMMANDS do: no first-use compilation inside the work
    grid = {"k1s": k1s, "k2s": k2s, "lambdas": lambdas}
    if methods is not None:
        grid["methods"] = methods
    chosen, table = select_rerank(Q, G, q_ids, g_ids, **labels, **grid, n_splits=n_splits, seed=seed,
                                  protocol=protocol, return_table=True)
    settings = " ".join(f"{k}={v}" for k, v in chosen.items())
    echo_report(f"{nq} queries x {ng} gallery rows, {n_splits} fold(s) of identities, protocol {protocol}\n"
                f"{format_tune_table(table, top)}\nchosen: {settings}", json_path)
    if json_path:
        write_json(json_path, {"chosen": chosen, "protocol": protocol, "n_splits": n_splits, "seed": seed,
                               "table": table}, "--json")
