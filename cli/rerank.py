"""``xmrank rerank``: re-rank query x gallery distances (k-reciprocal, torchreid's, hubness reduction, query expansion)."""

from __future__ import annotations

import click
import numpy as np

from xmrank._params import ALPHA_MAX, BETA_MAX

from ._bundle import load_side
from ._io import (FiniteFloat, check_npy_output, check_outputs, committed, echo_report, fail, load_array, user_errors, write_json,
                  write_npy)
from ._options import (K_OR_AUTO, algorithm_option, camera_options, camera_weight_option, jobs_option, label_or_path,
                       rerank_k_options, rerank_method_option)
from .evaluate import (
    PROTOCOL_CHOICE,
    RERANK_METHODS,
    SIDE_HELP,
    _spelling,
    check_side_lengths,
    feature_distance,
    format_table,
    load_distances,
    rerank_row_name,
    require,
    rerank_distances,
    result_json,
    score,
    side_labels,
)

#: k-reciprocal neighbour rules (xmrank.rerank: xmrank.jaccard.METHODS, the one tuple), torchreid's script,
#: hubness reduction and query expansion.
KRECIPROCAL = RERANK_METHODS
FEATURE_ONLY = ("qb-norm", "db-norm", "aqe", "alpha-qe")
METHODS = KRECIPROCAL + ("torchreid",) + FEATURE_ONLY


class BetaType(click.ParamType):
    """A positive inverse temperature, or ``auto``."""

    name = "FLOAT|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        number = FiniteFloat(min=0.0, min_open=True, max=BETA_MAX).convert(value, param, ctx)
        return number


@click.command("rerank", help=f"""Re-rank query x gallery distances.

k-reciprocal methods ({", ".join(KRECIPROCAL)}) compute
(1 - lambda) * Jaccard + lambda * original over query + gallery, where the
original distance is the squared Euclidean distance divided by each query's
largest one. With modalities given, 'modality' draws each neighbour list
half from each modality: use it when queries and gallery are of different modalities; 'auto' takes it only where plain kNN
lists show a modality bias. --k1 auto --k2 auto choose the list lengths from
the data (the published 20/6 unless a test shows one item per identity and
modality: re-ranking then keeps the ranking as it is); --json records the
choice and the measurements behind it. `xmrank tune rerank` selects the
settings on labelled validation data instead. 'camera' reads cameras (CA-Jaccard) and
'modality-camera' both. 'torchreid' is torchreid's re_ranking exactly
(distance inputs).

--algorithm gnn replaces the Jaccard by GNN re-ranking (Zhang et al.,
sparse) over the same neighbour lists: the output is then the negated GNN
similarity, -((1 - lambda) * graph similarity + lambda * cosine), so that
sorting it ascending gives the published ranking; --camera-weight adds
CEIL's camera-weighted graph (needs cameras).

Inputs: features (QUERY, GALLERY), or the three distance matrices
--distances (query x gallery), --query-distances and --gallery-distances
(QUERY and GALLERY then only carry labels, and may be left out).

For one item per identity and modality (image/caption pairs), hubness
reduction and query expansion help instead (features, cosine similarity):
'qb-norm' (QB-Norm's dynamic inverted softmax, --bank: a query bank, default
the queries), 'db-norm' (DBNorm, query and gallery banks), 'aqe' and
'alpha-qe' (fast-reid's query expansion, modality-balanced when modalities
are given; --qe-k, --alpha).

Writes the distances with --output (.npy, n_query x n_gallery float32). When
identities are available, prints mAP, mINP and Rank-1/5/10/20 of the original
and the re-ranked distances.

{SIDE_HELP}

Examples:

\b
  xmrank rerank ir.npz rgb.npz --query-modalities 1 --gallery-modalities 0 \\
      -o reranked.npy --protocol sysu --json scores.json
  xmrank rerank --distances qg.npy --query-distances qq.npy \\
      --gallery-distances gg.npy --method torchreid -o reranked.npy
  xmrank rerank captions.npz images.npz --method qb-norm --protocol regdb
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the re-ranked distances here (.npy).")
@click.option("--distances", type=click.Path(dir_okay=False), help="Query x gallery distances (.npy) instead of features.")
@click.option("--query-distances", type=click.Path(dir_okay=False), help="Query x query distances (.npy), with --distances.")
@click.option("--gallery-distances", type=click.Path(dir_okay=False), help="Gallery x gallery distances (.npy), with --distances.")
@click.option("--query-modalities", callback=label_or_path, help="Modality of each query row (.npy), or one integer for all.")
@click.option("--gallery-modalities", callback=label_or_path, help="Modality of each gallery row (.npy), or one integer for all.")
@camera_options
@click.option("--query-ids", type=click.Path(dir_okay=False), help="Identity of each query row (.npy), for the scores.")
@click.option("--gallery-ids", type=click.Path(dir_okay=False), help="Identity of each gallery row (.npy), for the scores.")
@rerank_method_option(METHODS)
@rerank_k_options
@click.option("--lambda", "lambda_value", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True, help="Weight of the original distance.")
@click.option("--normalize", type=click.Choice(["gallery", "union"]), default="gallery", show_default=True, help="Divide each query's squared distances by their max over the gallery, or over query + gallery (Zhong et al.).")
@click.option("--knn", type=click.Choice(["auto", "faiss", "numpy"]), default="auto", show_default=True, help="Exact kNN engine (features).")
@algorithm_option()
@camera_weight_option()
@jobs_option("the re-ranking")
@click.option("--bank", type=click.Path(dir_okay=False), help="qb-norm/db-norm: query bank features (.npy, query modality); default: the queries.")
@click.option("--gallery-bank", type=click.Path(dir_okay=False), help="db-norm: gallery bank features (.npy); default: the gallery.")
@click.option("--beta", type=BetaType(), default="auto", show_default=True, help=f"qb-norm/db-norm inverse temperature, > 0 and at most {BETA_MAX:g}, or 'auto' "
                   "(2 / std of the bank similarities).")
@click.option("--qe-k", type=K_OR_AUTO, default=5, show_default=True, help="aqe/alpha-qe: rows averaged (per modality with modalities), or 'auto'.")
@click.option("--alpha", type=FiniteFloat(min=0.0, max=ALPHA_MAX), default=3.0, show_default=True,
              help=f"alpha-qe: weight exponent, 0 to {ALPHA_MAX:g}.")
@click.option("--protocol", type=PROTOCOL_CHOICE, default="regdb", show_default=True, help="Evaluation rules for the printed scores.")
@click.option("--max-rank", type=click.IntRange(min=1), default=20, show_default=True, help="Length of the CMC curve.")
@click.option("--roc", is_flag=True, help="Also report TPR at FPR 1e-4, 1e-3, 1e-2, 1e-1.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the scores (original and re-ranked) to this JSON file.")
@user_errors
def rerank_cmd(query, gallery, output, distances, query_distances, gallery_distances, query_modalities,
               gallery_modalities, query_cameras, gallery_cameras, camera_spellings, query_ids, gallery_ids,
               method, k1, k2, lambda_value, normalize, knn, algorithm, camera_weight, n_jobs, bank, gallery_bank, beta, qe_k, alpha, protocol,
               max_rank, roc, json_path):
    q_cam_opt, g_cam_opt = camera_spellings
    from_distances = distances is not None or query_distances is not None or gallery_distances is not None
    if from_distances and None in (distances, query_distances, gallery_distances):
        fail("re-ranking from distances needs all three: --distances, --query-distances and --gallery-distances.")
    if not from_distances and (query is None or gallery is None):
        fail("give QUERY and GALLERY feature files, or --distances, --query-distances and --gallery-distances; see --help.")
    if from_distances and method in FEATURE_ONLY:
        fail(f"--method {method} works on features (cosine similarity); give QUERY and GALLERY features instead of distances.")
    if method == "torchreid" and not from_distances:
        fail("--method torchreid takes the three distance matrices: --distances, --query-distances, --gallery-distances.")
    if (algorithm != "k-reciprocal" or camera_weight is not None) and method not in KRECIPROCAL:
        fail(f"{'--algorithm' if algorithm != 'k-reciprocal' else '--camera-weight'} goes with the neighbour-rule "
             f"methods ({', '.join(KRECIPROCAL)}); --method {method} has its own algorithm.")
    if method != "db-norm" and gallery_bank is not None:
        fail("--gallery-bank is for --method db-norm.")
    if method not in ("qb-norm", "db-norm") and bank is not None:
        fail("--bank is for --method qb-norm or db-norm.")
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

    note = ""
    chosen = None
    if method in KRECIPROCAL:
        R, chosen = rerank_distances(qa, ga, D, QQ, GG, method=method, k1=k1, k2=k2, lambda_value=lambda_value,
                                     normalize=normalize, knn=knn, n_jobs=n_jobs,
                                     camera_option=_spelling(q_cam_opt, g_cam_opt), algorithm=algorithm,
                                     camera_weight=camera_weight)
        k1, k2 = chosen["k1"], chosen["k2"]
        note = f" ({chosen['method']}, k1={k1}, k2={k2})"
        if from_distances:
            from xmrank.retrieval._distances import DistanceBlocks, original_from_blocks

            original = original_from_blocks(DistanceBlocks(D, QQ, GG), normalize=normalize)
        else:
            from xmrank.retrieval import original_distance

            original = original_distance(Q, G, normalize=normalize)
    elif method == "torchreid":
        from xmrank.compat import re_ranking

        if k1 == "auto" or k2 == "auto":
            fail("--method torchreid takes fixed --k1 and --k2 (torchreid's defaults: 20 and 6).")
        R = re_ranking(D, QQ, GG, k1=k1, k2=k2, lambda_value=lambda_value)
        original = D
        note = f" (k1={k1}, k2={k2})"
    else:
        R, note = _feature_method(method, Q, G, qa, ga, nq, ng, bank, gallery_bank, beta, qe_k, alpha)
        original = feature_distance(Q, G, "inner")
    R = np.asarray(R, dtype=np.float32)
    if not np.isfinite(R).all():  # never written, nor scored, with exit 0
        fail(f"--method {method} gave {int((~np.isfinite(R)).sum())} non-finite distance(s); nothing was written.")
    rows = None
    if has_ids:
        rows = {"original": score(original, qa, ga, protocol, max_rank, roc),
                (method + note if method not in KRECIPROCAL else rerank_row_name(algorithm, k1, k2, chosen['method'])):
                    score(R, qa, ga, protocol, max_rank, roc)}
        echo_report(format_table(rows, protocol), json_path)
    else:
        what = f"{method}, {algorithm}" if method in KRECIPROCAL else method
        click.echo(f"re-ranked {nq} queries against {ng} gallery items ({what}{note})")
    with committed():  # both outputs replace their files, or (one fails) neither does
        if output:
            write_npy(output, np.asarray(R, dtype=np.float32), "--output")
        if json_path:
            settings = {"protocol": protocol, "method": method}
            if method in KRECIPROCAL + ("torchreid",):
                settings.update(k1=k1, k2=k2, **{"lambda": lambda_value})
            if method in KRECIPROCAL:
                settings.update(algorithm=algorithm, camera_weight=camera_weight)
            if chosen is not None:
                settings.update(method=chosen["method"], method_requested=method, chosen=chosen)
            write_json(json_path, {**settings, "results": {name: result_json(r) for name, r in
                                                           zip(("original", "re-ranked"), rows.values())}}, "--json")


def _feature_method(method, Q, G, qa, ga, nq, ng, bank, gallery_bank, beta, qe_k, alpha):
    """Hubness reduction or query expansion on features; returns the distances and a note for the table."""
    from xmrank.retrieval import db_norm, qb_norm, query_expansion

    if method == "qb-norm":
        B = None if bank is None else load_array(bank, name="--bank")
        return qb_norm(Q, G, bank=B, beta=beta), ""
    if method == "db-norm":
        B = None if bank is None else load_array(bank, name="--bank")
        GB = None if gallery_bank is None else load_array(gallery_bank, name="--gallery-bank")
        return db_norm(Q, G, query_bank=B, gallery_bank=GB, beta1=beta, beta2=beta), ""
    q_mod, g_mod = side_labels(qa, "modalities", nq), side_labels(ga, "modalities", ng)
    if (q_mod is None) != (g_mod is None):
        given = "query" if g_mod is None else "gallery"
        fail("--query-modalities and --gallery-modalities go together ('modalities' arrays in both files, or both "
             f"options): modalities were given for the {given} side only.")
    a = 0.0 if method == "aqe" else alpha
    Qe, Ge = query_expansion(Q, G, k=qe_k, alpha=a, query_modalities=q_mod, gallery_modalities=g_mod)
    return 1.0 - Qe @ Ge.T, f" (k={qe_k}{', balanced' if q_mod is not None else ''})"
