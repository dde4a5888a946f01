"""The two-stage unsupervised visible-infrared trainer (REFERENCE.md §4-§6).

Stage 1, each epoch:
    extract flip-averaged features of every training image; split the larger
    modality into random subsets (:func:`xmrank.subset_cluster`) and cluster
    subset 0 of it and all of the other modality, each modality alone, with
    vanilla Jaccard + DBSCAN; build one :class:`~xmrank.torch.memory.HybridMemory`
    per modality; train ``iters`` steps of the intra-modality loss on batches of
    ``num_instances`` images per pseudo-identity (visible images in two views:
    plain and ColorJitter + ChannelExchange).

Stage 2 starts from stage 1's final weights with a fresh optimiser; each epoch:
    the same intra-modality clustering, plus global clustering
    (:func:`xmrank.cluster`, modality-aware Jaccard) of subset 1 of the larger
    modality and all of the other; a :class:`~xmrank.torch.memory.SplitContrastMemory`
    on it; each iteration makes two optimiser steps, the intra-modality loss,
    then the split-and-contrast loss on a separate batch drawn by global cluster.

Model selection never looks at the test set: each stage keeps its last
epoch's weights. Test-set evaluations (untrained, end of stage 1, final, and
every ``eval_every`` epochs) are reported in ``metrics.json`` only.

Files written under the output folder: ``checkpoint.pt`` (after every epoch;
``resume=True`` continues from it), ``stage1_model.pt`` and ``model.pt``
(weights and config), ``metrics.json`` and ``train.log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time

import numpy as np

from .. import clustering
from .._progress import progress_bar
from .._validation import InputError, check_int, check_option
from ..datasets import INFRARED, VISIBLE
from ._require import torch
from .config import TrainConfig, apply_overrides, config_from_dict, validate
from .data import DATASETS, ImageCache, RecordDataset, collate_views, training_records
from .evaluation import evaluate_model
from .features import extract_features
from .losses import intra_modality_loss, split_contrast_loss
from .memory import HybridMemory, SplitContrastMemory, cluster_means
from .model import build_model
from .sampler import PseudoIdentitySampler
from .synthetic import is_synthetic_root, make_synthetic
from .transforms import RandomView, train_transform

#: the trainer's own progress lines (per-epoch clustering statistics, evaluations)
logger = logging.getLogger("xmrank.train")
#: every xmrank message goes to RUN/train.log
_base_logger = logging.getLogger("xmrank")

__all__ = ["train", "resolve_device", "load_trained_model", "CHECKPOINT", "METRICS", "MODEL_SELECTION"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
LOG = "train.log"
MODEL_SELECTION = (
    "last epoch of each stage (stage 2 starts from stage 1's last epoch); "
    "test-set scores are reported only and never used to choose weights"
)
_MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}


def resolve_device(device: str):
    """``"auto"`` -> cuda when available, else cpu; a CUDA device without CUDA is an InputError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU; use --device cpu.")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}.") from None


def _seed(cfg: TrainConfig, stage: int, epoch: int) -> np.random.Generator:
    """Seed torch and random for one epoch; return that epoch's numpy generator (resume-safe)."""
    s = (cfg.seed * 1_000_003 + stage * 10_007 + epoch) % (2**31)
    torch.manual_seed(s)
    random.seed(s)
    return np.random.default_rng([cfg.seed, stage, epoch])


def _purity(labels, pids):
    """Share of clustered, labelled rows whose cluster's majority identity is theirs (reporting only)."""
    keep = (labels >= 0) & (pids >= 0)
    if not keep.any():
        return None
    pairs, counts = np.unique(np.stack([labels[keep], pids[keep]]), axis=1, return_counts=True)
    starts = np.flatnonzero(np.r_[True, pairs[0, 1:] != pairs[0, :-1]])
    return float(np.maximum.reduceat(counts, starts).sum() / keep.sum())


def _atomic_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=2, default=_json_default)
        fh.write("\n")
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _loop(loader):
    while True:
        yield from loader


class _Trainer:
    """State of one run; :func:`train` is the public entry point."""

    def __init__(self, cfg: TrainConfig, dataset: str, root: str, output: str, progress, *, model):
        self.cfg = cfg
        self.dataset = dataset
        self.root = root
        self.output = output
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.records = training_records(dataset, root, trial=cfg.regdb_trial)
        self.mods = np.array([r.modality for r in self.records], dtype=np.int64)
        self.pids = np.array([r.pid for r in self.records], dtype=np.int64)
        counts = np.bincount(self.mods, minlength=2)
        if counts.min() == 0:
            raise InputError(f"the training set must hold both modalities; found {counts[0]} visible and {counts[1]} infrared images.")
        self.larger = int(np.argmax(counts))
        self.loader = ImageCache((cfg.height, cfg.width)) if cfg.cache_images else None
        self.size = dict(height=cfg.height, width=cfg.width)
        self.threads = cfg.threads or torch.get_num_threads()
        self.model = model.to(self.device)
        self.transforms = {
            "visible": train_transform(cfg.height, cfg.width, "visible", erasing=cfg.erasing),
            "visible_ca": train_transform(cfg.height, cfg.width, "visible_ca", erasing=cfg.erasing),
            "infrared": train_transform(cfg.height, cfg.width, "infrared", erasing=cfg.erasing,
                                        gray_probability=cfg.gray_probability),
        }

    # ---------------------------------------------------------------- helpers
    def optimizer(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        try:  # the fused kernel is several times faster, on the CPU too
            opt = torch.optim.Adam(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=self.cfg.step_size, gamma=self.cfg.gamma)
        return opt, sched

    def evaluate(self, name):
        t0 = time.perf_counter()
        res = evaluate_model(self.model, self.dataset, self.root, device=self.device,
                             batch_size=self.cfg.feature_batch_size, loader=self.loader, sysu_mode=self.cfg.eval_mode,
                             trials=self.cfg.eval_trials, regdb_trial=self.cfg.regdb_trial,
                             regdb_direction=self.cfg.regdb_direction, progress=self.progress, **self.size)
        if res is not None:
            res["time_s"] = round(time.perf_counter() - t0, 2)
            logger.info("evaluation [%s] %s: mAP %.2f%%, Rank-1 %.2f%%, mINP %.2f%%", name, res["protocol"],
                        100 * res["mAP"], 100 * res["rank1"], 100 * res["mINP"])
        return res

    def _k(self, n_rows):
        """k1, k2 fitted to the smallest clustered group (tiny data sets)."""
        k1 = min(self.cfg.k1, max(1, n_rows - 1))
        k2 = min(self.cfg.k2, k1)
        if k1 < self.cfg.k1:
            logger.info("k1 lowered from %d to %d: a clustered group has only %d rows", self.cfg.k1, k1, n_rows)
        return k1, k2

    # ------------------------------------------------------------- clustering
    def cluster(self, feats, rng, *, stage):
        cfg = self.cfg
        n_parts = max(1, int(round(1.0 / cfg.subset_ratio)))
        n_larger = int((self.mods == self.larger).sum())
        n_other = int((self.mods != self.larger).sum())
        smallest = min(n_other, n_larger // n_parts)
        if smallest < 2:
            raise InputError(
                f"too few training images to cluster: a group of {smallest} rows (add images or raise subset_ratio)."
            )
        k1, k2 = self._k(smallest)
        t0 = time.perf_counter()
        labels, subsets = clustering.subset_cluster(
            feats, self.mods, subset_modality=self.larger, ratio=cfg.subset_ratio, seed=rng, eps=cfg.eps_intra,
            min_samples=cfg.min_samples, k1=k1, k2=k2, knn=cfg.cluster_knn, device=cfg.cluster_device, progress=False)
        stats = {}
        for m, name in _MODALITY_NAMES.items():
            rows = np.flatnonzero(self.mods == m)
            if m == self.larger:
                rows = subsets[0]
            s = clustering.cluster_summary(labels[rows])
            s["purity"] = _purity(labels[rows], self.pids[rows])
            stats[name] = s
        out = {"intra": labels, "stats": stats}
        if stage == 2:
            g_larger = subsets[1] if len(subsets) > 1 else subsets[0]
            g_rows = np.sort(np.concatenate([g_larger, np.flatnonzero(self.mods != self.larger)]))
            kg1, kg2 = self._k(min(len(g_larger), n_other))
            glabels = clustering.cluster(feats[g_rows], modalities=self.mods[g_rows], method=cfg.global_method,
                                         eps=cfg.eps_global, min_samples=cfg.min_samples, k1=kg1, k2=kg2,
                                         knn=cfg.cluster_knn, device=cfg.cluster_device, progress=False)
            s = clustering.cluster_summary(glabels, self.mods[g_rows])
            s["purity"] = _purity(glabels, self.pids[g_rows])
            stats["global"] = s
            out["global_rows"] = g_rows
            out["global"] = glabels
        out["stats"]["time_s"] = round(time.perf_counter() - t0, 2)
        return out

    # ---------------------------------------------------------- data + memory
    def intra_parts(self, feats, labels, rng):
        """Per modality: (memory, loader iterator, local label tensor), or None without clusters."""
        cfg = self.cfg
        parts = {}
        for m in (VISIBLE, INFRARED):
            rows = np.flatnonzero((self.mods == m) & (labels >= 0))
            if rows.size == 0:
                logger.warning("no %s clusters this epoch: its intra-modality loss is skipped", _MODALITY_NAMES[m])
                parts[m] = None
                continue
            _, local = np.unique(labels[rows], return_inverse=True)
            n_clusters = int(local.max()) + 1
            memory = HybridMemory(cluster_means(torch.from_numpy(feats[rows]), local, n_clusters),
                                  momentum=cfg.momentum).to(self.device)
            views = ((self.transforms["visible"], self.transforms["visible_ca"]) if m == VISIBLE
                     else (self.transforms["infrared"],))
            ds = RecordDataset([self.records[i] for i in rows], views, loader=self.loader)
            sampler = PseudoIdentitySampler(local, batch_size=cfg.batch_size, num_instances=cfg.num_instances,
                                            iterations=cfg.iters, seed=rng)
            loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_views,
                                                 num_workers=cfg.num_workers)
            parts[m] = (memory, _loop(loader), torch.from_numpy(local).long())
        return parts

    def global_part(self, feats, g_rows, glabels, rng):
        cfg = self.cfg
        keep = glabels >= 0
        if not keep.any():
            logger.warning("global clustering found no cluster this epoch: the split-and-contrast loss is skipped")
            return None
        rows = g_rows[keep]
        _, local = np.unique(glabels[keep], return_inverse=True)
        memory = SplitContrastMemory(torch.from_numpy(feats[rows]), local, self.mods[rows],
                                     momentum=cfg.momentum).to(self.device)
        by_mod = {VISIBLE: RandomView([self.transforms["visible"], self.transforms["visible_ca"]]),
                  INFRARED: self.transforms["infrared"]}
        ds = RecordDataset([self.records[i] for i in rows], self.transforms["infrared"], loader=self.loader,
                           transforms_by_modality=by_mod)
        sampler = PseudoIdentitySampler(local, batch_size=cfg.global_batch_size, num_instances=cfg.num_instances,
                                        iterations=cfg.iters, seed=rng)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_views,
                                             num_workers=cfg.num_workers)
        return memory, _loop(loader), torch.from_numpy(local).long()

    # ---------------------------------------------------------------- steps
    def intra_step(self, parts, opt):
        """One optimiser step of the intra-modality loss on a visible and an infrared batch."""
        cfg = self.cfg
        images, mods, groups = [], [], []
        for m in (VISIBLE, INFRARED):
            if parts[m] is None:
                continue
            memory, it, local = parts[m]
            *views, index, _ = next(it)  # visible: two views of each image
            images.extend(views)
            mods.append(torch.full((len(index) * len(views),), m, dtype=torch.long))
            groups.append((memory, local[index].repeat(len(views)).to(self.device)))
        feats = self.model(torch.cat(images).to(self.device, non_blocking=True), torch.cat(mods).to(self.device))
        loss, start, chunks = 0.0, 0, []
        for memory, y in groups:
            f = feats[start:start + len(y)]
            start += len(y)
            loss = loss + intra_modality_loss(f, y, memory, temperature=cfg.temperature, margin=cfg.intra_margin)
            chunks.append((memory, f.detach(), y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for memory, f, y in chunks:
            memory.update(f, y)
        return float(loss.detach())

    def global_step(self, part, opt):
        cfg = self.cfg
        memory, it, local = part
        images, index, mods = next(it)
        y = local[index].to(self.device)
        mods = mods.to(self.device)
        feats = self.model(images.to(self.device, non_blocking=True), mods)
        loss = split_contrast_loss(feats, y, memory, temperature=cfg.temperature, n_candidates=cfg.n_candidates)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        memory.update(feats.detach(), y, mods)
        return float(loss.detach())

    # ---------------------------------------------------------------- epochs
    def run_epoch(self, stage: int, epoch: int, opt, sched) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        rng = _seed(cfg, stage, epoch)
        feats = extract_features(self.model, self.records, batch_size=cfg.feature_batch_size, device=self.device,
                                 loader=self.loader, progress=self.progress, desc=f"stage {stage} features",
                                 **self.size)
        t_feat = time.perf_counter() - t0
        clusters = self.cluster(feats, rng, stage=stage)
        # the kNN libraries may reset the OpenMP pool when they load: keep torch's thread count fixed
        torch.set_num_threads(self.threads)
        parts = self.intra_parts(feats, clusters["intra"], rng)
        gpart = self.global_part(feats, clusters["global_rows"], clusters["global"], rng) if stage == 2 else None
        intra_losses, global_losses = [], []
        self.model.train()
        if any(p is not None for p in parts.values()):
            with progress_bar(total=cfg.iters, desc=f"stage {stage} epoch {epoch + 1}", show=self.progress) as bar:
                for _ in range(cfg.iters):
                    intra_losses.append(self.intra_step(parts, opt))
                    if gpart is not None:
                        global_losses.append(self.global_step(gpart, opt))
                    bar.set_postfix(loss=f"{intra_losses[-1]:.3f}")
                    bar.update(1)
        else:
            logger.warning("stage %d epoch %d: no clusters in either modality, no training step this epoch", stage, epoch + 1)
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
        _log_epoch(record)
        return record


def _fmt_share(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _log_epoch(rec):
    st = rec["clusters"]
    parts = []
    for name in ("visible", "infrared", "global"):
        if name in st:
            s = st[name]
            text = f"{name}: {s['n_clusters']} clusters, noise {_fmt_share(s['noise_share'])}"
            if "mixed_share" in s:
                text += f", mixed {_fmt_share(s['mixed_share'])}"
            if s.get("purity") is not None:
                text += f", purity {_fmt_share(s['purity'])}"
            parts.append(text)
    loss = f"loss intra {rec['loss_intra']:.3f}" if rec["loss_intra"] is not None else "no intra loss"
    if rec["loss_global"] is not None:
        loss += f", global {rec['loss_global']:.3f}"
    logger.info("stage %d epoch %d (%.1fs, lr %.2e): %s; %s", rec["stage"], rec["epoch"], rec["time_s"], rec["lr"],
                loss, "; ".join(parts))


def _save(path, payload):
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


#: Config fields a resumed run may change (they do not change what is computed, up to float rounding).
RUN_FIELDS = ("device", "threads", "num_workers", "cache_images", "feature_batch_size")


def train(config: TrainConfig | None = None, *, dataset: str | None = None, root=None, output, resume: bool = False,
          overrides: dict | None = None, max_epochs=None, progress=None) -> dict:
    """Run (or resume) the two-stage pipeline; return the metrics written to ``output/metrics.json``.

    Parameters
    ----------
    config : TrainConfig
        See :mod:`xmrank.torch.config` (``preset_config("paper")`` for the
        published recipe). Required for a new run; ignored with ``resume=True``
        (the run keeps the configuration saved in its checkpoint).
    dataset : {"sysu", "regdb", "folder", "synthetic"}
        Required for a new run; with ``resume=True`` it defaults to the
        checkpoint's (and must match it when given).
    root : str or path-like
        The data set folder. For ``"synthetic"`` it may be None
        (``output/synthetic``); the set is generated there when the folder is
        missing or empty. With ``resume=True`` it defaults to the checkpoint's.
    output : str or path-like
        Run folder (created). A folder holding a checkpoint needs ``resume=True``.
    resume : bool, default=False
        Continue from ``output/checkpoint.pt``.
    overrides : dict, default=None
        ``{field: value}`` applied over ``config``; with ``resume=True`` only
        the run settings of :data:`RUN_FIELDS` (device, threads, ...) may change.
    max_epochs : int, default=None
        Stop after this many epochs in this call (a later ``resume=True``
        call continues); None runs to the end.
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
        For a bad configuration, data set, device or output folder; nothing
        is written before these checks pass.
    """
    output = os.fspath(output)
    if max_epochs is not None:
        max_epochs = check_int(max_epochs, "max_epochs", minimum=0)
    overrides = dict(overrides or {})
    ckpt_path = os.path.join(output, CHECKPOINT)
    checkpoint = None
    if resume:
        if not os.path.isfile(ckpt_path):
            raise InputError(f"cannot resume: {ckpt_path} not found.")
        try:
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(f"cannot read checkpoint {ckpt_path} ({exc.__class__.__name__}: {exc}).") from None
        fixed = sorted(k for k in overrides if str(k).replace("-", "_") not in RUN_FIELDS)
        if fixed:
            raise InputError(
                f"cannot change {fixed[0]} when resuming: a resumed run keeps its configuration "
                f"(only {', '.join(RUN_FIELDS)} may change)."
            )
        config = config_from_dict(checkpoint["config"])
        if dataset is not None and dataset != checkpoint["dataset"]:
            raise InputError(f"cannot resume: the checkpoint was trained on {checkpoint['dataset']!r}, not {dataset!r}.")
        dataset = checkpoint["dataset"]
        if root is None:
            root = checkpoint["root"]
    else:
        if os.path.isfile(ckpt_path):
            raise InputError(f"output {output} already holds a run ({CHECKPOINT}); pass --resume or choose another folder.")
        if not isinstance(config, TrainConfig):
            raise InputError("config must be a TrainConfig (see xmrank.torch.preset_config) for a new run.")
        if dataset is None:
            raise InputError("dataset is required for a new run: one of sysu, regdb, folder, synthetic.")
    check_option(dataset, "dataset", DATASETS)
    config = validate(apply_overrides(config, overrides) if overrides else config)
    resolve_device(config.device)
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
                            gem_p=config.gem_p, last_stride=config.last_stride)
        trainer = None
        if not needs_data:
            trainer = _Trainer(config, dataset, root, output, progress, model=model)
        os.makedirs(output, exist_ok=True)
        with _run_log(os.path.join(output, LOG)):
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


class _Relay(logging.Handler):
    """Pass records at or above ``level`` on to ``handlers`` (each with its own threshold)."""

    def __init__(self, level, handlers):
        super().__init__(level)
        self.handlers = handlers

    def emit(self, record):
        for h in self.handlers:
            if record.levelno >= h.level:
                h.handle(record)


@contextlib.contextmanager
def _run_log(path):
    """Write INFO records of the "xmrank" logger to ``path`` without showing more than before elsewhere.

    The logger is lowered to INFO for the file; records below its previous
    effective level reach no other handler.
    """
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    file_handler.setLevel(logging.INFO)
    old_level, old_propagate, old_handlers = _base_logger.level, _base_logger.propagate, list(_base_logger.handlers)
    effective = _base_logger.getEffectiveLevel()
    _base_logger.addHandler(file_handler)
    if effective > logging.INFO:
        for h in old_handlers:  # keep the logger's own handlers at their previous threshold
            _base_logger.removeHandler(h)
        _base_logger.setLevel(logging.INFO)
        gate = _Relay(effective, old_handlers)
        _base_logger.addHandler(gate)
        forward = None
        if old_propagate:  # what used to propagate to the root's handlers still does, at the old threshold
            forward = _Relay(effective, logging.getLogger().handlers)
            _base_logger.addHandler(forward)
            _base_logger.propagate = False
    else:
        gate = forward = None
    try:
        yield
    finally:
        for h in (file_handler, gate, forward):
            if h is not None:
                _base_logger.removeHandler(h)
        for h in old_handlers:
            if h not in _base_logger.handlers:
                _base_logger.addHandler(h)
        file_handler.close()
        _base_logger.setLevel(old_level)
        _base_logger.propagate = old_propagate


def _run(trainer, checkpoint, max_epochs):
    t_start = time.perf_counter()
    cfg, dataset, root, output = trainer.cfg, trainer.dataset, trainer.root, trainer.output
    counts = np.bincount(trainer.mods, minlength=2)
    logger.info("training set: %d visible and %d infrared images (%s, %s); device %s",
                counts[0], counts[1], dataset, root, trainer.device)
    metrics_path = os.path.join(output, METRICS)
    ckpt_path = os.path.join(output, CHECKPOINT)
    if checkpoint is None:
        metrics = {"dataset": dataset, "root": root, "config": cfg.to_dict(), "model_selection": MODEL_SELECTION,
                   "untrained": None, "stage1": None, "final": None, "epochs": [], "complete": False}
        stage, done = 1, 0
        _base_logger.info("config: %s", json.dumps(cfg.to_dict()))  # to train.log (stderr only with -v)
    else:
        trainer.model.load_state_dict(checkpoint["model"])
        metrics = checkpoint["metrics"]
        stage, done = checkpoint["stage"], checkpoint["epoch"]
        if stage > 2:
            logger.info("%s holds a finished run; nothing to resume", ckpt_path)
            return metrics
        logger.info("resuming from %s: stage %d, %d epochs done", ckpt_path, stage, done)
    base_time = metrics.get("time_s", 0.0)

    def stamp():
        metrics["time_s"] = round(base_time + time.perf_counter() - t_start, 1)

    if "untrained" not in metrics.get("evaluated", []):
        metrics["untrained"] = trainer.evaluate("untrained")
        metrics.setdefault("evaluated", []).append("untrained")
        _atomic_json(metrics_path, metrics)

    epochs = {1: cfg.epochs_stage1, 2: cfg.epochs_stage2}
    ran = 0
    while stage <= 2:
        opt, sched = trainer.optimizer()
        if checkpoint is not None and checkpoint["stage"] == stage and "optimizer" in checkpoint:
            opt.load_state_dict(checkpoint["optimizer"])
            sched.load_state_dict(checkpoint["scheduler"])
        checkpoint = None
        for epoch in range(done, epochs[stage]):
            if max_epochs is not None and ran >= max_epochs:
                logger.info("stopping after %d epochs as asked; resume to continue", ran)
                stamp()
                _atomic_json(metrics_path, metrics)
                return metrics
            rec = trainer.run_epoch(stage, epoch, opt, sched)
            if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < epochs[stage]:
                rec["eval"] = trainer.evaluate(f"stage {stage} epoch {epoch + 1}")
            metrics["epochs"].append(rec)
            stamp()
            _save(ckpt_path, {"format": 1, "stage": stage, "epoch": epoch + 1, "model": trainer.model.state_dict(),
                              "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "metrics": metrics,
                              "config": cfg.to_dict(), "dataset": dataset, "root": root})
            _atomic_json(metrics_path, metrics)
            ran += 1
        name = "stage1" if stage == 1 else "final"
        if name not in metrics.get("evaluated", []):
            _save(os.path.join(output, "stage1_model.pt" if stage == 1 else "model.pt"),
                  {"model": trainer.model.state_dict(), "config": cfg.to_dict(), "stage": stage})
            metrics[name] = trainer.evaluate(name)
            metrics.setdefault("evaluated", []).append(name)
        stage, done = stage + 1, 0
        # the next stage begins with a fresh optimiser: record the boundary so resume starts there
        _save(ckpt_path, {"format": 1, "stage": stage, "epoch": 0, "model": trainer.model.state_dict(),
                          "metrics": metrics, "config": cfg.to_dict(), "dataset": dataset, "root": root})
        _atomic_json(metrics_path, metrics)
    metrics["complete"] = True
    stamp()
    _atomic_json(metrics_path, metrics)
    _save(ckpt_path, {"format": 1, "stage": 3, "epoch": 0, "model": trainer.model.state_dict(), "metrics": metrics,
                      "config": cfg.to_dict(), "dataset": dataset, "root": root})
    if metrics["final"] is not None and metrics["untrained"] is not None:
        logger.info("done: mAP %.2f%% -> %.2f%%, Rank-1 %.2f%% -> %.2f%%", 100 * metrics["untrained"]["mAP"],
                    100 * metrics["final"]["mAP"], 100 * metrics["untrained"]["rank1"], 100 * metrics["final"]["rank1"])
    return metrics


def load_trained_model(path, *, device="cpu"):
    """Rebuild the network saved in ``model.pt`` / ``stage1_model.pt`` / ``checkpoint.pt`` (evaluation mode).

    Returns
    -------
    model : DualStreamReID
    config : TrainConfig
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"model file {path} not found.")
    state = torch.load(path, map_location="cpu", weights_only=False)
    cfg = config_from_dict(state["config"])
    model = build_model(cfg.arch, pretrained="none", non_local=cfg.non_local, non_local_width=cfg.non_local_width,
                        gem_p=cfg.gem_p, last_stride=cfg.last_stride)
    model.load_state_dict(state["model"])
    return model.to(resolve_device(device) if isinstance(device, str) else device).eval(), cfg
