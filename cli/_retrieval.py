"""What ``xmrank evaluate``, ``rerank``, ``visrank`` and ``tune rerank`` share: query and gallery sides, distances,
scores under a protocol that fits the data, the table, and re-ranking of loaded inputs.

The commands import this helper, never each other.
"""

from __future__ import annotations

import logging

import numpy as np

from xmrank._params import PROTOCOLS

from ._bundle import BUNDLE_HELP
from ._io import fail, load_array

logger = logging.getLogger(__name__)

__all__ = ["SIDE_HELP", "check_protocol", "check_side_lengths", "feature_distance", "format_table", "labels_pair",
           "load_distances", "rerank_distances", "rerank_row_name", "require", "result_json", "score", "side_labels"]

#: The neighbour rules that read modalities, and those that read cameras.
_NEED_MODALITIES = ("modality", "modality-qe", "modality-camera")
_NEED_CAMERAS = ("camera", "modality-camera")
#: SYSU-MM01's camera numbers.
_SYSU_CAMERAS = frozenset(range(1, 7))

SIDE_HELP = (
    "QUERY and GALLERY are bundles (.npz, .pt, .csv, .h5, .parquet) holding 'features' (n x d), 'ids' (n,), "
    "'cameras' (n,) and optionally 'modalities' (n,), or plain .npy feature files whose labels come from the "
    "--query-*/--gallery-* options (an array file, or one integer for the whole side). Array names, the same for "
    f"every command: {BUNDLE_HELP}."
)

_D_ROWS = {"query": "row", "gallery": "column"}


def require(arrays: dict, field: str, side: str, hint: str):
    """``arrays[field]``, or one line: ``side: no field: hint``."""
    if arrays.get(field) is None:
        fail(f"{side}: no {field}: {hint}")
    return arrays[field]


def side_labels(arrays: dict, field: str, n: int):
    """A per-row label array for ``field``, expanding an integer given for the whole side."""
    value = arrays.get(field)
    if isinstance(value, int):
        return np.full(n, value, dtype=np.int64)
    return value


def labels_pair(qa: dict, ga: dict, field: str, nq: int, ng: int, spellings: dict):
    """The query and gallery labels of ``field`` ("modalities", "cameras"): both, or (None, None).

    Labels on one side only are one line naming the two options as the user
    spelled them (``spellings``: ``{dest: option}``, from
    :func:`._options.aliases`).
    """
    q, g = side_labels(qa, field, nq), side_labels(ga, field, ng)
    if (q is None) != (g is None):
        q_opt = spellings.get(f"query_{field}", f"--query-{field}")
        g_opt = spellings.get(f"gallery_{field}", f"--gallery-{field}")
        if field == "cameras" and "-cams" in q_opt + g_opt:  # the older spelling typed: name both in it
            q_opt, g_opt = "--query-cams", "--gallery-cams"
        given = "query" if g is None else "gallery"
        fail(f"{q_opt} and {g_opt} go together ('{field}' arrays in both files, or both options): {field} were "
             f"given for the {given} side only.")
    return q, g


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


def _camera_set(cams) -> set:
    return set(np.unique(np.asarray(cams)).tolist())


def check_protocol(protocol, q_cams, g_cams, spellings: dict | None = None) -> str:
    """The rules to apply (``--protocol``, or its default), refused where the data cannot bear them.

    Without ``--protocol``: ``regdb`` for rows without cameras (the one rule
    that reads none); rows with cameras must say which rules apply. ``sysu``
    drops camera-2 gallery items for camera-3 queries: it needs SYSU-MM01's
    camera numbers (1-6), and queries and gallery from different cameras
    (infrared against visible). ``regdb`` drops nothing: it assumes queries
    and gallery from different cameras (visible against thermal); cameras
    shared by the two sides would leave each query's same-camera shots of its
    identity, which ``market`` drops, in the ranking. ``sysu``, ``market``
    and ``llcm`` need cameras.
    """
    from xmrank._params import resolve_protocol
    from xmrank._validation import InputError

    spellings = spellings or {}
    q_opt = spellings.get("query_cameras", "--query-cameras")
    g_opt = spellings.get("gallery_cameras", "--gallery-cameras")
    try:
        protocol = resolve_protocol(protocol, q_cams, g_cams, "--protocol")
    except InputError as exc:
        fail(str(exc))
    if protocol != "regdb":
        for side, cams, opt in (("query", q_cams, q_opt), ("gallery", g_cams, g_opt)):
            if cams is None:
                fail(f"{side}: no cameras: --protocol {protocol} ({PROTOCOLS[protocol]}) needs the camera of each "
                     f"row: a 'cameras' array in the file or {opt}; for data without cameras give --protocol "
                     "regdb (nothing dropped).")
    if q_cams is None or g_cams is None:
        return protocol
    q_set, g_set = _camera_set(q_cams), _camera_set(g_cams)
    shared = sorted(q_set & g_set, key=str)
    if protocol == "sysu":
        outside = sorted((q_set | g_set) - _SYSU_CAMERAS, key=str)
        if outside:
            fail(f"--protocol sysu applies SYSU-MM01's rules, which read its camera numbers 1-6; these cameras "
                 f"include {', '.join(map(str, outside[:5]))}: give --protocol market (same-identity gallery items "
                 "of the query's camera dropped) or regdb (nothing dropped).")
        if shared:
            fail(f"--protocol sysu scores SYSU-MM01's cross-modality test (infrared queries against a visible "
                 f"gallery); here query and gallery share camera(s) {', '.join(map(str, shared[:5]))}: give "
                 "--protocol market, which drops a query's same-camera matches.")
    if protocol == "regdb" and shared:
        fail(f"--protocol regdb drops nothing: it assumes queries and gallery from different cameras (RegDB: "
             f"visible against thermal); here they share camera(s) {', '.join(map(str, shared[:5]))}: give "
             f"--protocol market (a query's same-camera matches dropped), or leave out {q_opt}/{g_opt}.")
    return protocol


def score(distances, qa: dict, ga: dict, protocol: str, max_rank: int, roc: bool = False, spellings=None) -> dict:
    """:func:`xmrank.evaluate` on loaded arrays, with one-line errors for what is missing or does not fit."""
    from xmrank.retrieval import evaluate

    hint = "add an 'ids' array to the file or pass --{}-ids"
    q_ids = require(qa, "ids", "query", hint.format("query"))
    g_ids = require(ga, "ids", "gallery", hint.format("gallery"))
    q_cams = side_labels(qa, "cameras", distances.shape[0])
    g_cams = side_labels(ga, "cameras", distances.shape[1])
    protocol = check_protocol(protocol, q_cams, g_cams, spellings)
    return evaluate(distances, q_ids, g_ids, q_cams, g_cams, protocol=protocol, max_rank=max_rank, roc=roc)


def format_table(rows: dict) -> str:
    """A plain-text table: one line per named result, mAP, mINP, Rank-1/5/10/20 (and TPR@FPR) in percent.

    The first line says which protocol was applied (the results') and what its rules are.
    """
    first = next(iter(rows.values()))
    protocol = first["protocol"]
    ranks = [k for k in (1, 5, 10, 20) if k <= len(first["cmc"])]
    fprs = list(first.get("roc_fpr", []))
    head = ["", "mAP", "mINP"] + [f"Rank-{k}" for k in ranks] + [f"TPR@{f:.0e}" for f in fprs]
    width = max(8, max(len(name) for name in rows))
    lines = [
        f"protocol {protocol} ({PROTOCOLS[protocol]}): {first['n_queries']} queries ({first['n_skipped']} "
        "skipped: no valid match)",
        f"{head[0]:<{width}}" + "".join(f"{h:>{max(9, len(h) + 1)}}" for h in head[1:]),
    ]
    for name, res in rows.items():
        vals = [res["mAP"], res["mINP"]] + [res["cmc"][k - 1] for k in ranks] + list(res.get("roc_tpr", []))
        lines.append(f"{name:<{width}}" + "".join(f"{100 * v:>{max(9, len(h) + 1)}.2f}" for v, h in zip(vals, head[1:])))
    return "\n".join(lines)


def result_json(res: dict) -> dict:
    """An :func:`xmrank.evaluate` result with arrays as lists."""
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
    rows = _D_ROWS[side]
    for field in ("ids", "cameras", "modalities", "names"):
        labels = arrays.get(field)
        if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.shape[0] != n:
            fail(f"{what} has {n} {rows}s, but the {side} {field} must have one entry per {rows} of it; "
                 f"got {labels.shape[0]}.")


def rerank_distances(qa, ga, D, QQ, GG, *, method, k1, k2, lambda_value, normalize="gallery", knn="auto",
                     n_jobs=-1, spellings=None, algorithm="k-reciprocal", camera_weight=None):
    """``xmrank.rerank`` of loaded inputs: features when both sides have them, else the three distance matrices.

    ``spellings`` maps an option's dest to the spelling the user typed
    (``--query-cams`` for ``query_cameras``), for messages. Returns the
    re-ranked distances and ``chosen``: the method, k1, k2 and λ used
    (resolved when "auto") with the measurements behind them
    (``xmrank.rerank(..., return_chosen=True)``).
    """
    from xmrank.retrieval import rerank

    spellings = spellings or {}
    q_n = D.shape[0] if D is not None else len(qa["features"])
    g_n = D.shape[1] if D is not None else len(ga["features"])
    q_mod, g_mod = labels_pair(qa, ga, "modalities", q_n, g_n, spellings)
    q_cam, g_cam = labels_pair(qa, ga, "cameras", q_n, g_n, spellings)
    cam_opts = (f"{spellings.get('query_cameras', '--query-cameras')}/"
                f"{spellings.get('gallery_cameras', '--gallery-cameras')}")
    if method in _NEED_MODALITIES and q_mod is None:
        fail(f"--method {method} needs modalities for both sides: 'modalities' arrays or --query-modalities/"
             "--gallery-modalities.")
    if method in _NEED_CAMERAS and q_cam is None:
        fail(f"--method {method} needs cameras for both sides: 'cameras' arrays or {cam_opts}.")
    if camera_weight is not None and q_cam is None:
        fail(f"--camera-weight needs cameras for both sides: 'cameras' arrays or {cam_opts}.")
    use_mod = method in ("auto",) + _NEED_MODALITIES and q_mod is not None
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
            logger.info("re-ranking 'auto': %s", sentence)
    return R, chosen


def rerank_row_name(algorithm: str, k1, k2, method: str | None = None) -> str:
    """The table row of re-ranked distances: which algorithm, neighbour rule and list lengths."""
    rule = f"{method}, " if method else ""
    return f"{'GNN' if algorithm == 'gnn' else 'k-reciprocal'} re-ranked ({rule}k1={k1}, k2={k2})"
