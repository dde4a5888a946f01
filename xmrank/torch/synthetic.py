"""The procedural visible/infrared image set, as the trainer's ``--dataset synthetic`` uses it.

The generator lives in :mod:`xmrank.datasets.synthetic_images` (numpy and
pillow only, no torch); this module re-exports it for the trainer and for
code written against ``xmrank.torch.synthetic``.
"""

from __future__ import annotations

from ..datasets.synthetic_images import (
    INFRARED_CAMERAS,
    MANIFEST,
    PARTIAL,
    VISIBLE_CAMERAS,
    is_synthetic_root,
    make_synthetic,
    random_identity,
    render_person,
)

__all__ = [
    "make_synthetic",
    "render_person",
    "random_identity",
    "is_synthetic_root",
    "VISIBLE_CAMERAS",
    "INFRARED_CAMERAS",
    "MANIFEST",
    "PARTIAL",
]
