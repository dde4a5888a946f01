"""The two training losses of the recipe (``docs/trainer.md``, stages 1 and 2).

- :func:`intra_modality_loss` on a :class:`~xmrank.torch.memory.HybridMemory`:
  ``½ (CE on hard rows + relu(CE on mean rows - margin))``, margin 0.2.
- :func:`split_contrast_loss` on a :class:`~xmrank.torch.memory.SplitContrastMemory`:
  multi-positive InfoNCE whose positives are every prototype of the image's
  global cluster (target ``1/|P|`` each) and whose softmax runs over the
  positives plus the hardest negatives, ``n_candidates`` (50) in all;
  ``½ (loss on hard rows + loss on mean rows)``.
- :func:`global_step_loss`: the stage-2 global step's loss on separate
  infrared and visible batches, ``½ (mean over the infrared rows + mean over
  the visible rows)`` of :func:`split_contrast_loss`.

All divide cosine similarities by the temperature ``tau`` (0.05).
"""

from __future__ import annotations

from .._validation import InputError
from ._require import torch

F = torch.nn.functional

__all__ = ["intra_modality_loss", "split_contrast_loss", "multi_positive_nce", "global_step_loss"]


def intra_modality_loss(features, targets, memory, *, temperature: float = 0.05, margin: float = 0.2):
    """Cross-entropy against the cluster prototypes of a hybrid memory.

    Parameters
    ----------
    features : tensor (B, D)
        L2-normalised features.
    targets : tensor of long (B,)
        Cluster index of each image in ``memory``.
    memory : HybridMemory
    temperature : float, default=0.05
    margin : float, default=0.2
        The mean-row term only counts above this value.
    """
    hard, mean = memory.similarities(features)
    ce_hard = F.cross_entropy(hard / temperature, targets)
    ce_mean = F.cross_entropy(mean / temperature, targets)
    return 0.5 * (ce_hard + torch.relu(ce_mean - margin))


def multi_positive_nce(logits, positives, *, n_candidates: int = 50):
    """Multi-positive InfoNCE over the positives and the hardest negatives.

    Parameters
    ----------
    logits : tensor (B, P)
        Similarities already divided by the temperature.
    positives : bool tensor (B, P)
        At least one positive per row.
    n_candidates : int, default=50
        Size of each row's softmax: its positives plus its
        ``n_candidates - n_positives`` highest-scoring negatives (all
        negatives when there are fewer).

    Returns
    -------
    loss : scalar tensor
        Mean over rows of ``-sum_p (1/|P|) log softmax(candidates)[p]``.
    """
    n_pos = positives.sum(1)
    neg_logits = logits.masked_fill(positives, float("-inf"))
    n_neg = (~positives).sum(1)
    keep = torch.clamp(n_candidates - n_pos, min=0)
    keep = torch.minimum(keep, n_neg)
    k = int(keep.max().item()) if keep.numel() else 0
    candidates = positives.clone()
    if k > 0:
        top = neg_logits.topk(k, dim=1).indices                                   # (B, k), best first
        wanted = torch.arange(k, device=logits.device).unsqueeze(0) < keep.unsqueeze(1)
        candidates.scatter_(1, top, wanted | candidates.gather(1, top))
    masked = logits.masked_fill(~candidates, float("-inf"))
    log_prob = F.log_softmax(masked, dim=1)
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob))
    return (-pos_log_prob.sum(1) / n_pos.clamp(min=1).to(logits.dtype)).mean()


def split_contrast_loss(features, clusters, memory, *, temperature: float = 0.05, n_candidates: int = 50):
    """BMIL's split-and-contrast loss on a :class:`~xmrank.torch.memory.SplitContrastMemory`.

    Parameters
    ----------
    features : tensor (B, D)
        L2-normalised features.
    clusters : tensor of long (B,)
        Global cluster of each image.
    memory : SplitContrastMemory
    temperature : float, default=0.05
    n_candidates : int, default=50
    """
    positives = memory.positives(clusters)
    hard, mean = memory.similarities(features)
    loss_hard = multi_positive_nce(hard / temperature, positives, n_candidates=n_candidates)
    loss_mean = multi_positive_nce(mean / temperature, positives, n_candidates=n_candidates)
    return 0.5 * (loss_hard + loss_mean)


def global_step_loss(batches, memory, *, temperature: float = 0.05, n_candidates: int = 50):
    """The split-and-contrast loss of one global step: the mean of the per-modality batch means.

    Parameters
    ----------
    batches : sequence of (features, clusters)
        One pair per modality batch (infrared, visible): L2-normalised
        features (B_m, D) and the global cluster of each row.
    memory : SplitContrastMemory
        Read only: update it after the optimiser step (the published code
        updates it inside the backward pass, so that the second term's
        gradient sees prototypes the first term's backward has moved; the
        gradient here is that of the loss it reports).
    temperature, n_candidates
        See :func:`split_contrast_loss`.

    Returns
    -------
    loss : scalar tensor
        ``(1/M) sum_m split_contrast_loss(batch m)`` over the ``M`` batches
        given: ``½ (loss_ir + loss_rgb)`` with both modalities.
    terms : list of scalar tensors
        The per-modality terms.
    """
    terms = [split_contrast_loss(f, c, memory, temperature=temperature, n_candidates=n_candidates)
             for f, c in batches]
    if not terms:
        raise InputError("global_step_loss needs at least one (features, clusters) batch.")
    return sum(terms) / len(terms), terms
