"""The procedural visible/infrared image set, as the trainer's ``--dataset synthetic`` uses it.

The generator lives in :mod:`xmrank.datasets.synthetic_images` (numpy and
pillow only, no torch); this module re-exports it for the trainer and for
code written against ``xmrank.torch.synthetic``.
"""

from __future__ import annotations

from ..datasets import synthetic_images as _images
from ..datasets.synthetic_images import *  # noqa: F401,F403  (the re-export: its public names)

__all__ = list(_images.__all__)
