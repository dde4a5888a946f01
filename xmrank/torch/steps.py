"""The per-iteration optimiser steps of the trainer, the optimiser and the precision policy.

- :func:`make_optimizer`: Adam + StepLR from explicit settings;
  :func:`build_optimizer` reads them from a :class:`~.config.TrainConfig`.
- :class:`Precision`: float32, or mixed precision (``amp``) on CUDA.
- :class:`IntraStep`: one step of the intra-modality loss on a visible and
  an infrared batch (stages 1 and 2): ``loss_ir + loss_rgb``.
- :class:`GlobalStep`: one step of the split-and-contrast loss on separate
  infrared and visible batches drawn by global cluster (stage 2):
  ``½ (mean over the infrared rows + mean over the visible rows)``.

A step object holds its loss settings, the device and the precision policy
(explicit arguments, never the whole configuration); the trainer
(:class:`.trainer.Trainer`) builds one of each and calls it with the
network, the epoch's memories and streams, and the optimiser.
:func:`intra_step` and :func:`global_step` are the same steps as one call
with the settings read from a configuration.

In both steps the images of all batches go through the network in one
forward pass (visible rows first, as the published code concatenates them),
so BatchNorm sees the whole step's batch. Memories are updated after the
optimiser step with the detached features of the pass, never inside the
backward pass.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from ..datasets import INFRARED, VISIBLE
from ._require import torch
from .losses import global_step_loss, intra_modality_loss

logger = logging.getLogger(__name__)

__all__ = ["make_optimizer", "build_optimizer", "Precision", "forward_batches", "IntraStep", "GlobalStep",
           "intra_step", "global_step"]


def make_optimizer(model, *, lr: float, weight_decay: float, step_size: int, gamma: float):
    """Adam (lr, weight decay) over the trainable parameters and StepLR(step_size, gamma), stepped per epoch.

    Returns
    -------
    optimizer : torch.optim.Adam
        The fused kernel where this PyTorch has it (several times faster,
        on the CPU too).
    scheduler : torch.optim.lr_scheduler.StepLR
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    return opt, sched


def build_optimizer(model, cfg):
    """:func:`make_optimizer` with the ``lr``, ``weight_decay``, ``step_size`` and ``gamma`` of ``cfg``."""
    return make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, step_size=cfg.step_size, gamma=cfg.gamma)


class Precision:
    """Where the forward pass runs in reduced precision, and how gradients are scaled.

    Parameters
    ----------
    amp : bool
        Mixed precision: ``torch.autocast`` on CUDA with bfloat16 where the GPU
        supports it (no loss scaling needed), else float16 with a
        ``GradScaler``. On the CPU ``amp`` is a no-op (logged once): CPU
        autocast is slower than float32 for these convolutions on most CPUs.
    device : torch.device

    Notes
    -----
    Only the network's forward pass is autocast. The losses, the memories
    and their updates always run in float32 on float32 copies of the
    features.
    """

    def __init__(self, amp: bool, device):
        self.device = torch.device(device)
        self.dtype = None
        self.scaler = None
        if amp and self.device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if self.dtype == torch.float16:
                self.scaler = torch.amp.GradScaler("cuda")
        elif amp:
            logger.info("amp has no effect on %s: training in float32", self.device)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self):
        """The context the forward pass runs in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, loss, opt):
        """Zero the gradients, back-propagate ``loss`` and take one optimiser step."""
        opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()

    def describe(self) -> str:
        return "float32" if self.dtype is None else f"autocast {str(self.dtype).replace('torch.', '')}"


def forward_batches(model, streams, device, precision: Precision):
    """Draw one batch from each stream and run them through ``model`` in one pass.

    Parameters
    ----------
    streams : sequence of (modality, Stream)
        Visible first. A batch's views are stacked view after view (rows
        ``i`` and ``i + B`` are two views of one image).

    Returns
    -------
    list of (features, targets, modalities)
        Per stream: float32 features (L2-normalised, with grad), the target of
        every row (its views repeated) and the modality codes, on ``device``.
    """
    images, mods, targets = [], [], []
    for m, stream in streams:
        *views, index, _ = next(stream.batches)
        images.extend(views)
        n = len(index) * len(views)
        mods.append(torch.full((n,), m, dtype=torch.long))
        targets.append(stream.targets[index].repeat(len(views)))
    x = torch.cat(images)
    if torch.device(device).type == "cuda":
        x = x.pin_memory()  # the concatenation is a new, pageable tensor: pin it so the copy overlaps
    x = x.to(device, non_blocking=True)
    mod = torch.cat(mods).to(device)
    with precision.autocast():
        feats = model(x, mod)
    feats = feats.float()
    out, start = [], 0
    for y, m in zip(targets, mods):
        n = len(y)
        out.append((feats[start:start + n], y.to(device), m.to(device)))
        start += n
    return out


@dataclass
class IntraStep:
    """One optimiser step of the intra-modality loss (stages 1 and 2).

    Parameters
    ----------
    temperature : float
        τ of the memory logits.
    margin : float
        The intra-modality loss's margin (``intra_margin``).
    device : torch.device or str
    precision : Precision
    """

    temperature: float
    margin: float
    device: object
    precision: Precision

    def __call__(self, model, parts, opt) -> float:
        """Draw one batch per modality, step ``opt`` on ``loss_ir + loss_rgb``, then update the memories.

        Parameters
        ----------
        parts : dict
            ``{modality: (HybridMemory, Stream) or None}``.

        Returns
        -------
        loss : float
        """
        used = [(m, parts[m]) for m in (VISIBLE, INFRARED) if parts.get(m) is not None]
        batches = forward_batches(model, [(m, stream) for m, (_, stream) in used], self.device, self.precision)
        loss = 0.0
        for (m, (memory, _)), (f, y, _) in zip(used, batches):
            loss = loss + intra_modality_loss(f, y, memory, temperature=self.temperature, margin=self.margin)
        self.precision.step(loss, opt)
        for (m, (memory, _)), (f, y, _) in zip(used, batches):
            memory.update(f.detach(), y)
        return float(loss.detach())


@dataclass
class GlobalStep:
    """One optimiser step of the split-and-contrast loss on the per-modality global batches (stage 2).

    Parameters
    ----------
    temperature : float
        τ of the memory logits.
    n_candidates : int
        The split-and-contrast loss's candidate prototypes.
    device : torch.device or str
    precision : Precision
    """

    temperature: float
    n_candidates: int
    device: object
    precision: Precision

    def __call__(self, model, part, opt) -> float:
        """Draw one batch per modality by global cluster, step ``opt``, then update the memory.

        Parameters
        ----------
        part : (SplitContrastMemory, {modality: Stream})

        Returns
        -------
        loss : float
            ``½ (mean loss over the infrared rows + mean loss over the
            visible rows)`` (the one term present when a modality has no
            global cluster member). Its gradient is taken against the memory
            before the step; the memory is updated afterwards.
        """
        memory, streams = part
        batches = forward_batches(model, [(m, streams[m]) for m in (VISIBLE, INFRARED) if m in streams], self.device,
                                  self.precision)
        loss, _ = global_step_loss([(f, y) for f, y, _ in batches], memory, temperature=self.temperature,
                                   n_candidates=self.n_candidates)
        self.precision.step(loss, opt)
        memory.update(torch.cat([f.detach() for f, _, _ in batches]), torch.cat([y for _, y, _ in batches]),
                      torch.cat([m for _, _, m in batches]))
        return float(loss.detach())


def intra_step(model, parts, opt, cfg, device, precision: Precision) -> float:
    """:class:`IntraStep` with ``cfg``'s ``temperature`` and ``intra_margin``, called once."""
    return IntraStep(cfg.temperature, cfg.intra_margin, device, precision)(model, parts, opt)


def global_step(model, part, opt, cfg, device, precision: Precision) -> float:
    """:class:`GlobalStep` with ``cfg``'s ``temperature`` and ``n_candidates``, called once."""
    return GlobalStep(cfg.temperature, cfg.n_candidates, device, precision)(model, part, opt)
