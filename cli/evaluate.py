"""``xmrank evaluate``: mAP, mINP and CMC of query/gallery features or of a distance matrix.

Also home of the loading and table helpers that ``xmrank rerank`` shares.
"""

from __future__ import annotations

import os
import zipfile

import click
import numpy as np

from ._io import check_outputs, fail, load_array, user_errors, write_json

PROTOCOL_CHOICE = click.Choice(["sysu", "regdb", "market"])
METRICS = ("inner", "cosine", "euclidean")

#: Keys read from a QUERY/GALLERY .npz bundle (first present wins).
_KEYS = {"features": ("features",), "ids": ("ids", "pids", "labels"), "cams": ("cams", "cameras"), "modalities": ("modalities",)}


def load_side(path: str, side: str, overrides: dict) -> dict:
    """Arrays of one side: a .npz bundle (features, ids, cams, modalities) or a .npy feature file.

    ``overrides`` maps a field to a .npy/.npz path given on the command line
    (or to an int: one label for the whole side); those win over the bundle.
    """
    arrays = {}
    if path is not None:
        if not os.path.exists(path):
            fail(f"{side}: file not found: {path}")
        if path.endswith(".npz"):
            try:
                with np.load(path, allow_pickle=False) as npz:
                    for field, keys in _KEYS.items():
                        key = next((k for k in keys if k in npz.files), None)
                        if key is not None:
                            arrays[field] = npz[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                fail(f"{side}: cannot read {path} as a .npz array file ({exc.__class__.__name__}: {exc}).")
            if not arrays:
                fail(f"{side}: {path} holds none of the arrays features, ids, cams, modalities.")
        else:
            arrays["features"] = load_array(path, name=side)
    for field, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, int):
            arrays[field] = value
        else:
            arrays[field] = load_array(value, name=f"--{side}-{field}")
    return arrays


def label_or_path(ctx, param, value):
    """Click callback: an integer label for the whole side, or a path to an array file."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return value
    if not -(2**63) <= number < 2**63:
        raise click.BadParameter(f"one label for the whole side must fit in a 64-bit integer; got {value}.")
    return number


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


def score(distances, qa: dict, ga: dict, protocol: str, max_rank: int) -> dict:
    """:func:`xmrank.evaluate` on loaded arrays, with one-line errors for what is missing."""
    from xmrank.retrieval import evaluate

    hint = "add an 'ids' array to the .npz or pass --{}-ids IDS.npy"
    q_ids = require(qa, "ids", "query", hint.format("query"))
    g_ids = require(ga, "ids", "gallery", hint.format("gallery"))
    q_cams = side_labels(qa, "cams", distances.shape[0])
    g_cams = side_labels(ga, "cams", distances.shape[1])
    if protocol != "regdb":
        chint = "add a 'cams' array to the .npz or pass --{}-cams (protocol '" + protocol + "' needs cameras)"
        require(qa, "cams", "query", chint.format("query"))
        require(ga, "cams", "gallery", chint.format("gallery"))
    return evaluate(distances, q_ids, g_ids, q_cams, g_cams, protocol=protocol, max_rank=max_rank)


def format_table(rows: dict, protocol: str) -> str:
    """A plain-text table: one line per named result, mAP, mINP and Rank-1/5/10/20 in percent."""
    first = next(iter(rows.values()))
    ranks = [k for k in (1, 5, 10, 20) if k <= len(first["cmc"])]
    head = ["", "mAP", "mINP"] + [f"Rank-{k}" for k in ranks]
    width = max(8, max(len(name) for name in rows))
    lines = [
        f"protocol {protocol}: {first['n_queries']} queries ({first['n_skipped']} skipped: no valid match)",
        f"{head[0]:<{width}}" + "".join(f"{h:>9}" for h in head[1:]),
    ]
    for name, res in rows.items():
        vals = [res["mAP"], res["mINP"]] + [res["cmc"][k - 1] for k in ranks]
        lines.append(f"{name:<{width}}" + "".join(f"{100 * v:>9.2f}" for v in vals))
    return "\n".join(lines)


def result_json(res: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}


SIDE_HELP = (
    "QUERY and GALLERY are .npz files holding 'features' (n x d), 'ids' (n,), 'cams' (n,) "
    "and optionally 'modalities' (n,), or plain .npy feature files whose labels come from the "
    "--query-*/--gallery-* options (a .npy path, or one integer for the whole side)."
)


@click.command("evaluate", help=f"""Score query/gallery retrieval: mAP, mINP and CMC (Rank-1/5/10/20).

Distances come from the features (default: -q.g, the published VI-ReID test
scripts' choice) or from --distances. Protocols: 'sysu' drops camera-2 gallery
items for camera-3 queries and ranks distinct identities for CMC; 'regdb'
removes nothing; 'market' drops same-identity same-camera gallery items.
Queries with no valid match are skipped and counted.

{SIDE_HELP}

Examples:

\b
  xmrank evaluate query.npz gallery.npz --protocol sysu --json scores.json
  xmrank evaluate q.npz g.npz --distances reranked.npy --protocol regdb
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@click.option("--distances", type=click.Path(dir_okay=False), help="Query x gallery distance matrix (.npy, smaller = closer); replaces the features.")
@click.option("--query-ids", type=click.Path(dir_okay=False), help="Identity of each query row (.npy).")
@click.option("--gallery-ids", type=click.Path(dir_okay=False), help="Identity of each gallery row (.npy).")
@click.option("--query-cams", callback=label_or_path, help="Camera of each query row (.npy), or one integer for all.")
@click.option("--gallery-cams", callback=label_or_path, help="Camera of each gallery row (.npy), or one integer for all.")
@click.option("--protocol", type=PROTOCOL_CHOICE, default="sysu", show_default=True, help="Exclusion and CMC rules.")
@click.option("--metric", type=click.Choice(METRICS), default="inner", show_default=True, help="Distance between features: -q.g, 1 - cosine, or Euclidean.")
@click.option("--max-rank", type=click.IntRange(min=1), default=20, show_default=True, help="Length of the CMC curve.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the scores (with the full CMC) to this JSON file.")
@user_errors
def evaluate_cmd(query, gallery, distances, query_ids, gallery_ids, query_cams, gallery_cams, protocol, metric, max_rank, json_path):
    if query is None or gallery is None:
        fail("give QUERY and GALLERY files (features and/or labels); see --help.")
    check_outputs([("--json", json_path)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--distances", distances), ("--query-ids", query_ids),
                          ("--gallery-ids", gallery_ids), ("--query-cams", query_cams), ("--gallery-cams", gallery_cams)])
    qa = load_side(query, "query", {"ids": query_ids, "cams": query_cams})
    ga = load_side(gallery, "gallery", {"ids": gallery_ids, "cams": gallery_cams})
    if distances is not None:
        D = load_array(distances, name="--distances")
        if D.ndim != 2:
            fail(f"--distances must be a 2-D query x gallery matrix; got an array of shape {D.shape}.")
        if D.dtype.kind not in "biuf":
            fail(f"--distances must hold real numbers; got dtype {D.dtype}.")
        if not np.isfinite(D).all():
            fail(f"--distances holds {int((~np.isfinite(D)).sum())} NaN or infinite value(s).")
        for side, arrays, n in (("query", qa, D.shape[0]), ("gallery", ga, D.shape[1])):
            for field in ("ids", "cams"):
                labels = arrays.get(field)
                if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.shape[0] != n:
                    fail(f"--distances is {D.shape[0]} x {D.shape[1]}, but the {side} {field} must have one entry per "
                         f"{'row' if side == 'query' else 'column'} of it; got {labels.shape[0]}.")
    else:
        hint = "the {} file has no 'features' array; give features or --distances"
        D = feature_distance(require(qa, "features", "query", hint.format("query")),
                             require(ga, "features", "gallery", hint.format("gallery")), metric)
    res = score(D, qa, ga, protocol, max_rank)
    click.echo(format_table({"distance": res}, protocol))
    if json_path:
        write_json(json_path, result_json(res), "--json")
