"""Ranked-list pictures: sample queries and their top-k gallery items, matches framed in one colour.

matplotlib is optional (``pip install 'xmrank[plot]'``); it is imported only
when a figure is drawn, and figures are built with
:class:`matplotlib.figure.Figure` directly (no pyplot state, no GUI backend).
Images are read with Pillow (a matplotlib dependency) and shown as they are:
a single-channel infrared image in grey, a colour image in colour.
"""

from __future__ import annotations

import os

import numpy as np

from .._params import DEFAULTS as _D
from .._params import resolve_protocol
from .._validation import InputError, check_int, check_seed
from .metrics import _check_distmat, _encode_ids, _masks, _check_1d

__all__ = ["plot_ranked_lists", "MATCH_COLOR", "MISMATCH_COLOR"]

#: Frame of a gallery item of the query's identity.
MATCH_COLOR = "#2ca02c"
#: Frame of a gallery item of another identity.
MISMATCH_COLOR = "#d62728"
_QUERY_COLOR = "#1f4e9c"
_THUMB = (64, 128)  # width, height of a thumbnail (person crops are about 1:2)


def plot_ranked_lists(
    distmat,
    query_ids,
    gallery_ids,
    *,
    query_paths=None,
    gallery_paths=None,
    images_root=None,
    query_cameras=None,
    gallery_cameras=None,
    protocol: str = _D["protocol"],
    queries=5,
    top_k: int = 10,
    seed: int = 0,
):
    """Draw each sampled query beside its ``top_k`` nearest gallery items.

    Parameters
    ----------
    distmat : array-like of shape (n_query, n_gallery)
        Smaller is closer.
    query_ids, gallery_ids : array-like
        Identities; a gallery item of the query's identity is framed in
        :data:`MATCH_COLOR`, any other in :data:`MISMATCH_COLOR`.
    query_paths, gallery_paths : sequence of str, default=None
        Image file of each row, relative to ``images_root`` (or absolute).
        A side without paths is drawn as a grid of identity labels.
    images_root : str, default=None
        Folder the relative paths start from (default: as given).
    query_cameras, gallery_cameras : array-like, default=None
        Cameras, for the gallery items a protocol removes.
    protocol : {"sysu", "regdb", "market", "llcm"} or None, default=None
        Items removed before ranking, as :func:`xmrank.evaluate` removes them
        ("regdb": none; None: "regdb" without cameras, required with them).
    queries : int or sequence of int, default=5
        How many queries to draw at random (``seed``), or which (row indices).
    top_k : int, default=10
    seed : int, default=0

    Returns
    -------
    figure : matplotlib.figure.Figure
        One row per query: the query (framed in blue), then its ranked list,
        each titled with identity, rank and distance.
    """
    from ..diagnostics.plots import require_matplotlib

    Figure = require_matplotlib()
    D = _check_distmat(distmat)
    nq, ng = D.shape
    protocol = resolve_protocol(protocol, query_cameras, gallery_cameras)
    q_ids, g_ids = _encode_ids(query_ids, gallery_ids, nq, ng)
    q_show = _check_1d(query_ids, nq, "query_ids", "row of distmat")
    g_show = _check_1d(gallery_ids, ng, "gallery_ids", "column of distmat")
    q_cam = g_cam = None
    if protocol != "regdb":
        if query_cameras is None or gallery_cameras is None:
            raise InputError(f"protocol={protocol!r} needs query_cameras and gallery_cameras.")
        q_cam = _check_1d(query_cameras, nq, "query_cameras", "row of distmat")
        g_cam = _check_1d(gallery_cameras, ng, "gallery_cameras", "column of distmat")
    top_k = check_int(top_k, "top_k", minimum=1)
    rows = _pick_queries(queries, nq, check_seed(seed, generator=False))
    q_paths = _paths(query_paths, nq, "query_paths", images_root)
    g_paths = _paths(gallery_paths, ng, "gallery_paths", images_root)

    lists = []
    for i in rows:
        match, keep = _masks(q_ids[i:i + 1], g_ids, None if q_cam is None else q_cam[i:i + 1], g_cam, protocol)
        cols = np.flatnonzero(keep[0])
        order = cols[np.argsort(D[i, cols], kind="stable")][:top_k]
        lists.append((order, match[0, order]))
    width = 1 + max(len(o) for o, _ in lists)
    fig = Figure(figsize=(1.15 * width, 2.25 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), width, squeeze=False)
    for r, (i, (order, is_match)) in enumerate(zip(rows, lists)):
        _cell(axes[r, 0], q_paths, i, f"query\nid {q_show[i]}", f"id\n{q_show[i]}", _QUERY_COLOR, width=4)
        for c in range(1, width):
            ax = axes[r, c]
            if c - 1 >= len(order):
                ax.set_axis_off()
                continue
            j = order[c - 1]
            color = MATCH_COLOR if is_match[c - 1] else MISMATCH_COLOR
            _cell(ax, g_paths, j, f"#{c} id {g_show[j]}\n{D[i, j]:.3g}", f"id\n{g_show[j]}", color, width=3)
    fig.suptitle(f"top-{top_k} gallery items per query: green = same identity, red = other identity",
                 fontsize="medium")
    return fig


def _pick_queries(queries, nq, seed):
    if isinstance(queries, (int, np.integer)) and not isinstance(queries, bool):
        n = check_int(queries, "queries", minimum=1)
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(nq, size=min(n, nq), replace=False).tolist())
    try:
        rows = [check_int(q, "queries entry", minimum=0, maximum=nq - 1) for q in queries]
    except TypeError:
        raise InputError(f"queries must be a count or a list of query row indices; got {type(queries).__name__}.") from None
    if not rows:
        raise InputError("queries must name at least one query row.")
    return rows


def _paths(paths, n, name, root):
    if paths is None:
        return None
    arr = np.asarray(paths)
    if arr.ndim != 1 or arr.shape[0] != n or arr.dtype.kind not in "US":
        raise InputError(f"{name} must list one image path (a string) per row ({n}); got shape {arr.shape}, "
                         f"dtype {arr.dtype}.")
    out = [str(p) for p in arr]
    if root is not None:
        out = [p if os.path.isabs(p) else os.path.join(os.fspath(root), p) for p in out]
    return out


def _load(path):
    from ..datasets.images import open_image

    if not os.path.isfile(path):
        raise InputError(f"image not found: {path}")
    with open_image(path) as im:  # unreadable files and decompression bombs: one line naming the file
        im.load()
        grey = im.mode in ("L", "LA", "I", "I;16", "F", "1")
        im = im.convert("L" if grey else "RGB")
        im.thumbnail(_THUMB)
        return np.asarray(im), grey


def _cell(ax, paths, index, title, label, color, *, width):
    """One framed panel: the row's image, or (no paths) its identity written in the middle."""
    ax.set_xticks([])
    ax.set_yticks([])
    if paths is not None:
        pixels, grey = _load(paths[index])
        ax.imshow(pixels, cmap="gray" if grey else None, vmin=0, vmax=255, aspect="auto")
    else:
        ax.set_facecolor("#f4f4f4")
        ax.text(0.5, 0.5, label, ha="center", va="center", fontsize="medium", color=color, transform=ax.transAxes)
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)
    ax.set_title(title, fontsize="x-small", color=color)
