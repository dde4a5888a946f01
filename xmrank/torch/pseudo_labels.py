"""One epoch's pseudo labels, memories and batch streams (the recipe: ``docs/trainer.md``).

- :func:`cluster_epoch`: intra-modality clustering (subset clustering of the
  larger modality) and, in stage 2, global clustering of subset 1 of the
  larger modality plus every row of the other (every row when
  ``subset_ratio`` is 1.0, as in the RegDB recipe); with ``global_labels``
  other than ``jaccard``, those rows' per-modality clusters joined by
  Hungarian or optimal-transport matching instead (the baselines).
- :func:`intra_parts`: per modality, a :class:`~xmrank.torch.memory.HybridMemory`
  and a :class:`Stream` of batches drawn by pseudo-identity.
- :func:`global_part`: a :class:`~xmrank.torch.memory.SplitContrastMemory`
  and one :class:`Stream` per modality, both drawn by *global* cluster
  (the published code's separate ``train_loader_global_ir`` / ``_rgb``).

Features given here are the un-normalised flip averages the published code
clusters and initialises its memories with; the memories normalise each
prototype (``normalise(mean) = normalise(sum)``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .. import clustering
from .._validation import InputError
from ..datasets import INFRARED, VISIBLE
from ._require import torch
from .data import RecordDataset, SeededBatches, make_loader, worker_errors
from .memory import HybridMemory, SplitContrastMemory, cluster_means
from .sampler import PseudoIdentitySampler
from .transforms import train_transform

logger = logging.getLogger("xmrank.train")

__all__ = ["MODALITY_NAMES", "Stream", "StreamMaker", "cluster_epoch", "fitted_k", "identity_ari", "purity", "smallest_group",
           "intra_parts", "global_part"]

MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}


def _child(rng) -> np.random.Generator:
    """An independent generator drawn from ``rng`` (each loader gets its own, so their draws never interleave)."""
    return np.random.default_rng(int(rng.integers(0, 2**63 - 1)))


def purity(labels, pids):
    """Share of clustered, labelled rows whose cluster's majority identity is theirs (reporting only)."""
    keep = (labels >= 0) & (pids >= 0)
    if not keep.any():
        return None
    pairs, counts = np.unique(np.stack([labels[keep], pids[keep]]), axis=1, return_counts=True)
    starts = np.flatnonzero(np.r_[True, pairs[0, 1:] != pairs[0, :-1]])
    return float(np.maximum.reduceat(counts, starts).sum() / keep.sum())


def identity_ari(labels, pids):
    """Adjusted Rand index of a clustering against the training identities (reporting only).

    Rows of unknown identity (-1) are left out; noise rows (-1) count as
    singletons. None when no row has a known identity.
    """
    from sklearn.metrics import adjusted_rand_score

    known = pids >= 0
    if not known.any():
        return None
    pred = np.asarray(labels[known], dtype=np.int64).copy()
    noise = pred < 0
    pred[noise] = pred.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return float(adjusted_rand_score(pids[known], pred))


def fitted_k(k1: int, k2: int, n_rows: int, parts: int = 1):
    """``k1``, ``k2`` lowered to fit the smallest clustered group (tiny data sets).

    ``parts``: how many groups ``k1`` is split over (2 for the modality-aware
    lists, ``k1 // 2`` neighbours from each modality, whose expansion length
    ``k2`` may not exceed ``k1 // 2``). ``"auto"`` passes through: the
    clustering chooses it at each round, within what the rows allow.
    """
    if k1 == "auto":  # chosen by the clustering among the candidates these rows allow
        return k1, k2
    k1_fit = min(k1, parts * max(1, n_rows - 1))
    if k2 == "auto":
        return k1_fit, k2
    k2_fit = min(k2, max(1, k1_fit // parts))
    if k1_fit < k1:
        logger.info("k1 lowered from %d to %d: a clustered group has only %d rows", k1, k1_fit, n_rows)
    return k1_fit, k2_fit


def smallest_group(mods, cfg, larger: int) -> int:
    """Rows of the smallest group clustered each epoch (a subset of the larger modality, or the other one).

    Raises
    ------
    xmrank.InputError
        When that group has fewer than 2 rows: nothing could be clustered.
        The trainer checks this before it writes anything.
    """
    n_parts = max(1, int(round(1.0 / cfg.subset_ratio)))
    n_larger = int((mods == larger).sum())
    n_other = int((mods != larger).sum())
    smallest = min(n_other, n_larger // n_parts)
    if smallest < 2:
        raise InputError(
            f"too few training images to cluster: subset_ratio={cfg.subset_ratio} splits the {n_larger} rows of the "
            f"larger modality into {n_parts} subsets, and the smallest group clustered has {smallest} rows "
            f"(add images or raise subset_ratio)."
        )
    return smallest


def cluster_epoch(feats, mods, pids, cfg, rng, *, stage: int, larger: int) -> dict:
    """Pseudo labels of one epoch.

    Parameters
    ----------
    feats : ndarray (n, D)
        Flip-averaged features of every training row (not re-normalised).
    mods, pids : ndarray of int (n,)
        Modality code and identity (-1 unknown; used for the purity report only).
    cfg : TrainConfig
    rng : numpy Generator
        Draws the subsets.
    stage : {1, 2}
        Stage 2 adds global clustering.
    larger : int
        Modality code whose rows are split into subsets.

    Returns
    -------
    out : dict
        ``"intra"`` (labels per row, -1 = not clustered or noise), ``"stats"``
        (per-modality and global summaries; with "auto" settings ``"chosen"``,
        this round's choices and their measurements), and in stage 2 ``"global_rows"``
        (the rows clustered globally) and ``"global"`` (their labels).
    """
    smallest = smallest_group(mods, cfg, larger)
    n_other = int((mods != larger).sum())
    k1, k2 = fitted_k(cfg.k1, cfg.k2, smallest)
    t0 = time.perf_counter()
    labels, subsets, intra_info = clustering.subset_cluster(
        feats, mods, subset_modality=larger, ratio=cfg.subset_ratio, seed=rng, eps=cfg.eps_intra,
        min_samples=cfg.min_samples, k1=k1, k2=k2, knn=cfg.cluster_knn, device=cfg.cluster_device, progress=False,
        return_info=True)
    chosen = {"intra": {m: i.get("chosen", {}) for m, i in intra_info.get("per_modality", {}).items()}}
    stats = {}
    for m, name in MODALITY_NAMES.items():
        rows = subsets[0] if m == larger else np.flatnonzero(mods == m)
        s = clustering.cluster_summary(labels[rows])
        s["purity"] = purity(labels[rows], pids[rows])
        s["ari"] = identity_ari(labels[rows], pids[rows])
        stats[name] = s
    out = {"intra": labels, "stats": stats}
    if stage == 2:
        # subset 1 of the larger modality (all of it when it is not split) and every row of the other
        g_larger = subsets[1] if len(subsets) > 1 else subsets[0]
        g_rows = np.sort(np.concatenate([g_larger, np.flatnonzero(mods != larger)]))
        if cfg.global_method == "vanilla":
            kg1, kg2 = fitted_k(cfg.k1, cfg.k2, len(g_rows))
        else:  # k1 // 2 neighbours from each modality
            kg1, kg2 = fitted_k(cfg.k1, cfg.k2, min(len(g_larger), n_other), parts=2)
        matched = {}
        if cfg.global_labels == "jaccard":
            glabels, ginfo = clustering.cluster(feats[g_rows], modalities=mods[g_rows], method=cfg.global_method,
                                                eps=cfg.eps_global, min_samples=cfg.min_samples, k1=kg1, k2=kg2,
                                                knn=cfg.cluster_knn, device=cfg.cluster_device, progress=False,
                                                return_info=True)
            chosen["global"] = ginfo.get("chosen", {})
        else:
            glabels, matched = _matched_global(feats, mods, labels, g_rows, g_larger, subsets[0], cfg, kg1, kg2)
        s = clustering.cluster_summary(glabels, mods[g_rows])
        s["labels"] = cfg.global_labels
        s.update(matched)
        s["purity"] = purity(glabels, pids[g_rows])
        s["ari"] = identity_ari(glabels, pids[g_rows])
        stats["global"] = s
        out["global_rows"] = g_rows
        out["global"] = glabels
    if any(v == "auto" for v in (cfg.k1, cfg.k2, cfg.eps_intra, cfg.eps_global)):
        stats["chosen"] = chosen  # this round's "auto" choices, each with its measurement
    stats["time_s"] = round(time.perf_counter() - t0, 2)
    return out


def _matched_global(feats, mods, labels, g_rows, g_larger, clustered_larger, cfg, k1, k2):
    """Stage-2 global labels of ``g_rows`` from per-modality clusters joined by :func:`xmrank.match_clusters`.

    The other modality keeps this epoch's intra-modality clusters (all its
    rows are among ``g_rows``); the larger modality's global rows
    (``g_larger``, its subset 1) are clustered alone the same way (vanilla
    Jaccard, ``eps_intra``), unless they are the rows already clustered
    (no subset split). Returns the labels and ``{"n_matches": ...}`` (or
    ``n_assigned_rows`` for ``ot-instance``).
    """
    from ..association import match_clusters

    per = labels.copy()
    if not np.array_equal(g_larger, clustered_larger):
        sub = clustering.cluster(feats[g_larger], method="vanilla", eps=cfg.eps_intra, min_samples=cfg.min_samples,
                                 k1=k1, k2=k2, knn=cfg.cluster_knn, device=cfg.cluster_device, progress=False)
        per[g_larger] = np.where(sub >= 0, sub + per.max(initial=-1) + 1, -1)
    glabels, info = match_clusters(feats[g_rows], per[g_rows], mods[g_rows], method=cfg.global_labels,
                                   return_info=True)
    key = "n_assigned_rows" if cfg.global_labels == "ot-instance" else "n_matches"
    return glabels, {key: info[key]}


def _loop(loader):
    while True:
        yield from loader


@dataclass
class Stream:
    """Endless batches of one modality and the training target of each of its dataset rows.

    Attributes
    ----------
    batches : iterator
        ``(view, ..., index, modality)`` tuples (:func:`~xmrank.torch.data.collate_views`).
    targets : tensor of long
        Target of each row of the stream's dataset (a memory row or a global cluster).
    """

    batches: object
    targets: object


class StreamMaker:
    """Builds the per-modality :class:`Stream` of an epoch.

    Parameters
    ----------
    records : list of ImageRecord
        The training rows.
    cfg : TrainConfig
    image_loader : callable or None
        ``path -> PIL image`` (an :class:`~xmrank.torch.data.ImageCache`).
    num_workers : int
        DataLoader workers (already resolved, >= 0).
    pin_memory : bool
    """

    def __init__(self, records, cfg, *, image_loader=None, num_workers: int = 0, pin_memory: bool = False):
        self.records = records
        self.cfg = cfg
        self.image_loader = image_loader
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.cams = np.array([r.cam for r in records], dtype=np.int64)
        size = (cfg.height, cfg.width)
        kw = dict(erasing=cfg.erasing)
        self.visible_views = (train_transform(*size, "visible", **kw), train_transform(*size, "visible_ca", **kw))
        self.infrared_views = {
            stage: (train_transform(*size, "infrared", gray_probability=cfg.gray_probability,
                                    color_jitter=bool(stage == 1 and cfg.ir_color_jitter_stage1), **kw),)
            for stage in (1, 2)
        }

    def batch_size(self, modality: int, *, global_step: bool) -> int:
        """Images per batch of ``modality`` in the intra-modality or the global loader."""
        cfg = self.cfg
        if global_step:
            return cfg.global_batch_size_rgb if modality == VISIBLE else cfg.global_batch_size_ir
        return cfg.batch_size_rgb if modality == VISIBLE else cfg.batch_size_ir

    def stream(self, rows, labels, modality: int, rng, *, stage: int, global_step: bool = False) -> Stream:
        """Batches of ``rows`` (all of ``modality``) drawn by ``labels`` (0..C-1, one per row)."""
        views = self.visible_views if modality == VISIBLE else self.infrared_views[stage]
        dataset = RecordDataset([self.records[i] for i in rows], views, loader=self.image_loader)
        sampler = PseudoIdentitySampler(labels, self.cams[rows],
                                        batch_size=self.batch_size(modality, global_step=global_step),
                                        num_instances=self.cfg.num_instances, iterations=self.cfg.iters,
                                        seed=_child(rng))
        loader = make_loader(dataset, batch_sampler=SeededBatches(sampler, _child(rng)), num_workers=self.num_workers,
                             pin_memory=self.pin_memory, seed=_child(rng))
        return Stream(worker_errors(_loop(loader)), torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def intra_parts(feats, mods, labels, maker: StreamMaker, rng, *, stage: int, device) -> dict:
    """``{modality: (HybridMemory, Stream) or None}``: None for a modality without clusters this epoch."""
    parts = {}
    for m in (VISIBLE, INFRARED):
        rows = np.flatnonzero((mods == m) & (labels >= 0))
        if rows.size == 0:
            logger.warning("no %s clusters this epoch: its intra-modality loss is skipped", MODALITY_NAMES[m])
            parts[m] = None
            continue
        _, local = np.unique(labels[rows], return_inverse=True)
        memory = HybridMemory(cluster_means(torch.from_numpy(feats[rows]), local, int(local.max()) + 1),
                              momentum=maker.cfg.momentum).to(device)
        parts[m] = (memory, maker.stream(rows, local, m, rng, stage=stage))
    return parts


def global_part(feats, mods, g_rows, glabels, maker: StreamMaker, rng, *, device):
    """``(SplitContrastMemory, {modality: Stream})`` of the global clusters, or None without any.

    Each modality present in the clustered rows gets its own stream, drawn by
    global cluster: the infrared stream over the infrared members of the
    global clusters, the visible one over the visible members.
    """
    keep = glabels >= 0
    if not keep.any():
        logger.warning("global clustering found no cluster this epoch: the split-and-contrast loss is skipped")
        return None
    rows = g_rows[keep]
    _, local = np.unique(glabels[keep], return_inverse=True)
    memory = SplitContrastMemory(torch.from_numpy(feats[rows]), local, mods[rows], momentum=maker.cfg.momentum,
                                 split=maker.cfg.split_contrast).to(device)
    streams = {}
    for m in (VISIBLE, INFRARED):
        mine = mods[rows] == m
        if not mine.any():
            logger.warning("no %s image in a global cluster this epoch: the global loss uses the other modality only",
                           MODALITY_NAMES[m])
            continue
        streams[m] = maker.stream(rows[mine], local[mine], m, rng, stage=2, global_step=True)
    return memory, streams
