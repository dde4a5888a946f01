"""``xmrank visrank``: pictures of ranked lists (query, then its top-k gallery items, matches framed green)."""

from __future__ import annotations

import os

import click

from ._bundle import BUNDLE_HELP, load_side
from ._io import atomic_path, check_outputs, fail, user_errors
from ._options import aliases, option, options
from ._retrieval import check_protocol, check_side_lengths, feature_distance, load_distances, require, side_labels

_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


@click.command("visrank", help=f"""Draw ranked lists: for sample queries, the query and its top-k gallery items.

Each row shows a query (blue frame) and its nearest gallery items in order,
framed green when they share the query's identity and red when not, titled
with the rank, identity and distance. Images come from a 'paths' (or
'names') array in each .npz (paths relative to --images-root, or absolute) and are shown as
they are: infrared (single-channel) images in grey beside colour ones. A side
without paths is drawn as a grid of identity labels.

QUERY and GALLERY are bundles (.npz, ...) holding 'ids' (n,), optionally
'features' (n x d; used when --distances is not given), 'paths' (n,) and
'cameras' (n,); the array names are those of every command: {BUNDLE_HELP}.

Example:

\b
  xmrank visrank query.npz gallery.npz --distances reranked.npy \\
      --images-root /data/SYSU-MM01 -o ranks.png --queries 6
""")
@click.argument("query", required=False, type=click.Path(dir_okay=False))
@click.argument("gallery", required=False, type=click.Path(dir_okay=False))
@aliases
@option("output", more="The picture (.png, .pdf, .svg, .jpg).")
@option("distances")
@click.option("--images-root", type=click.Path(file_okay=False), help="Folder the 'paths' are relative to.")
@click.option("--queries", type=click.IntRange(min=1), default=5, show_default=True, help="Number of queries drawn at random.")
@click.option("--top-k", type=click.IntRange(min=1, max=50), default=10, show_default=True, help="Gallery items per query.")
@option("seed", more="The seed of the query draw.")
@options("query_ids", "gallery_ids", "query_cameras", "gallery_cameras")
@option("protocol", more="Here: the gallery items removed before ranking.")
@option("metric", more="Used without --distances.")
@user_errors
def visrank_cmd(query, gallery, output, distances, images_root, queries, top_k, seed, query_ids, gallery_ids,
                query_cameras, gallery_cameras, protocol, metric, spellings):
    q_cam_opt, g_cam_opt = spellings["query_cameras"], spellings["gallery_cameras"]
    if query is None or gallery is None:
        fail("give QUERY and GALLERY .npz files (ids, and features or --distances); see --help.")
    if output is None:
        fail("give -o/--output: the picture to write (.png, .pdf, .svg or .jpg).")
    if not output.lower().endswith(_FORMATS):
        fail(f"--output {output}: the file name must end with {', '.join(_FORMATS)}.")
    if images_root is not None and not os.path.isdir(images_root):
        fail(f"--images-root {images_root} is not a folder.")
    check_outputs([("--output", output)],
                  inputs=[("QUERY", query), ("GALLERY", gallery), ("--distances", distances),
                          ("--query-ids", query_ids), ("--gallery-ids", gallery_ids), (q_cam_opt, query_cameras),
                          (g_cam_opt, gallery_cameras)],
                  roots=[("--images-root", images_root)])
    try:
        from xmrank.diagnostics.plots import require_matplotlib

        require_matplotlib()
    except ImportError:
        fail("visrank needs matplotlib: pip install 'xmrank[plot]'")
    from xmrank.retrieval.visualize import plot_ranked_lists

    qa = load_side(query, "query", {"ids": query_ids, "cameras": query_cameras}, {"cameras": q_cam_opt})
    ga = load_side(gallery, "gallery", {"ids": gallery_ids, "cameras": gallery_cameras}, {"cameras": g_cam_opt})
    if distances is not None:
        D = load_distances(distances, "--distances")
        check_side_lengths(qa, "query", D.shape[0], "--distances")
        check_side_lengths(ga, "gallery", D.shape[1], "--distances")
    else:
        hint = "the {} file has no 'features' array; give features or --distances"
        D = feature_distance(require(qa, "features", "query", hint.format("query")),
                             require(ga, "features", "gallery", hint.format("gallery")), metric)
    hint = "add an 'ids' array to the .npz or pass --{}-ids IDS.npy"
    q_ids = require(qa, "ids", "query", hint.format("query"))
    g_ids = require(ga, "ids", "gallery", hint.format("gallery"))
    q_cams, g_cams = side_labels(qa, "cameras", D.shape[0]), side_labels(ga, "cameras", D.shape[1])
    protocol = check_protocol(protocol, q_cams, g_cams, spellings)
    for side, arrays in (("query", qa), ("gallery", ga)):
        paths = arrays.get("names")
        if paths is not None and paths.dtype.kind not in "US":
            fail(f"{side}: the 'paths' array must hold strings (image paths); got dtype {paths.dtype}.")
    fig = plot_ranked_lists(
        D, q_ids, g_ids, query_paths=qa.get("names"), gallery_paths=ga.get("names"), images_root=images_root,
        query_cameras=q_cams, gallery_cameras=g_cams,
        protocol=protocol, queries=queries, top_k=top_k, seed=seed,
    )
    fmt = os.path.splitext(output)[1].lower().lstrip(".")
    with atomic_path(output, "--output") as tmp:
        fig.savefig(tmp, format="jpeg" if fmt == "jpg" else fmt, dpi=110)
    has_images = qa.get("names") is not None or ga.get("names") is not None
    click.echo(f"wrote {output}: {min(queries, D.shape[0])} queries x top-{min(top_k, D.shape[1])}"
               f"{'' if has_images else ' (identity grid: no paths arrays)'}")
