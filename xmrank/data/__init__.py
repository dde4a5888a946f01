"""The package that holds the data files shipped with xmrank, and their licence.

``clip_coco_pairs.npz`` (CLIP ViT-B/16 features of 500 COCO images and their
captions, from the "Mind the Gap" repository, MIT; see
``LICENSE-Modality-Gap.txt`` and ``README.md`` next to this file) is read by
:func:`xmrank.datasets.load_clip_pairs`.

The loaders and generators live in :mod:`xmrank.datasets`; the two names
below are kept here as aliases (the same functions) for code written as
``from xmrank.data import ...`` before they moved:

load_clip_pairs
    :func:`xmrank.datasets.load_clip_pairs`.
make_biased
    :func:`xmrank.datasets.make_biased`.
"""

from __future__ import annotations

from ..datasets.clip import load_clip_pairs
from ..datasets.synthetic import make_biased

__all__ = ["load_clip_pairs", "make_biased"]
