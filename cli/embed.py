"""``xmrank embed``: features of a data set's images from a checkpoint, as an .npz bundle (needs xmrank[torch])."""

from __future__ import annotations

import os

import click
import numpy as np

from ._io import check_output, fail, user_errors, write_atomic
from ._model import check_checkpoint, load_network, network_options, require_torch, resolve_device_option
from ._options import option

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cli/train.py: no spinning OpenMP threads

_HELP = """Embed a data set's images with a checkpoint and save the features as FEATS.npz.

\b
The bundle holds, one row per image:
  features    float32 (n, d), flip-averaged and L2-normalised
  modalities  int64, 0 = visible, 1 = infrared
  cameras     int64 (SYSU-MM01 1-6; RegDB and folder: 1 visible, 2 infrared)
  ids         int64 identities (not with --dataset folder: it has none)
  paths       the image files
which `xmrank cluster`, `diagnose`, `rerank` and `evaluate` read as they are.

\b
--dataset sysu (or synthetic): --split train (train + val ids), test (test ids, every
camera) or all. --dataset regdb: the idx/ lists of --trial, visible then
thermal. --dataset folder: every image under ROOT/visible and ROOT/infrared.
--modality keeps one modality only (e.g. an infrared query file and a
visible gallery file for `xmrank evaluate`).
"""

_EPILOG = """\b
Examples:
  xmrank embed --checkpoint runs/sysu/model.pt --root data/SYSU-MM01 -o train.npz
  xmrank cluster train.npz -o labels.npy && xmrank diagnose train.npz
  xmrank embed --checkpoint m.pt --root data/SYSU-MM01 --split test --modality infrared -o q.npz
  xmrank embed --checkpoint m.pt --root data/SYSU-MM01 --split test --modality visible -o g.npz
  xmrank evaluate q.npz g.npz --protocol sysu
  xmrank embed --checkpoint m.pt --dataset folder --root my_images -o feats.npz
"""


def _records(dataset: str, root: str, split: str, trial: int):
    from xmrank.datasets import regdb_records, sysu_test_records, sysu_train_records
    from xmrank.torch.data import folder_records

    if dataset == "folder":
        return folder_records(root)
    if dataset == "sysu":
        parts = {"train": [sysu_train_records], "test": [sysu_test_records],
                 "all": [sysu_train_records, sysu_test_records]}[split]
        return [r for read in parts for r in read(root)]
    splits = ["train", "test"] if split == "all" else [split]
    return [r for s in splits for m in ("visible", "thermal")
            for r in regdb_records(root, split=s, trial=trial, modality=m)]


@click.command("embed", help=_HELP, epilog=_EPILOG)
@option("checkpoint", required=True)
@option("root", required=True)
@option("output", required=True, more="The bundle, FEATS.npz.")
@option("dataset")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default=None,
              help="Images of sysu and regdb: train (default), test or all.")
@option("trial", more="RegDB: the one split whose lists are read.")
@click.option("--modality", type=click.Choice(["all", "visible", "infrared"]), default="all", show_default=True,
              help="Keep the images of one modality only.")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Average each image's features with its mirror image's.")
@network_options
@user_errors
def embed_cmd(checkpoint, root, output, dataset, split, trial, modality, flip, device, batch_size, num_workers,
              height, width, progress):
    # ---- every check on the arguments before any work
    if dataset == "folder" and split is not None:
        fail("--split is not used with --dataset folder: every image under ROOT/visible and ROOT/infrared is embedded.")
    if dataset != "regdb" and trial is not None:
        fail("--trial is a RegDB option.")
    if trial is not None and len(trial) > 1:
        fail(f"--trial: embed reads one RegDB split's lists; got {len(trial)} trials.")
    dataset = "sysu" if dataset == "synthetic" else dataset  # the synthetic set has SYSU-MM01's layout
    split, trial = split or "train", (trial or [1])[0]
    check_checkpoint(checkpoint)
    if not os.path.isdir(root):
        fail(f"--root {root}: not a directory.")
    check_output(output, "-o/--output", inputs=[("--checkpoint", checkpoint)], roots=[("--root", root)],
                 suffix=".npz")
    require_torch()
    from xmrank.datasets import records_to_arrays
    from xmrank.torch.features import extract_features

    records = _records(dataset, root, split, trial)
    if modality != "all":
        code = 0 if modality == "visible" else 1
        records = [r for r in records if r.modality == code]
        if not records:
            fail(f"--modality {modality}: the {dataset} {split} images hold no {modality} image.")
    dev = resolve_device_option(device)
    model, cfg = load_network(checkpoint, dev)
    feats = extract_features(model, records, height=height or cfg.height, width=width or cfg.width,
                             batch_size=batch_size, flip=flip,
                             device=dev, num_workers=num_workers, progress=progress, desc="embed")
    arrays = records_to_arrays(records)
    bundle = {"features": feats.astype(np.float32, copy=False), "modalities": arrays["modalities"],
              "cameras": arrays["cams"], "paths": arrays["paths"]}
    if dataset != "folder":
        bundle["ids"] = arrays["pids"]
    write_atomic(output, "-o/--output", lambda fh: np.savez(fh, **bundle))
    counts = np.bincount(arrays["modalities"], minlength=2)
    click.echo(f"{len(records)} images ({counts[0]} visible, {counts[1]} infrared) -> features "
               f"{feats.shape[0]} x {feats.shape[1]} written to {output}")
