"""Flip-averaged feature extraction in evaluation mode.

Per image, ``(f(x) + f(flip(x))) / 2`` of the network's L2-normalised
features, then, for evaluation only, L2-normalised again:

- ``normalize=True`` (retrieval evaluation): the published code's
  ``extract_query_feat`` / ``extract_gall_feat``;
- ``normalize=False`` (clustering and memory initialisation): the published
  code's ``evaluators.extract_features``, whose rows are *not* re-normalised
  (their norms are below 1 where the two views disagree).
"""

from __future__ import annotations

import logging

import numpy as np

from .._params import MAX_IMAGE_SIDE
from .._progress import progress_bar
from .._validation import InputError, check_int
from ._require import torch
from .data import ImageCache, RecordDataset, collate_views, default_num_workers, worker_errors
from .transforms import test_transform

F = torch.nn.functional

logger = logging.getLogger(__name__)

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(model, records, *, height: int, width: int, batch_size: int = 128, flip: bool = True,
                     normalize: bool = True, interpolation: str | None = None, device="cpu", loader=None,
                     num_workers: int = -1, progress=None, desc: str = "features"):
    """Features of ``records`` from ``model``, one row per record.

    Parameters
    ----------
    model : DualStreamReID
        Put in evaluation mode for the call (its previous mode is restored).
        ``model(images, modality)`` must return L2-normalised rows.
    records : sequence of ImageRecord
        Each image goes through its record's modality stem.
    height, width : int
        Input size.
    batch_size : int, default=128
    flip : bool, default=True
        Average the features of the image and of its horizontal mirror.
    normalize : bool, default=True
        L2-normalise the flip-averaged rows. True for retrieval evaluation;
        False for the features that clustering and the memory
        initialisation use (as the published code does).
    interpolation : {"bilinear", "bicubic"}, default=None
        Resize interpolation of :func:`~xmrank.torch.transforms.test_transform`
        (None: its default). The published code resizes the images it
        clusters with bicubic (``get_test_loader``) and its evaluation images
        with PIL's Lanczos filter; images already at ``height`` x ``width``
        are not resampled at all.
    device : str or torch.device, default="cpu"
    loader : callable, default=None
        Image loader (e.g. an :class:`~xmrank.torch.data.ImageCache`).
    num_workers : int, default=-1
        DataLoader worker processes decoding and resizing images; -1 means
        ``min(4, CPU cores)`` (:func:`~xmrank.torch.data.default_num_workers`),
        except with an in-memory ``loader`` cache, which lives in this
        process (then 0). Pinned memory when ``device`` is CUDA.
    progress : bool, default=None
    desc : str
        Progress-bar label.

    Returns
    -------
    features : ndarray of float32, shape (len(records), D)
        Unit rows with ``normalize=True``; rows of norm at most 1 otherwise.

    Raises
    ------
    xmrank.InputError
        If ``batch_size`` is not a positive integer, ``height`` or ``width``
        is outside 8 to :data:`xmrank._params.MAX_IMAGE_SIDE`, ``flip`` /
        ``normalize`` is not a bool, an image cannot be read (in a worker
        process too: its message, one line), or the network gives NaN or
        infinite features.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    height = check_int(height, "height", minimum=8, maximum=MAX_IMAGE_SIDE)
    width = check_int(width, "width", minimum=8, maximum=MAX_IMAGE_SIDE)
    for name, value in (("flip", flip), ("normalize", normalize)):
        if not isinstance(value, (bool, np.bool_)):
            raise InputError(f"{name} must be True or False; got {value!r}.")
    transform = (test_transform(height, width) if interpolation is None
                 else test_transform(height, width, interpolation=interpolation))
    dataset = RecordDataset(records, transform, loader=loader)
    num_workers = check_int(num_workers, "num_workers", minimum=-1)
    if num_workers == -1:
        num_workers = 0 if isinstance(loader, ImageCache) else default_num_workers()
    data = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                       collate_fn=collate_views, pin_memory=torch.device(device).type == "cuda")
    was_training = model.training
    model.eval()
    out = np.zeros((len(dataset), model.feature_dim), dtype=np.float32)
    try:
        with progress_bar(total=len(dataset), desc=desc, show=progress) as bar:
            for images, index, modality in worker_errors(data):
                images = images.to(device, non_blocking=True)
                modality = modality.to(device)
                feats = model(images, modality)
                if flip:
                    feats = (feats + model(torch.flip(images, dims=[3]), modality)) / 2
                if normalize:
                    feats = F.normalize(feats, dim=1)
                out[index.numpy()] = feats.float().cpu().numpy()
                bar.update(len(index))
    finally:
        model.train(was_training)
    bad = ~np.isfinite(out)
    if bad.any():
        rows = int(bad.any(axis=1).sum())
        raise InputError(f"the network gave NaN or infinite features for {rows} of {len(out)} image(s); "
                         "its weights or inputs are not usable (nothing was written).")
    return out

