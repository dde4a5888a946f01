"""``xmrank evaluate``: mAP, mINP and CMC of query/gallery features or of a distance matrix."""

from __future__ import annotations

import click

from xmrank._params import RERANK_ALGORITHMS

from ._bundle import load_side
from ._io import check_outputs, echo_report, fail, user_errors, write_json
from ._options import aliases, options
from ._retrieval import (SIDE_HELP, check_side_lengths, feature_distance, format_table, load_distances,
                         rerank_distances, rerank_row_name, require, result_json, score)


@click.command("evaluate", help=f"""Score query/gallery retrieval: mAP, mINP and CMC (Rank-1/5/10/20), optionally ROC.

Distances come from the features (default: -q.g, the published VI-ReID test
scripts' choice) or from --distances. The first line of the report says
which protocol's rules were applied. 'sysu' drops camera-2 gallery items for
camera-3 queries and ranks distinct identities for CMC; it needs
SYSU-MM01's cameras (1-6, queries and gallery from different cameras) and
refuses other data. 'regdb' removes nothing: queries and gallery come from
different cameras (it refuses cameras shared by the two sides), or the data
have no cameras (then it is the default). 'market' drops same-identity
same-camera gallery items; 'llcm' (the LLCM authors' eval_llcm) drops those
and ranks distinct identities for CMC. Rows with cameras must name their
protocol. Queries with no valid match are skipped and counted.

--roc adds the true-positive rate at false-positive rates 1e-4, 1e-3, 1e-2
and 1e-1 over all kept query/gallery pairs. --rerank adds a row for the
re-ranked distances (xmrank.rerank over the --method neighbour rule,
'auto': modality-aware where the data show a modality bias; from the
features, or from --distances with --query-distances and
--gallery-distances), so that a paper can report both; --reranker gnn makes
it GNN re-ranking (Zhang et al.), and --reranker k-reciprocal --reranker gnn
prints a row of each.

{SIDE_HELP}

Examples:

\b
  xmrank evaluate query.npz gallery.npz --protocol sysu --json scores.json
  xmrank evaluate q.npz g.npz --distances reranked.npy --protocol regdb
  xmrank evaluate q.npz g.npz --rerank --k1 auto --k2 auto --roc
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@aliases
@options("distances", "query_distances", "gallery_distances", "query_ids", "gallery_ids", "query_cameras",
         "gallery_cameras", "query_modalities", "gallery_modalities", "protocol", "metric", "max_rank", "roc",
         "rerank", "method", "rerank_k1", "rerank_k2", "lambda_value", "reranker", "camera_weight", "n_jobs", "json")
@user_errors
def evaluate_cmd(query, gallery, distances, query_distances, gallery_distances, query_ids, gallery_ids, query_cameras,
                 gallery_cameras, query_modalities, gallery_modalities, protocol, metric, max_rank, roc, rerank,
                 method, k1, k2, lambda_value, reranker, camera_weight, n_jobs, json_path, spellings):
    if query is None or gallery is None:
        fail("give QUERY and GALLERY files (features and/or labels); see --help.")
    q_cam_opt, g_cam_opt = spellings["query_cameras"], spellings["gallery_cameras"]
    check_outputs([("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--distances", distances),
                          ("--query-distances", query_distances), ("--gallery-distances", gallery_distances),
                          ("--query-ids", query_ids), ("--gallery-ids", gallery_ids), (q_cam_opt, query_cameras),
                          (g_cam_opt, gallery_cameras), ("--query-modalities", query_modalities),
                          ("--gallery-modalities", gallery_modalities)],
                  stdout=("--json",))
    algorithms = tuple(dict.fromkeys(reranker))  # each once, in the order given
    if not rerank:
        given = click.get_current_context().get_parameter_source
        for name, option_name in (("reranker", "--reranker"), ("camera_weight", "--camera-weight"),
                                  ("query_distances", "--query-distances"), ("gallery_distances", "--gallery-distances")):
            if given(name) is not click.core.ParameterSource.DEFAULT:
                fail(f"{option_name} is for re-ranking: add --rerank.")
    other = [a for a in algorithms if a not in RERANK_ALGORITHMS]
    if rerank and other:
        fail(f"--reranker {other[0]}: evaluate re-ranks with {' or '.join(RERANK_ALGORITHMS)}; write the "
             f"{other[0]} distances with `xmrank rerank --reranker {other[0]} -o D.npy` and score them with "
             "--distances D.npy.")
    if (query_distances is None) != (gallery_distances is None):
        fail("--query-distances and --gallery-distances go together (re-ranking from distances needs both).")
    if query_distances is not None and distances is None:
        fail("--query-distances and --gallery-distances go with --distances (the query x gallery matrix).")
    qa = load_side(query, "query", {"ids": query_ids, "cameras": query_cameras, "modalities": query_modalities},
                   {"cameras": q_cam_opt})
    ga = load_side(gallery, "gallery", {"ids": gallery_ids, "cameras": gallery_cameras, "modalities": gallery_modalities},
                   {"cameras": g_cam_opt})
    QQ = GG = None
    if distances is not None:
        D = load_distances(distances, "--distances")
        check_side_lengths(qa, "query", D.shape[0], "--distances")
        check_side_lengths(ga, "gallery", D.shape[1], "--distances")
        if rerank:
            if query_distances is None:
                fail("--rerank with --distances needs --query-distances and --gallery-distances too "
                     "(or drop --distances to re-rank from the features).")
            QQ = load_distances(query_distances, "--query-distances", (D.shape[0], D.shape[0]))
            GG = load_distances(gallery_distances, "--gallery-distances", (D.shape[1], D.shape[1]))
    else:
        hint = "the {} file has no 'features' array; give features or --distances"
        Q = require(qa, "features", "query", hint.format("query"))
        G = require(ga, "features", "gallery", hint.format("gallery"))
        D = feature_distance(Q, G, metric)
    res = score(D, qa, ga, protocol, max_rank, roc, spellings)
    protocol = res["protocol"]  # as applied (the default resolved)
    if not rerank:
        echo_report(format_table({"distance": res}), json_path)
        if json_path:
            write_json(json_path, result_json(res), "--json")
        return
    if camera_weight is not None and "gnn" not in algorithms:
        fail("--camera-weight weighs the GNN re-ranking's graph: add --reranker gnn.")
    rows, results, first = {"without re-ranking": res}, {"without re-ranking": result_json(res)}, None
    for alg in algorithms:
        R, chosen = rerank_distances(
            qa, ga, None if distances is None else D, QQ, GG, method=method, k1=k1, k2=k2, lambda_value=lambda_value,
            n_jobs=n_jobs, spellings=spellings, algorithm=alg, camera_weight=camera_weight if alg == "gnn" else None)
        row = score(R, qa, ga, protocol, max_rank, roc, spellings)
        rows[rerank_row_name(alg, chosen["k1"], chosen["k2"], chosen["method"])] = row
        results.setdefault("re-ranked", result_json(row))  # the first algorithm's row, under its usual key
        if len(algorithms) > 1:
            results[f"re-ranked ({alg})"] = result_json(row)
        first = first or chosen
    echo_report(format_table(rows), json_path)
    if json_path:
        write_json(json_path, {"protocol": protocol,
                               "rerank": {"algorithm": algorithms[0] if len(algorithms) == 1 else list(algorithms),
                                          "method": first["method"], "method_requested": method, "k1": first["k1"],
                                          "k2": first["k2"], "lambda": lambda_value, "camera_weight": camera_weight},
                               "chosen": first,
                               "results": results},
                   "--json")
