"""``xmrank evaluate``: mAP, mINP and CMC of query/gallery features or of a distance matrix.

Also home of the loading and table helpers that ``xmrank rerank`` shares.
"""

from __future__ import annotations

import click
import numpy as np

from xmrank._params import PARAMS

from ._bundle import BUNDLE_HELP, load_side
from ._io import check_outputs, echo_report, fail, load_array, user_errors, write_json
from ._options import (algorithm_option, camera_options, camera_weight_option, jobs_option, label_or_path,
                       rerank_k_options, rerank_method_option)

PROTOCOL_CHOICE = click.Choice(["sysu", "regdb", "market", "llcm"])
METRICS = ("inner", "cosine", "euclidean")
#: Neighbour rules of the k-reciprocal re-ranking (``xmrank.rerank``): xmrank.jaccard.METHODS, the one tuple.
RERANK_METHODS = PARAMS["method"].choices()
#: The rules that read modalities, and those that read cameras.
_NEED_MODALITIES = ("modality", "modality-qe", "modality-camera")
_NEED_CAMERAS = ("camera", "modality-camera")




def _spelling(query_option: str, gallery_option: str) -> str:
    """"cams" when the user typed an older ``--*-cams`` camera option, else "cameras" (for messages)."""
    return "cams" if query_option.endswith("cams") or gallery_option.endswith("cams") else "cameras"


def require(arrays: dict, field: str, side: str, hint: str):
    if arrays.get(field) is None:
        fail(f"{side}: no {field}: {hint}")
    return arrays[field]


def side_labels(arrays: dict, field: str, n: int):
    """A per-row label array for ``field``, expanding an integer given for the whole side."""
    value = arrays.get(field)
    if isinstance(value, int):
        return np.full(n, value, dtype=np.int64)
    return value


def feature_distance(query, gallery, metric: str) -> np.ndarray:
    """Query x gallery distances from features: -q.g (inner), 1 - cos, or Euclidean."""
    from xmrank._validation import InputError, check_features

    Q = check_features(query, "query features", min_rows=1)
    G = check_features(gallery, "gallery features", min_rows=1)
    if Q.shape[1] != G.shape[1]:
        raise InputError(f"query and gallery features must have the same width; got {Q.shape[1]} and {G.shape[1]}.")
    if metric == "cosine":
        Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
        G = G / np.maximum(np.linalg.norm(G, axis=1, keepdims=True), 1e-12)
        return 1.0 - Q @ G.T
    if metric == "euclidean":
        sq = (Q * Q).sum(1)[:, None] + (G * G).sum(1)[None, :] - 2.0 * (Q @ G.T)
        return np.sqrt(np.maximum(sq, 0.0))
    return -(Q @ G.T)


def score(distances, qa: dict, ga: dict, protocol: str, max_rank: int, roc: bool = False) -> dict:
    """:func:`xmrank.evaluate` on loaded arrays, with one-line errors for what is missing."""
    from xmrank.retrieval import evaluate

    hint = "add an 'ids' array to the .npz or pass --{}-ids IDS.npy"
    q_ids = require(qa, "ids", "query", hint.format("query"))
    g_ids = require(ga, "ids", "gallery", hint.format("gallery"))
    q_cams = side_labels(qa, "cameras", distances.shape[0])
    g_cams = side_labels(ga, "cameras", distances.shape[1])
    if protocol != "regdb":
        chint = "add a 'cameras' array to the .npz or pass --{}-cameras (protocol '" + protocol + "' needs cameras)"
        require(qa, "cameras", "query", chint.format("query"))
        require(ga, "cameras", "gallery", chint.format("gallery"))
    return evaluate(distances, q_ids, g_ids, q_cams, g_cams, protocol=protocol, max_rank=max_rank, roc=roc)


def format_table(rows: dict, protocol: str) -> str:
    """A plain-text table: one line per named result, mAP, mINP, Rank-1/5/10/20 (and TPR@FPR) in percent."""
    first = next(iter(rows.values()))
    ranks = [k for k in (1, 5, 10, 20) if k <= len(first["cmc"])]
    fprs = list(first.get("roc_fpr", []))
    head = ["", "mAP", "mINP"] + [f"Rank-{k}" for k in ranks] + [f"TPR@{f:.0e}" for f in fprs]
    width = max(8, max(len(name) for name in rows))
    lines = [
        f"protocol {protocol}: {first['n_queries']} queries ({first['n_skipped']} skipped: no valid match)",
        f"{head[0]:<{width}}" + "".join(f"{h:>{max(9, len(h) + 1)}}" for h in head[1:]),
    ]
    for name, res in rows.items():
        vals = [res["mAP"], res["mINP"]] + [res["cmc"][k - 1] for k in ranks] + list(res.get("roc_tpr", []))
        lines.append(f"{name:<{width}}" + "".join(f"{100 * v:>{max(9, len(h) + 1)}.2f}" for v, h in zip(vals, head[1:])))
    return "\n".join(lines)


def result_json(res: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}


def load_distances(path, option: str, shape=None) -> np.ndarray:
    """A 2-D matrix of finite real distances from ``path`` (one-line errors naming ``option``)."""
    D = load_array(path, name=option)
    if D.ndim != 2:
        fail(f"{option} must be a 2-D matrix; got an array of shape {D.shape}.")
    if D.dtype.kind not in "biuf":
        fail(f"{option} must hold real numbers; got dtype {D.dtype}.")
    if not np.isfinite(D).all():
        fail(f"{option} holds {int((~np.isfinite(D)).sum())} NaN or infinite value(s).")
    if shape is not None and D.shape != shape:
        fail(f"{option} must be {shape[0]} x {shape[1]}; got {D.shape[0]} x {D.shape[1]}.")
    return D


def check_side_lengths(arrays: dict, side: str, n: int, what: str):
    """Per-row label arrays of ``side`` must have ``n`` entries (one per row/column of the distances ``what``)."""
    rows = D_ROWS[side]
    for field in ("ids", "cameras", "modalities", "names"):
        labels = arrays.get(field)
        if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.shape[0] != n:
            fail(f"{what} has {n} {rows}s, but the {side} {field} must have one entry per {rows} of it; "
                 f"got {labels.shape[0]}.")


D_ROWS = {"query": "row", "gallery": "column"}


def rerank_distances(qa, ga, D, QQ, GG, *, method, k1, k2, lambda_value, normalize="gallery", knn="auto",
                     n_jobs=-1, camera_option="cameras", algorithm="k-reciprocal", camera_weight=None):
    """``xmrank.rerank`` of loaded inputs: features when both sides have them, else the three distance matrices.

    ``camera_option`` is the spelling of the camera options the user typed
    ("cameras", or the older "cams"), for messages. Returns the re-ranked
    distances and ``chosen``: the method, k1, k2 and λ used (resolved when
    "auto") with the measurements behind them (``xmrank.rerank(...,
    return_chosen=True)``).
    """
    import logging

    from xmrank.retrieval import rerank

    q_n = D.shape[0] if D is not None else len(qa["features"])
    g_n = D.shape[1] if D is not None else len(ga["features"])
    q_mod, g_mod = side_labels(qa, "modalities", q_n), side_labels(ga, "modalities", g_n)
    q_cam, g_cam = side_labels(qa, "cameras", q_n), side_labels(ga, "cameras", g_n)
    for field, option, (q_has, g_has) in (("modalities", "modalities", (q_mod, g_mod)),
                                          ("cameras", camera_option, (q_cam, g_cam))):
        if (q_has is None) != (g_has is None):
            given = "query" if g_has is None else "gallery"
            fail(f"--query-{option} and --gallery-{option} go together ('{field}' arrays in both files, or both "
                 f"options): {field} were given for the {given} side only.")
    if method in _NEED_MODALITIES and q_mod is None:
        fail(f"--method {method} needs modalities for both sides: 'modalities' arrays or --query-modalities/--gallery-modalities.")
    if method in _NEED_CAMERAS and q_cam is None:
        fail(f"--method {method} needs cameras for both sides: 'cameras' arrays or "
             f"--query-{camera_option}/--gallery-{camera_option}.")
    use_mod = method in ("auto",) + _NEED_MODALITIES and q_mod is not None
    if camera_weight is not None and q_cam is None:
        fail(f"--camera-weight needs cameras for both sides: 'cameras' arrays or "
             f"--query-{camera_option}/--gallery-{camera_option}.")
    use_cam = (method in ("auto",) + _NEED_CAMERAS or camera_weight is not None) and q_cam is not None
    labels = dict(query_modalities=q_mod if use_mod else None, gallery_modalities=g_mod if use_mod else None,
                  query_cameras=q_cam if use_cam else None, gallery_cameras=g_cam if use_cam else None)
    inputs = dict(distances=(D, QQ, GG)) if D is not None else dict(query=qa["features"], gallery=ga["features"])
    extra = {} if D is not None else dict(knn=knn)
    extra["n_jobs"] = n_jobs
    if algorithm == "gnn":
        extra.update(algorithm="gnn", camera_weight=camera_weight)
    R, chosen = rerank(**inputs, **labels, method=method, k1=k1, k2=k2, lambda_value=lambda_value, normalize=normalize,
                       return_chosen=True, **extra)
    for sentence in (chosen["method_reason"], chosen["k_reason"]):
        if sentence != "given":
            logging.getLogger(__name__).info("re-ranking 'auto': %s", sentence)
    return R, chosen


def rerank_row_name(algorithm: str, k1, k2, method: str | None = None) -> str:
    """The table row of re-ranked distances: which algorithm, neighbour rule and list lengths."""
    rule = f"{method}, " if method else ""
    return f"{'GNN' if algorithm == 'gnn' else 'k-reciprocal'} re-ranked ({rule}k1={k1}, k2={k2})"


SIDE_HELP = (
    "QUERY and GALLERY are bundles (.npz, .pt, .csv, .h5, .parquet) holding 'features' (n x d), 'ids' (n,), "
    "'cameras' (n,) and optionally 'modalities' (n,), or plain .npy feature files whose labels come from the "
    "--query-*/--gallery-* options (a .npy path, or one integer for the whole side). Array names, the same for "
    f"every command: {BUNDLE_HELP}."
)


@click.command("evaluate", help=f"""Score query/gallery retrieval: mAP, mINP and CMC (Rank-1/5/10/20), optionally ROC.

Distances come from the features (default: -q.g, the published VI-ReID test
scripts' choice) or from --distances. Protocols: 'sysu' drops camera-2 gallery
items for camera-3 queries and ranks distinct identities for CMC; 'regdb'
removes nothing; 'market' drops same-identity same-camera gallery items;
'llcm' (the LLCM authors' eval_llcm) drops those and ranks distinct
identities for CMC. Queries with no valid match are skipped and counted.

--roc adds the true-positive rate at false-positive rates 1e-4, 1e-3, 1e-2
and 1e-1 over all kept query/gallery pairs. --rerank both adds a row for the
k-reciprocal re-ranked distances (xmrank.rerank: modality-aware when
modalities are given; from the features, or from --distances with
--query-distances and --gallery-distances), so that a paper can report both;
with --algorithm gnn the row is GNN re-ranking (Zhang et al.) over the same
neighbour rule, and --algorithm k-reciprocal --algorithm gnn prints both rows.

{SIDE_HELP}

Examples:

\b
  xmrank evaluate query.npz gallery.npz --protocol sysu --json scores.json
  xmrank evaluate q.npz g.npz --distances reranked.npy --protocol regdb
  xmrank evaluate q.npz g.npz --rerank both --k1 auto --k2 auto --roc
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@click.option("--distances", type=click.Path(dir_okay=False), help="Query x gallery distance matrix (.npy, smaller = closer); replaces the features.")
@click.option("--query-distances", type=click.Path(dir_okay=False), help="Query x query distances (.npy), for --rerank both with --distances.")
@click.option("--gallery-distances", type=click.Path(dir_okay=False), help="Gallery x gallery distances (.npy), for --rerank both with --distances.")
@click.option("--query-ids", type=click.Path(dir_okay=False), help="Identity of each query row (.npy).")
@click.option("--gallery-ids", type=click.Path(dir_okay=False), help="Identity of each gallery row (.npy).")
@camera_options
@click.option("--query-modalities", callback=label_or_path, help="Modality of each query row (.npy), or one integer for all (re-ranking).")
@click.option("--gallery-modalities", callback=label_or_path, help="Modality of each gallery row (.npy), or one integer for all (re-ranking).")
@click.option("--protocol", type=PROTOCOL_CHOICE, default="sysu", show_default=True, help="Exclusion and CMC rules.")
@click.option("--metric", type=click.Choice(METRICS), default="inner", show_default=True, help="Distance between features: -q.g, 1 - cosine, or Euclidean.")
@click.option("--max-rank", type=click.IntRange(min=1), default=20, show_default=True, help="Length of the CMC curve.")
@click.option("--roc", is_flag=True, help="Also report TPR at FPR 1e-4, 1e-3, 1e-2, 1e-1.")
@click.option("--rerank", "rerank_mode", type=click.Choice(["none", "both"]), default="none", show_default=True,
              help="'both': one table with the scores without and with k-reciprocal re-ranking.")
@rerank_method_option(RERANK_METHODS)
@rerank_k_options
@click.option("--lambda", "lambda_value", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True, help="Re-ranking weight of the original distance.")
@algorithm_option(multiple=True)
@camera_weight_option()
@jobs_option("the re-ranking")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores (with the full CMC) to this JSON file.")
@user_errors
def evaluate_cmd(query, gallery, distances, query_distances, gallery_distances, query_ids, gallery_ids, query_cameras,
                 gallery_cameras, camera_spellings, query_modalities, gallery_modalities, protocol, metric,
                 max_rank, roc, rerank_mode, method, k1, k2, lambda_value, algorithm, camera_weight, n_jobs, json_path):
    if query is None or gallery is None:
        fail("give QUERY and GALLERY files (features and/or labels); see --help.")
    q_cam_opt, g_cam_opt = camera_spellings
    check_outputs([("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--distances", distances),
                          ("--query-distances", query_distances), ("--gallery-distances", gallery_distances),
                          ("--query-ids", query_ids), ("--gallery-ids", gallery_ids), (q_cam_opt, query_cameras),
                          (g_cam_opt, gallery_cameras), ("--query-modalities", query_modalities),
                          ("--gallery-modalities", gallery_modalities)],
                  stdout=("--json",))
    both = rerank_mode == "both"
    if not both:
        if tuple(algorithm) != ("k-reciprocal",) or camera_weight is not None:
            fail(f"{'--algorithm' if tuple(algorithm) != ('k-reciprocal',) else '--camera-weight'} is for re-ranking: "
                 "add --rerank both.")
        for option, value in (("--query-distances", query_distances), ("--gallery-distances", gallery_distances)):
            if value is not None:
                fail(f"{option} is for re-ranking: add --rerank both.")
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
        if both:
            if query_distances is None:
                fail("--rerank both with --distances needs --query-distances and --gallery-distances too "
                     "(or drop --distances to re-rank from the features).")
            QQ = load_distances(query_distances, "--query-distances", (D.shape[0], D.shape[0]))
            GG = load_distances(gallery_distances, "--gallery-distances", (D.shape[1], D.shape[1]))
    else:
        hint = "the {} file has no 'features' array; give features or --distances"
        Q = require(qa, "features", "query", hint.format("query"))
        G = require(ga, "features", "gallery", hint.format("gallery"))
        D = feature_distance(Q, G, metric)
    res = score(D, qa, ga, protocol, max_rank, roc)
    if not both:
        echo_report(format_table({"distance": res}, protocol), json_path)
        if json_path:
            write_json(json_path, result_json(res), "--json")
        return
    algorithms = tuple(dict.fromkeys(algorithm))  # each once, in the order given
    if camera_weight is not None and "gnn" not in algorithms:
        fail("--camera-weight weighs the GNN re-ranking's graph: add --algorithm gnn.")
    rows, results, first = {"without re-ranking": res}, {"without re-ranking": result_json(res)}, None
    for alg in algorithms:
        R, chosen = rerank_distances(
            qa, ga, None if distances is None else D, QQ, GG, method=method, k1=k1, k2=k2, lambda_value=lambda_value,
            n_jobs=n_jobs, camera_option=_spelling(q_cam_opt, g_cam_opt), algorithm=alg,
            camera_weight=camera_weight if alg == "gnn" else None)
        row = score(R, qa, ga, protocol, max_rank, roc)
        rows[rerank_row_name(alg, chosen["k1"], chosen["k2"], chosen["method"])] = row
        results.setdefault("re-ranked", result_json(row))  # the first algorithm's row, under its usual key
        if len(algorithms) > 1:
            results[f"re-ranked ({alg})"] = result_json(row)
        first = first or chosen
    echo_report(format_table(rows, protocol), json_path)
    if json_path:
        write_json(json_path, {"protocol": protocol,
                               "rerank": {"algorithm": algorithms[0] if len(algorithms) == 1 else list(algorithms),
                                          "method": first["method"], "method_requested": method, "k1": first["k1"],
                                          "k2": first["k2"], "lambda": lambda_value, "camera_weight": camera_weight},
                               "chosen": first,
                               "results": results},
                   "--json")
