"""Flip-averaged feature extraction: ``normalise(f(x) + f(flip(x)))`` per image, in evaluation mode."""

from __future__ import annotations

import numpy as np

from .._progress import progress_bar
from .._validation import check_int
from ._require import torch
from .data import RecordDataset, collate_views
from .transforms import test_transform

F = torch.nn.functional

__all__ = ["extract_features"]


@torch.no_grad()
def extract_features(model, records, *, height: int, width: int, batch_size: int = 128, flip: bool = True,
                     device="cpu", loader=None, num_workers: int = 0, progress=None, desc: str = "features"):
    """Features of ``records`` from ``model``, one L2-normalised row per record.

    Parameters
    ----------
    model : DualStreamReID
        Put in evaluation mode for the call (its previous mode is restored).
    records : sequence of ImageRecord
        Each image goes through its record's modality stem.
    height, width : int
        Input size.
    batch_size : int, default=128
    flip : bool, default=True
        Average the features of the image and its horizontal mirror.
    device : str or torch.device, default="cpu"
    loader : callable, default=None
        Image loader (e.g. an :class:`~xmrank.torch.data.ImageCache`).
    num_workers : int, default=0
    progress : bool, default=None
    desc : str
        Progress-bar label.

    Returns
    -------
    features : ndarray of float32, shape (len(records), D)
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    dataset = RecordDataset(records, test_transform(height, width), loader=loader)
    data = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                       collate_fn=collate_views)
    was_training = model.training
    model.eval()
    out = np.zeros((len(dataset), model.feature_dim), dtype=np.float32)
    try:
        with progress_bar(total=len(dataset), desc=desc, show=progress) as bar:
            for images, index, modality in data:
                images = images.to(device, non_blocking=True)
                modality = modality.to(device)
                feats = model(images, modality)
                if flip:
                    feats = F.normalize(feats + model(torch.flip(images, dims=[3]), modality), dim=1)
                out[index.numpy()] = feats.float().cpu().numpy()
                bar.update(len(index))
    finally:
        model.train(was_training)
    return out
