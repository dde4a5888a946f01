"""``xmrank rerank``: re-rank query x gallery distances (k-reciprocal, GNN, torchreid's, hubness reduction, query expansion)."""

from __future__ import annotations

import click
import numpy as np

from xmrank._params import RERANK_ALGORITHMS

from ._bundle import load_side
from ._io import check_npy_output, check_outputs, committed, echo_report, fail, load_array, user_errors, write_json, write_npy
from ._options import aliases, options
from ._retrieval import (SIDE_HELP, check_protocol, check_side_lengths, feature_distance, format_table, labels_pair,
                         load_distances, rerank_distances, rerank_row_name, require, result_json, score, side_labels)

#: Re-rankers that work on features (cosine similarity): hubness reduction and query expansion.
FEATURE_ONLY = ("qb-norm", "db-norm", "aqe", "alpha-qe")


@click.command("rerank", help=f"""Re-rank query x gallery distances.

--reranker k-reciprocal (the default) computes (1 - lambda) * Jaccard +
lambda * original over query + gallery, where the original distance is the
squared Euclidean distance divided by each query's largest one. --method is
the neighbour rule of the Jaccard: with modalities given, 'modality' draws
each neighbour list half from each modality (use it when queries and
gallery are of different modalities); 'auto' takes it only where plain kNN
lists show a modality bias. 'camera' reads cameras (CA-Jaccard) and
'modality-camera' both. --k1 auto --k2 auto choose the list lengths from
the data (the published 20/6 unless a test shows one item per identity and
modality: re-ranking then keeps the ranking as it is); --json records the
choice and the measurements behind it. `xmrank tune rerank` selects the
settings on labelled validation data instead.

--reranker gnn replaces the Jaccard by GNN re-ranking (Zhang et al.,
sparse) over the same neighbour lists: the output is then the negated GNN
similarity, -((1 - lambda) * graph similarity + lambda * cosine), so that
sorting it ascending gives the published ranking; --camera-weight adds
CEIL's camera-weighted graph (needs cameras). --reranker torchreid is
torchreid's re_ranking exactly (distance inputs).

Inputs: features (QUERY, GALLERY), or the three distance matrices
--distances (query x gallery), --query-distances and --gallery-distances
(QUERY and GALLERY then only carry labels, and may be left out).

For one item per identity and modality (image/caption pairs), hubness
reduction and query expansion help instead (features, cosine similarity):
--reranker qb-norm (QB-Norm's dynamic inverted softmax, --bank: a query
bank, default the queries), db-norm (DBNorm, query and gallery banks), aqe
and alpha-qe (fast-reid's query expansion, modality-balanced when
modalities are given; --qe-k, --alpha).

Writes the distances with --output (.npy, n_query x n_gallery float32). When
identities are available, prints mAP, mINP and Rank-1/5/10/20 of the original
and the re-ranked distances under --protocol (the first line says which).

{SIDE_HELP}

Examples:

\b
  xmrank rerank ir.npz rgb.npz --query-modalities 1 --gallery-modalities 0 \\
      -o reranked.npy --protocol sysu --json scores.json
  xmrank rerank --distances qg.npy --query-distances qq.npy \\
      --gallery-distances gg.npy --reranker torchreid -o reranked.npy
  xmrank rerank captions.npz images.npz --reranker qb-norm --protocol regdb
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@aliases
@options("output", "distances", "query_distances", "gallery_distances", "query_modalities", "gallery_modalities",
         "query_cameras", "gallery_cameras", "query_ids", "gallery_ids", "reranker", "method", "rerank_k1",
         "rerank_k2", "lambda_value", "normalize", "knn", "camera_weight", "n_jobs")
@click.option("--bank", type=click.Path(dir_okay=False), help="qb-norm/db-norm: query bank features (.npy, query modality); default: the queries.")
@click.option("--gallery-bank", type=click.Path(dir_okay=False), help="db-norm: gallery bank features (.npy); default: the gallery.")
@options("beta", "qe_k", "alpha", "protocol", "max_rank", "roc", "json")
@user_errors
def rerank_cmd(query, gallery, output, distances, query_distances, gallery_distances, query_modalities,
               gallery_modalities, query_cameras, gallery_cameras, query_ids, gallery_ids, reranker, method, k1, k2,
               lambda_value, normalize, knn, camera_weight, n_jobs, bank, gallery_bank, beta, qe_k, alpha, protocol,
               max_rank, roc, json_path, spellings):
    q_cam_opt, g_cam_opt = spellings["query_cameras"], spellings["gallery_cameras"]
    if len(set(reranker)) > 1:
        fail("give one --reranker: the output holds one re-ranking (`xmrank evaluate --rerank` scores several).")
    algorithm = reranker[0]
    given = click.get_current_context().get_parameter_source
    from_distances = distances is not None or query_distances is not None or gallery_distances is not None
    if from_distances and None in (distances, query_distances, gallery_distances):
        fail("re-ranking from distances needs all three: --distances, --query-distances and --gallery-distances.")
    if not from_distances and (query is None or gallery is None):
        fail("give QUERY and GALLERY feature files, or --distances, --query-distances and --gallery-distances; see --help.")
    if from_distances and algorithm in FEATURE_ONLY:
        fail(f"--reranker {algorithm} works on features (cosine similarity); give QUERY and GALLERY features instead of distances.")
    if algorithm == "torchreid" and not from_distances:
        fail("--reranker torchreid takes the three distance matrices: --distances, --query-distances, --gallery-distances.")
    if algorithm not in RERANK_ALGORITHMS:
        for name, option_name in (("method", "--method"), ("camera_weight", "--camera-weight")):
            if given(name) is not click.core.ParameterSource.DEFAULT:
                fail(f"{option_name} is for --reranker k-reciprocal or gnn; --reranker {algorithm} has no neighbour rule.")
    elif camera_weight is not None and algorithm != "gnn":
        fail("--camera-weight weighs the GNN re-ranking's graph: add --reranker gnn.")
    if algorithm != "db-norm" and gallery_bank is not None:
        fail("--gallery-bank is for --reranker db-norm.")
    if algorithm not in ("qb-norm", "db-norm") and bank is not None:
        fail("--bank is for --reranker qb-norm or db-norm.")
    check_npy_output(output, "--output")
    check_outputs([("--output", output), ("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--distances", distances),
                          ("--query-distances", query_distances), ("--gallery-distances", gallery_distances),
                          ("--query-modalities", query_modalities), ("--gallery-modalities", gallery_modalities),
                          (q_cam_opt, query_cameras), (g_cam_opt, gallery_cameras), ("--query-ids", query_ids),
                          ("--gallery-ids", gallery_ids), ("--bank", bank), ("--gallery-bank", gallery_bank)],
                  stdout=("--json",))
    qa = load_side(query, "query", {"modalities": query_modalities, "cameras": query_cameras, "ids": query_ids},
                   {"cameras": q_cam_opt})
    ga = load_side(gallery, "gallery", {"modalities": gallery_modalities, "cameras": gallery_cameras, "ids": gallery_ids},
                   {"cameras": g_cam_opt})
    D = QQ = GG = None
    if from_distances:
        D = load_distances(distances, "--distances")
        QQ = load_distances(query_distances, "--query-distances", (D.shape[0], D.shape[0]))
        GG = load_distances(gallery_distances, "--gallery-distances", (D.shape[1], D.shape[1]))
        nq, ng = D.shape
        check_side_lengths(qa, "query", nq, "--distances")
        check_side_lengths(ga, "gallery", ng, "--distances")
    else:
        hint = "the {} file has no 'features' array"
        Q = require(qa, "features", "query", hint.format("query"))
        G = require(ga, "features", "gallery", hint.format("gallery"))
        if Q.ndim != 2 or G.ndim != 2:
            fail(f"query and gallery features must be 2-D arrays; got shapes {Q.shape} and {G.shape}.")
        nq, ng = Q.shape[0], G.shape[0]
    has_ids = qa.get("ids") is not None and ga.get("ids") is not None
    if not has_ids and json_path:
        fail("--json needs ids for both sides (the scores): 'ids' arrays or --query-ids/--gallery-ids.")
    if not has_ids and output is None:
        fail("nothing to do: give --output to save the distances, or ids for both sides to print the scores.")
    unscored = ""
    if has_ids:  # the rules of the scores, checked before the work
        q_cams, g_cams = side_labels(qa, "cameras", nq), side_labels(ga, "cameras", ng)
        if protocol is None and (q_cams is not None or g_cams is not None) and json_path is None and output:
            # the scores are a side product here: without the rules they need, the distances are still written
            has_ids = False
            unscored = "; not scored: the rows carry cameras, give --protocol (sysu, regdb, market or llcm) to score"
        else:
            protocol = check_protocol(protocol, q_cams, g_cams, spellings)

    note = ""
    chosen = None
    if algorithm in RERANK_ALGORITHMS:
        R, chosen = rerank_distances(qa, ga, D, QQ, GG, method=method, k1=k1, k2=k2, lambda_value=lambda_value,
                                     normalize=normalize, knn=knn, n_jobs=n_jobs, spellings=spellings,
                                     algorithm=algorithm, camera_weight=camera_weight)
        k1, k2 = chosen["k1"], chosen["k2"]
        note = f" ({chosen['method']}, k1={k1}, k2={k2})"
        if from_distances:
            from xmrank.retrieval._distances import DistanceBlocks, original_from_blocks

            original = original_from_blocks(DistanceBlocks(D, QQ, GG), normalize=normalize)
        else:
            from xmrank.retrieval import original_distance

            original = original_distance(Q, G, normalize=normalize)
    elif algorithm == "torchreid":
        from xmrank.compat import re_ranking

        if k1 == "auto" or k2 == "auto":
            fail("--reranker torchreid takes fixed --k1 and --k2 (torchreid's defaults: 20 and 6).")
        R = re_ranking(D, QQ, GG, k1=k1, k2=k2, lambda_value=lambda_value)
        original = D
        note = f" (k1={k1}, k2={k2})"
    else:
        R, note = _feature_method(algorithm, Q, G, qa, ga, nq, ng, bank, gallery_bank, beta, qe_k, alpha, spellings)
        original = feature_distance(Q, G, "inner")
    R = np.asarray(R, dtype=np.float32)
    if not np.isfinite(R).all():  # never written, nor scored, with exit 0
        fail(f"--reranker {algorithm} gave {int((~np.isfinite(R)).sum())} non-finite distance(s); nothing was written.")
    rows = None
    if has_ids:
        name = (rerank_row_name(algorithm, k1, k2, chosen["method"]) if algorithm in RERANK_ALGORITHMS
                else algorithm + note)
        rows = {"original": score(original, qa, ga, protocol, max_rank, roc, spellings),
                name: score(R, qa, ga, protocol, max_rank, roc, spellings)}
        echo_report(format_table(rows), json_path)
    else:
        click.echo(f"re-ranked {nq} queries against {ng} gallery items: {algorithm}{note}{unscored}")
    with committed():  # both outputs replace their files, or (one fails) neither does
        if output:
            write_npy(output, np.asarray(R, dtype=np.float32), "--output")
        if json_path:
            settings = {"protocol": protocol, "reranker": algorithm}
            if algorithm in RERANK_ALGORITHMS + ("torchreid",):
                settings.update(k1=k1, k2=k2, **{"lambda": lambda_value})
            if algorithm in RERANK_ALGORITHMS:
                settings.update(algorithm=algorithm, camera_weight=camera_weight)
            if chosen is not None:
                settings.update(method=chosen["method"], method_requested=method, chosen=chosen)
            write_json(json_path, {**settings, "results": {name: result_json(r) for name, r in
                                                           zip(("original", "re-ranked"), rows.values())}}, "--json")


def _feature_method(method, Q, G, qa, ga, nq, ng, bank, gallery_bank, beta, qe_k, alpha, spellings):
    """Hubness reduction or query expansion on features; returns the distances and a note for the table."""
    from xmrank.retrieval import db_norm, qb_norm, query_expansion

    if method == "qb-norm":
        B = None if bank is None else load_array(bank, name="--bank")
        return qb_norm(Q, G, bank=B, beta=beta), ""
    if method == "db-norm":
        B = None if bank is None else load_array(bank, name="--bank")
        GB = None if gallery_bank is None else load_array(gallery_bank, name="--gallery-bank")
        return db_norm(Q, G, query_bank=B, gallery_bank=GB, beta1=beta, beta2=beta), ""
    q_mod, g_mod = labels_pair(qa, ga, "modalities", nq, ng, spellings)
    a = 0.0 if method == "aqe" else alpha
    Qe, Ge = query_expansion(Q, G, k=qe_k, alpha=a, query_modalities=q_mod, gallery_modalities=g_mod)
    return 1.0 - Qe @ Ge.T, f" (k={qe_k}{', balanced' if q_mod is not None else ''})"
