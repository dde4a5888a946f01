"""``xmrank tune``: settings selected on labelled validation data (``tune rerank``; the clustering side joins it)."""

from __future__ import annotations

import click

from xmrank._params import RERANK_GRID

from ._bundle import load_side
from ._io import check_outputs, echo_report, fail, user_errors, write_json
from ._options import camera_options, label_or_path
from .evaluate import PROTOCOL_CHOICE, SIDE_HELP, _spelling, require, side_labels


@click.group("tune", help="""Select settings on labelled validation data (cross-validation over identities).

Give the labelled split (training or validation identities), never the test
split; apply the printed setting to the test split.
""")
def tune():
    pass


def _numbers(kind, name):
    """A click callback: a comma-separated list of ``kind`` values."""

    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            values = [kind(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            raise click.BadParameter(f"{name} must be comma-separated numbers, such as 10,20,30; got {value!r}.")
        if not values:
            raise click.BadParameter(f"{name} must hold at least one number.")
        return values

    return parse


def _joined(name):
    """The default of a grid option: :data:`xmrank._params.RERANK_GRID`'s values, comma-separated."""
    return ",".join(str(v) for v in RERANK_GRID[name])


def _words(ctx, param, value):
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


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


@tune.command("rerank", help=f"""Select the re-ranking setting (method x k1 x k2 x lambda) on labelled data.

Every setting re-ranks QUERY x GALLERY once and is scored (mAP, Rank-1) on
the queries of each fold of identities; the setting of the best mean mAP, or
of those within one standard error of it the one nearest the published
setting, is chosen (xmrank.select_rerank). The original distance alone is
scored too. Prints the table, best first; --json writes the chosen keyword
arguments of xmrank.rerank and the whole table. Apply the choice to the test
split with `xmrank rerank --method M --k1 K1 --k2 K2 --lambda L`.

{SIDE_HELP} Both sides need ids; every identity must have rows on both sides.

Examples:

\b
  xmrank tune rerank val_ir.npz val_rgb.npz --query-modalities 1 --gallery-modalities 0
  xmrank tune rerank q.npz g.npz --k1s 10,20,30 --k2s 3,6 --lambdas 0.3 --json tuned.json
""")
@click.argument("query", type=click.Path(dir_okay=False))
@click.argument("gallery", type=click.Path(dir_okay=False))
@click.option("--query-ids", type=click.Path(dir_okay=False), help="Identity of each query row (.npy).")
@click.option("--gallery-ids", type=click.Path(dir_okay=False), help="Identity of each gallery row (.npy).")
@click.option("--query-modalities", callback=label_or_path, help="Modality of each query row (.npy), or one integer for all.")
@click.option("--gallery-modalities", callback=label_or_path, help="Modality of each gallery row (.npy), or one integer for all.")
@camera_options
@click.option("--methods", callback=_words, help="Neighbour rules to try, comma-separated (default: vanilla, plus "
              "modality with modalities and camera with cameras).")
@click.option("--k1s", callback=_numbers(int, "--k1s"), default=_joined("k1s"), show_default=True,
              help="List lengths to try.")
@click.option("--k2s", callback=_numbers(int, "--k2s"), default=_joined("k2s"), show_default=True,
              help="Expansion lengths to try.")
@click.option("--lambdas", callback=_numbers(float, "--lambdas"), default=_joined("lambdas"), show_default=True,
              help="Weights of the original distance to try (no re-ranking, 1.0, is always scored).")
@click.option("--splits", "n_splits", type=click.IntRange(min=1), default=3, show_default=True, help="Folds of identities.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the folds.")
@click.option("--protocol", type=PROTOCOL_CHOICE, default="regdb", show_default=True, help="Evaluation rules of the scores.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Rows of the table printed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the chosen settings and the table here.")
@user_errors
def tune_rerank_cmd(query, gallery, query_ids, gallery_ids, query_modalities, gallery_modalities, query_cameras,
                    gallery_cameras, camera_spellings, methods, k1s, k2s, lambdas, n_splits, seed, protocol, top,
                    json_path):
    from xmrank import _warmup
    from xmrank.retrieval import select_rerank

    q_cam_opt, g_cam_opt = camera_spellings
    check_outputs([("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--query-ids", query_ids),
                          ("--gallery-ids", gallery_ids), ("--query-modalities", query_modalities),
                          ("--gallery-modalities", gallery_modalities), (q_cam_opt, query_cameras),
                          (g_cam_opt, gallery_cameras)])
    qa = load_side(query, "query", {"modalities": query_modalities, "cameras": query_cameras, "ids": query_ids},
                   {"cameras": q_cam_opt})
    ga = load_side(gallery, "gallery", {"modalities": gallery_modalities, "cameras": gallery_cameras,
                                        "ids": gallery_ids}, {"cameras": g_cam_opt})
    hint = "the {} file has no 'features' array"
    Q = require(qa, "features", "query", hint.format("query"))
    G = require(ga, "features", "gallery", hint.format("gallery"))
    ids_hint = "add an 'ids' array to the .npz or pass --{}-ids IDS.npy"
    q_ids = require(qa, "ids", "query", ids_hint.format("query"))
    g_ids = require(ga, "ids", "gallery", ids_hint.format("gallery"))
    nq, ng = len(Q), len(G)
    labels = {}
    spelling = _spelling(q_cam_opt, g_cam_opt)
    for field, option in (("modalities", "modalities"), ("cameras", spelling)):
        q_lab, g_lab = side_labels(qa, field, nq), side_labels(ga, field, ng)
        if (q_lab is None) != (g_lab is None):
            fail(f"--query-{option} and --gallery-{option} go together ('{field}' arrays in both files, or both "
                 f"options): {field} were given for the {'query' if g_lab is None else 'gallery'} side only.")
        labels[f"query_{field}"], labels[f"gallery_{field}"] = q_lab, g_lab
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


def _attach_cluster():
    """``tune cluster`` lives in its own module (:mod:`.tune_cluster`); attach it to this group."""
    from .tune_cluster import tune_cluster

    tune.add_command(tune_cluster, "cluster")


_attach_cluster()
