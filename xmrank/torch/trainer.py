"""The training engine: :class:`Trainer`, which owns the network, the data, the steps and the stage loop.

:meth:`Trainer.fit` is the recipe of ``docs/trainer.md``, stage by stage
and epoch by epoch:

1. **features**: flip-averaged features of every training image, not
   re-normalised, resized bicubic (as the published code clusters them);
2. **pseudo-labels**: :func:`.pseudo_labels.cluster_epoch` (each modality
   alone; in stage 2 also the global clustering with the modality-aware
   Jaccard);
3. **memories**: the epoch's prototype memories and batch streams
   (:func:`.pseudo_labels.intra_parts`, :func:`.pseudo_labels.global_part`);
4. **epoch**: ``iters`` iterations of :class:`.steps.IntraStep` (and, in
   stage 2, :class:`.steps.GlobalStep` after it), then the scheduler step;
5. **checkpoint**: the epoch's record, ``checkpoint.pt`` and
   ``metrics.json`` (:class:`.checkpoints.RunState`).

Each stage starts from a fresh optimiser (a resumed stage restores its own);
each stage ends with its model file and a test-set evaluation, reported
only. What is saved, checked and restored lives in :mod:`.checkpoints`;
:func:`xmrank.torch.train` checks the inputs, builds the one
:class:`Trainer` and calls :meth:`Trainer.fit`.
"""

from __future__ import annotations

import logging
import random
import time

import numpy as np

from .._progress import progress_bar
from .._validation import InputError
from ._require import torch
from .checkpoints import STAGE_EVALUATIONS, RunState
from .data import ImageCache, resolve_num_workers, training_records
from .device import torch_device
from .evaluation import evaluate_model
from .features import extract_features
from .pseudo_labels import StreamMaker, cluster_epoch, global_part, intra_parts, smallest_group
from .runlog import log_epoch
from .steps import GlobalStep, IntraStep, Precision, make_optimizer

#: the trainer's own progress lines (per-epoch clustering statistics, evaluations)
logger = logging.getLogger("xmrank.train")

__all__ = ["Trainer", "epoch_seed"]


def epoch_seed(seed: int, stage: int, epoch: int) -> np.random.Generator:
    """Seed torch and :mod:`random` for one epoch; return that epoch's numpy generator (resume-safe)."""
    s = (seed * 1_000_003 + stage * 10_007 + epoch) % (2**31)
    torch.manual_seed(s)
    random.seed(s)
    return np.random.default_rng([seed, stage, epoch])


class Trainer:
    """The two-stage trainer of one run.

    Parameters
    ----------
    cfg : TrainConfig
        The run's validated configuration.
    dataset : str
        ``"sysu"``, ``"regdb"``, ``"folder"`` or ``"synthetic"``.
    root : str
        The data set folder (read here: its training records).
    model : DualStreamReID
        The network, moved to ``cfg.device``.
    progress : bool, default=None
        Progress bars; None shows them only on a terminal.

    Raises
    ------
    xmrank.InputError
        When the training set lacks a modality or its smallest clustered
        group has fewer than 2 rows (nothing is written yet).
    """

    def __init__(self, cfg, *, dataset: str, root: str, model, progress=None):
        self.cfg, self.dataset, self.root, self.progress = cfg, dataset, root, progress
        self.device = torch_device(cfg.device)
        self.records = training_records(dataset, root, trial=cfg.regdb_trial)
        self.mods = np.array([r.modality for r in self.records], dtype=np.int64)
        self.pids = np.array([r.pid for r in self.records], dtype=np.int64)
        counts = np.bincount(self.mods, minlength=2)
        if counts.min() == 0:
            raise InputError(f"the training set must hold both modalities; found {counts[0]} visible and "
                             f"{counts[1]} infrared images.")
        self.larger = int(np.argmax(counts))
        smallest_group(self.mods, cfg, self.larger)  # refuse a run that cannot cluster before anything is written
        self.epochs = {1: cfg.epochs_stage1, 2: cfg.epochs_stage2}
        self.num_workers = resolve_num_workers(cfg.num_workers)
        self.image_loader = ImageCache((cfg.height, cfg.width)) if cfg.cache_images else None
        self.threads = cfg.threads or torch.get_num_threads()
        self.model = model.to(self.device)
        self.precision = Precision(cfg.amp, self.device)
        self.intra_step = IntraStep(cfg.temperature, cfg.intra_margin, self.device, self.precision)
        self.global_step = GlobalStep(cfg.temperature, cfg.n_candidates, self.device, self.precision)
        self.streams = StreamMaker(self.records, cfg, image_loader=self.image_loader, num_workers=self.num_workers,
                                   pin_memory=self.device.type == "cuda")

    # -- the stage loop ------------------------------------------------------------------------------------------

    def fit(self, run: RunState, *, max_epochs: int | None = None) -> dict:
        """Train from ``run``'s position to the end of stage 2, or for ``max_epochs`` epochs; return the metrics."""
        self._log_start(run)
        if run.stage > 2:
            return run.metrics
        self._fill_cache()
        self._evaluate_once(run, "untrained")
        ran = 0
        while run.stage <= 2:
            stage = run.stage
            opt, sched = self._optimizer(run)  # fresh each stage; a resumed stage gets its saved state
            for epoch in range(run.epoch, self.epochs[stage]):
                if max_epochs is not None and ran >= max_epochs:
                    return self._pause(run, ran)
                t0 = time.perf_counter()
                rng = epoch_seed(self.cfg.seed, stage, epoch)
                feats = self.features(stage)
                t_feat = time.perf_counter() - t0
                clusters = cluster_epoch(feats, self.mods, self.pids, self.cfg, rng, stage=stage, larger=self.larger)
                torch.set_num_threads(self.threads)  # the kNN libraries may reset the OpenMP pool when they load
                memories = self.memories(feats, clusters, rng, stage)
                losses = self.train_epoch(stage, epoch, memories, opt)
                del memories  # ends the epoch's DataLoader workers
                record = _epoch_record(stage, epoch, opt, losses, clusters, t_feat)
                sched.step()
                record["time_s"] = round(time.perf_counter() - t0, 2)
                log_epoch(record)
                if self.cfg.eval_every and (epoch + 1) % self.cfg.eval_every == 0 and epoch + 1 < self.epochs[stage]:
                    record["eval"] = self.evaluate(f"stage {stage} epoch {epoch + 1}")
                run.end_epoch(record, self.model, opt, sched, self.precision.scaler)
                ran += 1
            if not run.evaluated(STAGE_EVALUATIONS[stage]):
                run.save_stage_model(self.model)
                run.add_evaluation(STAGE_EVALUATIONS[stage], self.evaluate(STAGE_EVALUATIONS[stage]))
            run.next_stage(self.model, self.precision.scaler)
        self._log_done(run.metrics)
        return run.metrics

    # -- the parts of an epoch -----------------------------------------------------------------------------------

    def features(self, stage: int):
        """Flip-averaged features of every training image, not re-normalised, resized bicubic (for clustering)."""
        return extract_features(self.model, self.records, batch_size=self.cfg.feature_batch_size, normalize=False,
                                interpolation="bicubic", device=self.device, loader=self.image_loader,
                                num_workers=self.num_workers, progress=self.progress, desc=f"stage {stage} features",
                                height=self.cfg.height, width=self.cfg.width)

    def memories(self, feats, clusters: dict, rng, stage: int) -> tuple:
        """The epoch's ``(intra parts, global part)``: memories and batch streams (global: stage 2, else None)."""
        parts = intra_parts(feats, self.mods, clusters["intra"], self.streams, rng, stage=stage, device=self.device)
        gpart = None
        if stage == 2:
            gpart = global_part(feats, self.mods, clusters["global_rows"], clusters["global"], self.streams, rng,
                                device=self.device)
        return parts, gpart

    def train_epoch(self, stage: int, epoch: int, memories: tuple, opt) -> dict:
        """``iters`` iterations: the intra step, then (stage 2) the global step; the losses of each.

        Raises
        ------
        xmrank.InputError
            When a loss or a weight is NaN or infinite: such weights are
            never saved.
        """
        parts, gpart = memories
        losses = {"intra": [], "global": []}
        self.model.train()
        if any(p is not None for p in parts.values()):
            with progress_bar(total=self.cfg.iters, desc=f"stage {stage} epoch {epoch + 1}", show=self.progress) as bar:
                for _ in range(self.cfg.iters):
                    losses["intra"].append(self.intra_step(self.model, parts, opt))
                    if gpart is not None:
                        losses["global"].append(self.global_step(self.model, gpart, opt))
                    bar.set_postfix(loss=f"{losses['intra'][-1]:.3f}")
                    bar.update(1)
        else:
            logger.warning("stage %d epoch %d: no clusters in either modality, no training step this epoch",
                           stage, epoch + 1)
        if (not all(np.isfinite(losses["intra"] + losses["global"]))
                or not all(bool(torch.isfinite(p).all()) for p in self.model.parameters())):
            raise InputError(f"training diverged in stage {stage} epoch {epoch + 1} (a loss or weight is NaN or "
                             f"infinite) with lr={self.cfg.lr:g}; train again with a smaller lr.")
        return losses

    def evaluate(self, name: str):
        """Test-split scores of the current network (reported only; None for a data set without labels)."""
        t0 = time.perf_counter()
        cfg = self.cfg
        res = evaluate_model(self.model, self.dataset, self.root, device=self.device,
                             batch_size=cfg.feature_batch_size, loader=self.image_loader, sysu_mode=cfg.eval_mode,
                             trials=cfg.eval_trials, regdb_trial=cfg.regdb_trial,
                             regdb_direction=cfg.regdb_direction, num_workers=self.num_workers,
                             progress=self.progress, height=cfg.height, width=cfg.width)
        if res is not None:
            res["time_s"] = round(time.perf_counter() - t0, 2)
            logger.info("evaluation [%s] %s: mAP %.2f%%, Rank-1 %.2f%%, mINP %.2f%%", name, res["protocol"],
                        100 * res["mAP"], 100 * res["rank1"], 100 * res["mINP"])
        return res

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _optimizer(self, run: RunState):
        cfg = self.cfg
        opt, sched = make_optimizer(self.model, lr=cfg.lr, weight_decay=cfg.weight_decay, step_size=cfg.step_size,
                                    gamma=cfg.gamma)
        run.restore(opt, sched, self.precision.scaler)
        return opt, sched

    def _evaluate_once(self, run: RunState, name: str) -> None:
        if not run.evaluated(name):
            run.add_evaluation(name, self.evaluate(name))
            run.write_metrics(stamp=False)

    def _pause(self, run: RunState, ran: int) -> dict:
        logger.info("stopping after %d epochs as asked; resume to continue", ran)
        if ran:  # nothing ran (--max-epochs 0): metrics.json stays as it is
            run.write_metrics()
        return run.metrics

    def _fill_cache(self) -> None:
        """Decode the cached images once in this process, so that worker processes inherit them."""
        if self.image_loader is not None and self.num_workers > 0:
            t0 = time.perf_counter()
            self.image_loader.fill(r.path for r in self.records)
            logger.info("cached %d training images in %.1fs", len(self.image_loader), time.perf_counter() - t0)

    def _log_start(self, run: RunState) -> None:
        counts = np.bincount(self.mods, minlength=2)
        logger.info("training set: %d visible and %d infrared images (%s, %s); device %s, %s, %d DataLoader workers",
                    counts[0], counts[1], self.dataset, self.root, self.device, self.precision.describe(),
                    self.num_workers)
        run.log_start()

    @staticmethod
    def _log_done(metrics: dict) -> None:
        if metrics["final"] is not None and metrics["untrained"] is not None:
            logger.info("done: mAP %.2f%% -> %.2f%%, Rank-1 %.2f%% -> %.2f%%", 100 * metrics["untrained"]["mAP"],
                        100 * metrics["final"]["mAP"], 100 * metrics["untrained"]["rank1"],
                        100 * metrics["final"]["rank1"])


def _epoch_record(stage: int, epoch: int, opt, losses: dict, clusters: dict, t_feat: float) -> dict:
    """An epoch's line of ``metrics.json`` (its ``time_s`` is set after the scheduler step)."""
    return {
        "stage": stage,
        "epoch": epoch + 1,
        "lr": opt.param_groups[0]["lr"],
        "loss_intra": float(np.mean(losses["intra"])) if losses["intra"] else None,
        "loss_global": float(np.mean(losses["global"])) if losses["global"] else None,
        "clusters": clusters["stats"],
        "time_features_s": round(t_feat, 2),
        "time_s": None,
    }
