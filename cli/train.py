"""``xmrank train``: the two-stage unsupervised visible-infrared ReID pipeline (needs xmrank[torch])."""

from __future__ import annotations

import logging
import os

import click

from ._io import check_outside_roots, fail, user_errors
from ._options import option

# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning
# threads make small-image training several times slower. Set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EPILOG = """\b
Examples:
  xmrank train --dataset synthetic --output runs/smoke --preset smoke
  xmrank train --dataset sysu --root data/SYSU-MM01 --output runs/sysu --device cuda --amp --num-workers 8
  xmrank train --dataset regdb --root data/RegDB --output runs/regdb --set regdb_trial=3
  xmrank train --dataset folder --root my_data --output runs/mine --set eps_intra=0.5
  xmrank train --output runs/sysu --resume
\b
Every field of the configuration can be set in the YAML file or with --set
(for example --set lr=3.5e-4 --set non_local=0,2,3,0); --show-config prints
them all with their values (xmrank train --preset smoke --show-config). Writes RUN/metrics.json, RUN/train.log, RUN/checkpoint.pt (each
epoch), RUN/stage1_model.pt and RUN/model.pt. The weights kept are each
stage's last epoch: the test set is never used to choose them.
"""


@click.command("train", epilog=_EPILOG)
@option("dataset", more="Training data; with --resume, the run's own.")
@option("root", more="For synthetic: generated there if missing (default RUN/synthetic).")
@option("output_folder", more="Required to train.")
@click.option("--preset", type=click.Choice(["paper", "smoke"]), default=None,
              help="paper (default): the published recipe (ResNet-50 + AGW, GPU); smoke: a small CPU run for "
                   "the synthetic set. With --dataset regdb, paper is the published RegDB recipe.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML file of field: value pairs applied over the preset.")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Override one config field (repeatable); applied after --config. With --resume only "
                   "device, threads, num_workers, cache_images, feature_batch_size and cluster_device.")
@option("device", more="Given here it sets the config's device; else the config's (auto unless it says otherwise).")
@click.option("--pretrained", default=None,
              help="ImageNet weights: 'imagenet' (torchvision download), 'none', or PATH to a .pth state dict.")
@option("seed", more="Given here it sets the config's seed; else the config's.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN from its last checkpoint, with its configuration.")
@option("num_workers", more="Given here it sets the config's (allowed with --resume: results do not depend on it).")
@click.option("--amp/--no-amp", default=None,
              help="Mixed precision on CUDA (bfloat16 where supported, else float16) for the training forward "
                   "passes; no effect on the CPU (default: the config's, off).")
@click.option("--max-epochs", type=click.IntRange(min=0), default=None,
              help="Stop after this many epochs (resume later with --resume).")
@option("progress")
@click.option("--quiet", "-q", is_flag=True, help="Log warnings only (per-epoch lines still go to RUN/train.log).")
@click.option("--show-config", is_flag=True, help="Print the resolved configuration as YAML and exit.")
@user_errors
def train_cmd(dataset, root, output, preset, config_path, overrides, device, pretrained, seed, resume, num_workers, amp,
              max_epochs, progress, quiet, show_config):
    """Train the two-stage unsupervised VI-ReID pipeline and evaluate it.

    Stage 1 clusters each modality alone (subset clustering of the larger
    one) and trains the intra-modality loss; stage 2 adds global clustering
    with the modality-aware Jaccard and the split-and-contrast loss. Each
    epoch logs the clusters, noise share and mixed-modality share.
    RUN/metrics.json holds the "untrained", "stage1" and "final" test scores
    (mAP, rank1, ...; fractions) on labelled data sets.
    """
    try:
        from xmrank.torch.config import build_config, parse_overrides
        from xmrank.torch.pipeline import train
    except ImportError as exc:
        fail(str(exc).splitlines()[0])

    # --dataset, --device, --seed and --num-workers have the declared defaults of every command (the config's
    # too); only a value given here overrides the preset, the YAML file or a resumed run's configuration
    source = click.get_current_context().get_parameter_source
    default = click.core.ParameterSource.DEFAULT
    dataset_given = source("dataset") is not default
    device, seed, num_workers = (value if source(name) is not default else None for name, value in
                                 (("device", device), ("seed", seed), ("num_workers", num_workers)))
    sets = parse_overrides(overrides)
    if show_config:
        import yaml

        for key, value in (("device", device), ("pretrained", pretrained), ("seed", seed), ("num_workers", num_workers),
                           ("amp", amp)):
            if value is not None:
                sets[key] = value
        cfg = build_config(preset or "paper", dataset=dataset, yaml_path=config_path, overrides=sets)
        click.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None).rstrip())
        return
    if output is None:
        fail("--output is required: the run folder.")
    if device is not None:
        sets["device"] = device
    if num_workers is not None:
        sets["num_workers"] = num_workers
    if resume:
        if (preset is not None or config_path is not None or pretrained is not None or seed is not None
                or amp is not None):
            fail("--preset, --config, --pretrained, --seed and --amp cannot be combined with --resume: "
                 "a resumed run keeps its configuration.")
        cfg = None
        dataset = dataset if dataset_given else None  # the run's own unless named (then checked against it)
    else:
        if dataset != "synthetic" and root is None:
            fail(f"--root is required for --dataset {dataset}: the folder holding the data set.")
        for key, value in (("pretrained", pretrained), ("seed", seed), ("amp", amp)):
            if value is not None:
                sets[key] = value
        cfg = build_config(preset or "paper", dataset=dataset, yaml_path=config_path, overrides=sets)
        sets = {}
    if root is not None and dataset not in (None, "synthetic") and not os.path.isdir(root):
        fail(f"--root {root}: not a directory.")
    if root is not None:  # the run's files never go inside the data set (the default synthetic set lies in RUN)
        check_outside_roots(output, "--output", [("--root", root)])

    handler = None
    train_log = logging.getLogger("xmrank.train")
    old_level = train_log.level
    if not quiet and logging.getLogger("xmrank").getEffectiveLevel() > logging.INFO:
        # show the trainer's per-epoch lines (-v shows every xmrank message instead)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        train_log.addHandler(handler)
        train_log.setLevel(logging.INFO)
    try:
        if dataset == "synthetic" and not resume:
            # train() reads the synthetic set and never makes it: generate it first (where missing),
            # after the device check, so that a run refused for its device writes nothing
            from xmrank.torch.device import torch_device
            from xmrank.torch.synthetic import prepare_synthetic

            from xmrank.torch.checkpoints import check_new_run

            torch_device(cfg.device)
            check_new_run(output, "--output")  # refused before any data is written
            root = prepare_synthetic(cfg, output, root, progress=progress)
        metrics = train(cfg, dataset=dataset, root=root, output=output, resume=resume, overrides=sets,
                        max_epochs=max_epochs, progress=progress)
    finally:
        if handler is not None:
            train_log.removeHandler(handler)
            train_log.setLevel(old_level)
    untrained, final = metrics.get("untrained"), metrics.get("final")
    out_json = os.path.join(output, "metrics.json")
    if metrics.get("complete") and final is not None and untrained is not None:
        click.echo(
            f"{metrics['dataset']}: mAP {100 * untrained['mAP']:.2f}% -> {100 * final['mAP']:.2f}%, "
            f"Rank-1 {100 * untrained['rank1']:.2f}% -> {100 * final['rank1']:.2f}% ({final['protocol']}); "
            f"metrics in {out_json}"
        )
    elif metrics.get("complete"):
        click.echo(f"done; model in {os.path.join(output, 'model.pt')}, metrics in {out_json}")
    else:
        click.echo(f"stopped after {len(metrics['epochs'])} epochs; continue with: xmrank train --output {output} --resume")
