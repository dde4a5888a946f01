"""The two-stage unsupervised visible-infrared trainer (``docs/trainer.md``): :func:`train`.

Stage 1, each epoch:
    extract flip-averaged features of every training image (not
    re-normalised, as the published code clusters them); split the larger
    modality into random subsets and cluster subset 0 of it and all of the
    other modality, each modality alone, with vanilla Jaccard + DBSCAN
    (``subset_ratio`` 1.0: no split); build one hybrid memory per modality;
    train ``iters`` steps of the intra-modality loss on batches of
    ``num_instances`` images per pseudo-identity (visible images in two
    views: plain and ColorJitter + ChannelExchange).

Stage 2 starts from stage 1's final weights with a fresh optimiser; each epoch:
    the same intra-modality clustering, plus global clustering (modality-aware
    Jaccard) of subset 1 of the larger modality and all of the other (all rows
    without subsets); a split-and-contrast memory on it; each iteration makes
    two optimiser steps: the intra-modality step, then the global step on
    separate infrared and visible batches drawn by global cluster, whose loss
    is ``½ (mean over the infrared rows + mean over the visible rows)``.

Model selection never looks at the test set: each stage keeps its last
epoch's weights. Test-set evaluations (untrained, end of stage 1, final, and
every ``eval_every`` epochs) are reported in ``metrics.json`` only.

The work is split by job: :mod:`.pseudo_labels` (clustering, memories and
batch streams of an epoch), :mod:`.steps` (the optimiser steps, the
optimiser, the precision policy), :mod:`.checkpoints` (the run's files) and
:mod:`.runlog` (``train.log``, ``metrics.json``); this module is the stage loop.

Files written under the output folder: ``checkpoint.pt`` (after every epoch;
``resume=True`` continues from it), ``stage1_model.pt`` and ``model.pt``
(weights and config), ``metrics.json`` and ``train.log``, each through a
temporary file and ``os.replace``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time

import numpy as np

from .._progress import progress_bar
from .._validation import InputError, check_int, check_option
from ._require import torch
from .checkpoints import (CHECKPOINT, STAGE_MODELS, check_bookkeeping, check_optimizer_state, checkpoint_payload,
                          load_trained_model, model_payload, read_run_checkpoint, restore_state, save)
from .config import TrainConfig, apply_overrides, config_from_dict, validate
from .data import DATASETS, ImageCache, resolve_num_workers, training_records
from .evaluation import evaluate_model
from .features import extract_features
from .model import build_model
from .pseudo_labels import StreamMaker, cluster_epoch, global_part, intra_parts, smallest_group
from .runlog import atomic_json, log_epoch, run_lock, run_log
from .steps import Precision, build_optimizer, global_step, intra_step, torch_device
from ..datasets.synthetic_images import is_synthetic_root, make_synthetic

#: the trainer's own progress lines (per-epoch clustering statistics, evaluations)
logger = logging.getLogger("xmrank.train")
#: every xmrank message goes to RUN/train.log
_base_logger = logging.getLogger("xmrank")

__all__ = ["train", "torch_device", "load_trained_model", "CHECKPOINT", "METRICS", "MODEL_SELECTION", "RUN_FIELDS"]

METRICS = "metrics.json"
LOG = "train.log"
MODEL_SELECTION = (
    "last epoch of each stage (stage 2 starts from stage 1's last epoch); "
    "test-set scores are reported only and never used to choose weights"
)
#: Config fields a resumed run may change. They do not change what is trained, up to float rounding
#: (augmentations are seeded per image, whatever the number of workers; the exact kNN engines give identical
#: lists on any device), with one exception: ``cache_images`` keeps images resized bicubic in memory, so
#: turning it on or off changes the test images' resize (Lanczos without it) and so the reported scores.
RUN_FIELDS = ("device", "threads", "num_workers", "cache_images", "feature_batch_size", "cluster_device")


def _seed(cfg: TrainConfig, stage: int, epoch: int) -> np.random.Generator:
    """Seed torch and random for one epoch; return that epoch's numpy generator (resume-safe)."""
    s = (cfg.seed * 1_000_003 + stage * 10_007 + epoch) % (2**31)
    torch.manual_seed(s)
    random.seed(s)
    return np.random.default_rng([cfg.seed, stage, epoch])


class _Trainer:
    """State of one run; :func:`train` is the public entry point."""

    def __init__(self, cfg: TrainConfig, dataset: str, root: str, output: str, progress, *, model):
        self.cfg = cfg
        self.dataset = dataset
        self.root = root
        self.output = output
        self.progress = progress
        self.device = torch_device(cfg.device)
        self.records = training_records(dataset, root, trial=cfg.regdb_trial)
        self.mods = np.array([r.modality for r in self.records], dtype=np.int64)
        self.pids = np.array([r.pid for r in self.records], dtype=np.int64)
        counts = np.bincount(self.mods, minlength=2)
        if counts.min() == 0:
            raise InputError(f"the training set must hold both modalities; found {counts[0]} visible and {counts[1]} infrared images.")
        self.larger = int(np.argmax(counts))
        smallest_group(self.mods, cfg, self.larger)  # refuse a run that cannot cluster before anything is written
        self.num_workers = resolve_num_workers(cfg.num_workers)
        self.image_loader = ImageCache((cfg.height, cfg.width)) if cfg.cache_images else None
        self.size = dict(height=cfg.height, width=cfg.width)
        self.threads = cfg.threads or torch.get_num_threads()
        self.model = model.to(self.device)
        self.precision = Precision(cfg.amp, self.device)
        self.streams = StreamMaker(self.records, cfg, image_loader=self.image_loader, num_workers=self.num_workers,
                                   pin_memory=self.device.type == "cuda")

    def prepare(self):
        """Decode the cached images once in this process, so that worker processes inherit them."""
        if self.image_loader is not None and self.num_workers > 0:
            t0 = time.perf_counter()
            self.image_loader.fill(r.path for r in self.records)
            logger.info("cached %d training images in %.1fs", len(self.image_loader), time.perf_counter() - t0)

    def evaluate(self, name):
        t0 = time.perf_counter()
        res = evaluate_model(self.model, self.dataset, self.root, device=self.device,
                             batch_size=self.cfg.feature_batch_size, loader=self.image_loader,
                             sysu_mode=self.cfg.eval_mode, trials=self.cfg.eval_trials,
                             regdb_trial=self.cfg.regdb_trial, regdb_direction=self.cfg.regdb_direction,
                             num_workers=self.num_workers, progress=self.progress, **self.size)
        if res is not None:
            res["time_s"] = round(time.perf_counter() - t0, 2)
            logger.info("evaluation [%s] %s: mAP %.2f%%, Rank-1 %.2f%%, mINP %.2f%%", name, res["protocol"],
                        100 * res["mAP"], 100 * res["rank1"], 100 * res["mINP"])
        return res

    def run_epoch(self, stage: int, epoch: int, opt, sched) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        rng = _seed(cfg, stage, epoch)
        # clustering and the memories use the flip-averaged features without re-normalisation
        # resized with bicubic interpolation, as the published code's cluster loader does
        feats = extract_features(self.model, self.records, batch_size=cfg.feature_batch_size, normalize=False,
                                 interpolation="bicubic",
                                 device=self.device, loader=self.image_loader, num_workers=self.num_workers,
                                 progress=self.progress, desc=f"stage {stage} features", **self.size)
        t_feat = time.perf_counter() - t0
        clusters = cluster_epoch(feats, self.mods, self.pids, cfg, rng, stage=stage, larger=self.larger)
        # the kNN libraries may reset the OpenMP pool when they load: keep torch's thread count fixed
        torch.set_num_threads(self.threads)
        parts = intra_parts(feats, self.mods, clusters["intra"], self.streams, rng, stage=stage, device=self.device)
        gpart = None
        if stage == 2:
            gpart = global_part(feats, self.mods, clusters["global_rows"], clusters["global"], self.streams, rng,
                                device=self.device)
        intra_losses, global_losses = [], []
        self.model.train()
        if any(p is not None for p in parts.values()):
            with progress_bar(total=cfg.iters, desc=f"stage {stage} epoch {epoch + 1}", show=self.progress) as bar:
                for _ in range(cfg.iters):
                    intra_losses.append(intra_step(self.model, parts, opt, cfg, self.device, self.precision))
                    if gpart is not None:
                        global_losses.append(global_step(self.model, gpart, opt, cfg, self.device, self.precision))
                    bar.set_postfix(loss=f"{intra_losses[-1]:.3f}")
                    bar.update(1)
        else:
            logger.warning("stage %d epoch %d: no clusters in either modality, no training step this epoch", stage, epoch + 1)
        del parts, gpart  # ends the epoch's DataLoader workers
        losses = intra_losses + global_losses
        if not all(np.isfinite(losses)) or not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            # never saved: a checkpoint or model with NaN weights would be written with exit 0
            raise InputError(f"training diverged in stage {stage} epoch {epoch + 1} (a loss or weight is NaN or "
                             f"infinite) with lr={cfg.lr:g}; train again with a smaller lr.")
        lr = opt.param_groups[0]["lr"]
        sched.step()
        record = {
            "stage": stage,
            "epoch": epoch + 1,
            "lr": lr,
            "loss_intra": float(np.mean(intra_losses)) if intra_losses else None,
            "loss_global": float(np.mean(global_losses)) if global_losses else None,
            "clusters": clusters["stats"],
            "time_features_s": round(t_feat, 2),
            "time_s": round(time.perf_counter() - t0, 2),
        }
        log_epoch(record)
        return record


def train(config: TrainConfig | None = None, *, dataset: str | None = None, root=None, output, resume: bool = False,
          overrides: dict | None = None, max_epochs=None, progress=None) -> dict:
    """Run (or resume) the two-stage pipeline; return the metrics written to ``output/metrics.json``.

    Parameters
    ----------
    config : TrainConfig
        See :mod:`xmrank.torch.config` (``preset_config("paper")`` for the
        published recipe). Required for a new run. With ``resume=True`` the
        run keeps the configuration saved in its checkpoint: leave it None,
        or give one that agrees with it outside :data:`RUN_FIELDS` (a
        different recipe is refused, naming the first field that differs).
    dataset : {"sysu", "regdb", "folder", "synthetic"}
        Required for a new run; with ``resume=True`` it defaults to the
        checkpoint's (and must match it when given).
    root : str or path-like
        The data set folder. For ``"synthetic"`` it may be None
        (``output/synthetic``); the set is generated there when the folder is
        missing or empty. With ``resume=True`` it defaults to the checkpoint's,
        and another folder is refused (a resumed run trains on its own data).
    output : str or path-like
        Run folder (created). A folder holding a checkpoint needs ``resume=True``.
    resume : bool, default=False
        Continue from ``output/checkpoint.pt`` (read with ``weights_only=True``).
    overrides : dict, default=None
        ``{field: value}`` applied over ``config``; with ``resume=True`` only
        the run settings of :data:`RUN_FIELDS` (device, threads, ...) may change.
    max_epochs : int, default=None
        Stop after this many epochs in this call (a later ``resume=True``
        call continues); None runs to the end. 0 with ``resume=True``
        leaves ``metrics.json`` as it is.
    progress : bool, default=None
        Progress bars; None shows them only on a terminal.

    Returns
    -------
    metrics : dict
        ``"untrained"``, ``"stage1"``, ``"final"``: test-split evaluations
        (``mAP``, ``mINP``, ``rank1``, ``rank5``, ``rank10``, ``rank20`` as
        fractions, the protocol; None for ``"folder"``, which has no labels);
        ``"epochs"``: per-epoch losses, learning rate, times and clustering
        statistics (clusters, noise share, mixed-modality share, and purity
        against the training labels where the data set has them, for
        reporting only); ``"complete"``: whether both stages finished.

    Raises
    ------
    xmrank.InputError
        For a bad configuration, data set, device, output folder or
        checkpoint; nothing is written before these checks pass. A resumed
        checkpoint's bookkeeping is checked first: its stage, epoch,
        weights (finite), optimiser and scheduler state (loaded into fresh
        ones, shapes and numbers checked) and metrics (numbers where numbers
        belong), and its data set, root and recipe against the ones given.
    OSError
        When a run file cannot be written (a file-size limit, a full disk).
    """
    output = os.fspath(output)
    if max_epochs is not None:
        max_epochs = check_int(max_epochs, "max_epochs", minimum=0)
    overrides = dict(overrides or {})
    ckpt_path = os.path.join(output, CHECKPOINT)
    checkpoint = None
    if resume:
        checkpoint = read_run_checkpoint(ckpt_path)
        fixed = sorted(k for k in overrides if str(k).replace("-", "_") not in RUN_FIELDS)
        if fixed:
            raise InputError(
                f"cannot change {fixed[0]} when resuming: a resumed run keeps its configuration "
                f"(only {', '.join(RUN_FIELDS)} may change)."
            )
        saved = config_from_dict(checkpoint["config"], check_backends=False)  # checked after the overrides
        if isinstance(config, TrainConfig):
            # the recipe is the run's: a config given with resume=True must agree with it outside RUN_FIELDS
            mine, theirs = config.to_dict(), saved.to_dict()
            differ = [k for k in theirs if k not in RUN_FIELDS and mine.get(k) != theirs[k]]
            if differ:
                raise InputError(f"cannot resume: config {differ[0]} is {mine.get(differ[0])!r}, the run was trained "
                                 f"with {theirs[differ[0]]!r} (a resumed run keeps its recipe; only "
                                 f"{', '.join(RUN_FIELDS)} may change).")
        elif config is not None:
            raise InputError("config must be a TrainConfig or None with resume=True (the run keeps its own).")
        config = saved
        if dataset is not None and dataset != checkpoint["dataset"]:
            raise InputError(f"cannot resume: dataset is {dataset!r}, the run was trained on {checkpoint['dataset']!r}.")
        dataset = checkpoint["dataset"]
        check_bookkeeping(checkpoint, ckpt_path, {1: config.epochs_stage1, 2: config.epochs_stage2})
        if root is None:
            root = checkpoint["root"]
        elif os.path.realpath(os.fspath(root)) != os.path.realpath(checkpoint["root"]):
            raise InputError(f"cannot resume: root is {os.fspath(root)}, the run was trained on the data set in "
                             f"{checkpoint['root']} (a resumed run reads the same data; leave --root out).")
    else:
        if os.path.isfile(ckpt_path):
            raise InputError(f"output {output} already holds a run ({CHECKPOINT}); pass --resume or choose another folder.")
        if not isinstance(config, TrainConfig):
            raise InputError("config must be a TrainConfig (see xmrank.torch.preset_config) for a new run.")
        if dataset is None:
            raise InputError("dataset is required for a new run: one of sysu, regdb, folder, synthetic.")
    check_option(dataset, "dataset", DATASETS)
    config = validate(apply_overrides(config, overrides) if overrides else config)
    torch_device(config.device)
    if dataset != "synthetic" and root is None:
        raise InputError(f"root is required for dataset {dataset!r}: the folder holding the data set.")

    needs_data = False
    if dataset == "synthetic":
        root = os.path.join(output, "synthetic") if root is None else os.fspath(root)
        needs_data = not is_synthetic_root(root) and not (os.path.isdir(root) and os.listdir(root))
    root = os.fspath(root)
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        # build the model (a resumed run takes its weights from the checkpoint, not from ImageNet)
        # and read the data before anything is written
        torch.manual_seed(config.seed)
        model = build_model(config.arch, pretrained="none" if checkpoint is not None else config.pretrained,
                            non_local=config.non_local, non_local_width=config.non_local_width,
                            gem_p=config.gem_p, gem_learnable=config.gem_learnable, last_stride=config.last_stride)
        if checkpoint is not None:  # every part of the checkpoint is checked before the run folder is touched
            _check_resume_state(model, config, checkpoint, ckpt_path)
        trainer = None
        if not needs_data:
            trainer = _Trainer(config, dataset, root, output, progress, model=model)
        os.makedirs(output, exist_ok=True)
        with run_lock(output), run_log(os.path.join(output, LOG)):
            if needs_data:
                logger.info("generating the synthetic data set in %s", root)
                make_synthetic(root, n_train_ids=config.synthetic_train_ids, n_test_ids=config.synthetic_test_ids,
                               images_per_camera=config.synthetic_images_per_camera,
                               height=config.synthetic_height, width=config.synthetic_width, seed=config.seed,
                               progress=progress)
                trainer = _Trainer(config, dataset, root, output, progress, model=model)
            return _run(trainer, checkpoint, max_epochs)
    finally:
        torch.set_num_threads(old_threads)


_restore = restore_state


def _check_resume_state(model, cfg, checkpoint, path):
    """Load the checkpoint's weights into ``model`` and its optimiser and scheduler state into fresh ones
    (checked: shapes, numbers), so that a checkpoint that cannot continue is refused before anything is written."""
    from .loading import load_weights

    load_weights(model, checkpoint["model"], path)  # keys, shapes, and dense finite real weights
    if checkpoint["stage"] in (1, 2) and "optimizer" in checkpoint:
        opt, sched = build_optimizer(model, cfg)
        _restore(opt.load_state_dict, checkpoint, "optimizer", path)
        _restore(sched.load_state_dict, checkpoint, "scheduler", path)
        check_optimizer_state(opt, sched, path)


def _run(trainer, checkpoint, max_epochs):
    t_start = time.perf_counter()
    cfg, dataset, root, output = trainer.cfg, trainer.dataset, trainer.root, trainer.output
    counts = np.bincount(trainer.mods, minlength=2)
    logger.info("training set: %d visible and %d infrared images (%s, %s); device %s, %s, %d DataLoader workers",
                counts[0], counts[1], dataset, root, trainer.device, trainer.precision.describe(), trainer.num_workers)
    metrics_path = os.path.join(output, METRICS)
    ckpt_path = os.path.join(output, CHECKPOINT)
    if checkpoint is None:
        metrics = {"dataset": dataset, "root": root, "config": cfg.to_dict(), "model_selection": MODEL_SELECTION,
                   "untrained": None, "stage1": None, "final": None, "epochs": [], "complete": False}
        stage, done = 1, 0
        _base_logger.info("config: %s", json.dumps(cfg.to_dict()))  # to train.log (stderr only with -v)
    else:
        # the weights were loaded into the model and every part checked (_check_resume_state) before train.log
        metrics = checkpoint["metrics"]
        stage, done = checkpoint["stage"], checkpoint["epoch"]
        if stage > 2:
            logger.info("%s holds a finished run; nothing to resume", ckpt_path)
            return metrics
        logger.info("resuming from %s: stage %d, %d epochs done", ckpt_path, stage, done)
    trainer.prepare()
    base_time = metrics.get("time_s", 0.0)

    def stamp():
        metrics["time_s"] = round(base_time + time.perf_counter() - t_start, 1)

    def save_checkpoint(stage_, epoch_, opt=None, sched=None):
        save(ckpt_path, checkpoint_payload(stage=stage_, epoch=epoch_, model=trainer.model, metrics=metrics, cfg=cfg,
                                           dataset=dataset, root=root, optimizer=opt, scheduler=sched,
                                           scaler=trainer.precision.scaler))

    if "untrained" not in metrics.get("evaluated", []):
        metrics["untrained"] = trainer.evaluate("untrained")
        metrics.setdefault("evaluated", []).append("untrained")
        atomic_json(metrics_path, metrics)

    epochs = {1: cfg.epochs_stage1, 2: cfg.epochs_stage2}
    ran = 0
    while stage <= 2:
        opt, sched = build_optimizer(trainer.model, cfg)
        if checkpoint is not None and checkpoint["stage"] == stage and "optimizer" in checkpoint:
            _restore(opt.load_state_dict, checkpoint, "optimizer", ckpt_path)
            _restore(sched.load_state_dict, checkpoint, "scheduler", ckpt_path)
            if trainer.precision.scaler is not None and "scaler" in checkpoint:
                _restore(trainer.precision.scaler.load_state_dict, checkpoint, "scaler", ckpt_path)
        checkpoint = None
        for epoch in range(done, epochs[stage]):
            if max_epochs is not None and ran >= max_epochs:
                logger.info("stopping after %d epochs as asked; resume to continue", ran)
                if ran:  # nothing ran (--max-epochs 0): metrics.json stays as it is
                    stamp()
                    atomic_json(metrics_path, metrics)
                return metrics
            rec = trainer.run_epoch(stage, epoch, opt, sched)
            if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < epochs[stage]:
                rec["eval"] = trainer.evaluate(f"stage {stage} epoch {epoch + 1}")
            metrics["epochs"].append(rec)
            stamp()
            save_checkpoint(stage, epoch + 1, opt, sched)
            atomic_json(metrics_path, metrics)
            ran += 1
        name = "stage1" if stage == 1 else "final"
        if name not in metrics.get("evaluated", []):
            save(os.path.join(output, STAGE_MODELS[stage]), model_payload(trainer.model, cfg, stage))
            metrics[name] = trainer.evaluate(name)
            metrics.setdefault("evaluated", []).append(name)
        stage, done = stage + 1, 0
        # the next stage begins with a fresh optimiser: record the boundary so resume starts there
        save_checkpoint(stage, 0)
        atomic_json(metrics_path, metrics)
    metrics["complete"] = True
    stamp()
    atomic_json(metrics_path, metrics)
    save_checkpoint(3, 0)
    if metrics["final"] is not None and metrics["untrained"] is not None:
        logger.info("done: mAP %.2f%% -> %.2f%%, Rank-1 %.2f%% -> %.2f%%", 100 * metrics["untrained"]["mAP"],
                    100 * metrics["final"]["mAP"], 100 * metrics["untrained"]["rank1"], 100 * metrics["final"]["rank1"])
    return metrics
