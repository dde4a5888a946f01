"""``xmrank make-synthetic ROOT``: write the synthetic visible/infrared image set."""

from __future__ import annotations

import click

from ._io import fail, user_errors
from ._options import option


@click.command("make-synthetic")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--train-ids", default=32, show_default=True, type=int, help="Identities in exp/train_id.txt.")
@click.option("--val-ids", default=4, show_default=True, type=int, help="Identities in exp/val_id.txt (also used for training).")
@click.option("--test-ids", default=16, show_default=True, type=int, help="Identities in exp/test_id.txt.")
@click.option("--images-per-camera", default=4, show_default=True, type=int,
              help="Images of each identity in each of the 6 cameras (4 visible, 2 infrared).")
@click.option("--height", default=128, show_default=True, type=int, help="Image height in pixels.")
@click.option("--width", default=64, show_default=True, type=int, help="Image width in pixels.")
@option("seed", more="The set is a deterministic function of the options.")
@click.option("--overwrite", is_flag=True, help="Replace a synthetic set (or one cut short) already at ROOT.")
@user_errors
def make_synthetic_cmd(root, train_ids, val_ids, test_ids, images_per_camera, height, width, seed, overwrite):
    """Write procedurally drawn visible/infrared "people" to ROOT in SYSU-MM01 layout.

    ROOT gets cam1..cam6/PPPP/NNNN.jpg (cameras 1, 2, 4, 5 visible, 3 and 6
    infrared) and exp/{train,val,test}_id.txt, so every SYSU-MM01 reader and
    `xmrank train --dataset synthetic --root ROOT` can use it. Needs numpy
    and pillow only. The default set (52 identities, 1,248 images) takes a
    few seconds.
    """
    try:
        import PIL.Image  # noqa: F401  (checked first: nothing is written without it)
    except ImportError:
        fail("make-synthetic needs pillow, which is not installed: pip install 'xmrank[torch]' "
             "(or only the image library: pip install pillow).")
    from xmrank.datasets import make_synthetic

    try:
        summary = make_synthetic(root, n_train_ids=train_ids, n_val_ids=val_ids, n_test_ids=test_ids,
                                 images_per_camera=images_per_camera, height=height, width=width, seed=seed,
                                 overwrite=overwrite)
    except OSError as exc:
        fail(f"ROOT {root}: cannot write the set ({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}).")
    n = summary["images"]
    click.echo(
        f"wrote {n['visible']} visible and {n['infrared']} infrared images of "
        f"{train_ids + val_ids} training and {test_ids} test identities to {root}"
    )
