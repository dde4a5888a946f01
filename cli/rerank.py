"""``xmrank rerank``: k-reciprocal re-ranking of query x gallery distances."""

from __future__ import annotations

import click
import numpy as np

from ._io import check_npy_output, check_outputs, fail, user_errors, write_json, write_npy
from .evaluate import PROTOCOL_CHOICE, SIDE_HELP, format_table, label_or_path, load_side, require, result_json, score, side_labels

METHODS = ("auto", "vanilla", "modality", "modality-qe", "camera")


@click.command("rerank", help=f"""Re-rank query x gallery distances with k-reciprocal Jaccard.

Computes (1 - lambda) * Jaccard + lambda * original over query + gallery, where
the original distance is the squared Euclidean distance divided by each
query's largest one, and the Jaccard part uses the vanilla, modality-aware or
camera-aware neighbour rule. With modalities given (method 'auto' picks
'modality'), each neighbour list is drawn half from each modality: use it when
queries and gallery are of different modalities.

Writes the distances with --output (.npy, n_query x n_gallery float32). When
identities are available, prints mAP, mINP and Rank-1/5/10/20 of the original
and the re-ranked distances.

{SIDE_HELP}

Example (infrared queries, visible gallery):

\b
  xmrank rerank ir.npz rgb.npz --query-modalities 1 --gallery-modalities 0 \\
      -o reranked.npy --protocol sysu --json scores.json
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the re-ranked distances here (.npy).")
@click.option("--query-modalities", callback=label_or_path, help="Modality of each query row (.npy), or one integer for all.")
@click.option("--gallery-modalities", callback=label_or_path, help="Modality of each gallery row (.npy), or one integer for all.")
@click.option("--query-cams", callback=label_or_path, help="Camera of each query row (.npy), or one integer for all.")
@click.option("--gallery-cams", callback=label_or_path, help="Camera of each gallery row (.npy), or one integer for all.")
@click.option("--query-ids", type=click.Path(dir_okay=False), help="Identity of each query row (.npy), for the scores.")
@click.option("--gallery-ids", type=click.Path(dir_okay=False), help="Identity of each gallery row (.npy), for the scores.")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True, help="Neighbour rule of the Jaccard part.")
@click.option("--k1", type=click.IntRange(min=1), default=20, show_default=True, help="Neighbour-list length.")
@click.option("--k2", type=click.IntRange(min=1), default=6, show_default=True, help="Query-expansion length (per modality for 'modality').")
@click.option("--lambda", "lambda_value", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True, help="Weight of the original distance.")
@click.option("--normalize", type=click.Choice(["gallery", "union"]), default="gallery", show_default=True, help="Divide each query's squared distances by their max over the gallery, or over query + gallery (Zhong et al.).")
@click.option("--knn", type=click.Choice(["auto", "faiss", "numpy"]), default="auto", show_default=True, help="Exact kNN engine.")
@click.option("--protocol", type=PROTOCOL_CHOICE, default="regdb", show_default=True, help="Evaluation rules for the printed scores.")
@click.option("--max-rank", type=click.IntRange(min=1), default=20, show_default=True, help="Length of the CMC curve.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the scores (original and re-ranked) to this JSON file.")
@user_errors
def rerank_cmd(query, gallery, output, query_modalities, gallery_modalities, query_cams, gallery_cams, query_ids, gallery_ids,
               method, k1, k2, lambda_value, normalize, knn, protocol, max_rank, json_path):
    from xmrank.retrieval import rerank

    if query is None or gallery is None:
        fail("give QUERY and GALLERY feature files; see --help.")
    check_npy_output(output, "--output")
    check_outputs([("--output", output), ("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--query-modalities", query_modalities),
                          ("--gallery-modalities", gallery_modalities), ("--query-cams", query_cams),
                          ("--gallery-cams", gallery_cams), ("--query-ids", query_ids), ("--gallery-ids", gallery_ids)])
    qa = load_side(query, "query", {"modalities": query_modalities, "cams": query_cams, "ids": query_ids})
    ga = load_side(gallery, "gallery", {"modalities": gallery_modalities, "cams": gallery_cams, "ids": gallery_ids})
    hint = "the {} file has no 'features' array"
    Q = require(qa, "features", "query", hint.format("query"))
    G = require(ga, "features", "gallery", hint.format("gallery"))
    if Q.ndim != 2 or G.ndim != 2:
        fail(f"query and gallery features must be 2-D arrays; got shapes {Q.shape} and {G.shape}.")
    nq, ng = Q.shape[0], G.shape[0]
    q_mod, g_mod = side_labels(qa, "modalities", nq), side_labels(ga, "modalities", ng)
    q_cam, g_cam = side_labels(qa, "cams", nq), side_labels(ga, "cams", ng)
    for field, option in (("modalities", "modalities"), ("cameras", "cams")):
        q_has, g_has = (q_mod, g_mod) if field == "modalities" else (q_cam, g_cam)
        if (q_has is None) != (g_has is None):
            given = "query" if g_has is None else "gallery"
            fail(f"--query-{option} and --gallery-{option} go together ('{option}' arrays in both files, or both options): "
                 f"{field} were given for the {given} side only.")
    if method in ("modality", "modality-qe") and (q_mod is None or g_mod is None):
        fail(f"--method {method} needs modalities for both sides: 'modalities' arrays or --query-modalities/--gallery-modalities.")
    if method == "camera" and (q_cam is None or g_cam is None):
        fail("--method camera needs cameras for both sides: 'cams' arrays or --query-cams/--gallery-cams.")
    has_ids = qa.get("ids") is not None and ga.get("ids") is not None
    if not has_ids and json_path:
        fail("--json needs ids for both sides (the scores): 'ids' arrays or --query-ids/--gallery-ids.")
    if not has_ids and output is None:
        fail("nothing to do: give --output to save the distances, or ids for both sides to print the scores.")
    use_mod = method in ("auto", "modality", "modality-qe") and q_mod is not None and g_mod is not None
    use_cam = method in ("auto", "camera") and q_cam is not None and g_cam is not None
    D = rerank(
        Q, G,
        query_modalities=q_mod if use_mod else None, gallery_modalities=g_mod if use_mod else None,
        query_cameras=q_cam if use_cam else None, gallery_cameras=g_cam if use_cam else None,
        method=method, k1=k1, k2=k2, lambda_value=lambda_value, normalize=normalize, knn=knn,
    )
    rows = None
    if has_ids:
        from xmrank.retrieval import original_distance

        rows = {
            "original": score(original_distance(Q, G, normalize=normalize), qa, ga, protocol, max_rank),
            "re-ranked": score(D, qa, ga, protocol, max_rank),
        }
        click.echo(format_table(rows, protocol))
    else:
        click.echo(f"re-ranked {nq} queries against {ng} gallery items")
    if output:
        write_npy(output, D.astype(np.float32, copy=False), "--output")
    if json_path:
        write_json(json_path, {"protocol": protocol, "method": method, "k1": k1, "k2": k2, "lambda": lambda_value,
                               "results": {name: result_json(r) for name, r in rows.items()}}, "--json")
