"""The real cross-modal features shipped with xmrank: CLIP image/caption pairs.

The arrays live in the package :mod:`xmrank.data` (``clip_coco_pairs.npz``,
with its licence and ``README.md``); this module only reads them.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_clip_pairs", "CLIP_FILE"]

#: File name of the bundled features inside the :mod:`xmrank.data` package.
CLIP_FILE = "clip_coco_pairs.npz"


def load_clip_pairs():
    """Real cross-modal features: CLIP ViT-B/16 embeddings of 500 COCO images and 500 captions.

    Every image and its caption share an id; the modality gap of CLIP is large
    enough that every row's 20 nearest neighbours are of its own modality.

    Returns
    -------
    features : ndarray of float32, shape (1000, 512)
        Unit-norm embeddings (images first, then captions); the stored norms
        are 1 within 2e-3.
    ids : ndarray of int64, shape (1000,)
        Pair index: image ``i`` and caption ``i`` share id ``i``.
    modalities : ndarray of int64, shape (1000,)
        0 for an image, 1 for a caption.

    Notes
    -----
    From github.com/Weixin-Liang/Modality-Gap (commit 8e20cb2, MIT licence),
    W. Liang et al., "Mind the Gap: Understanding the Modality Gap in
    Multi-modal Contrastive Representation Learning", NeurIPS 2022. The
    licence travels with the file, in ``xmrank/data/LICENSE-Modality-Gap.txt``.

    Examples
    --------
    >>> from xmrank.datasets import load_clip_pairs
    >>> X, ids, modalities = load_clip_pairs()
    >>> X.shape, int(modalities.sum())
    ((1000, 512), 500)
    """
    ref = resources.files("xmrank").joinpath("data").joinpath(CLIP_FILE)
    with resources.as_file(ref) as path, np.load(path) as npz:
        features = np.ascontiguousarray(npz["features"], dtype=np.float32)
        ids = npz["ids"].astype(np.int64)
        modalities = npz["modalities"].astype(np.int64)
    return features, ids, modalities
