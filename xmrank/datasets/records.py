"""``ImageRecord``: one image of a visible/infrared re-identification data set.

Every reader in :mod:`xmrank.datasets` returns a list of these; the helpers
below turn such a list into the numpy arrays the rest of xmrank works with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImageRecord", "VISIBLE", "INFRARED", "records_to_arrays", "record_paths"]

#: Modality code of visible (RGB) images.
VISIBLE = 0
#: Modality code of infrared / thermal images.
INFRARED = 1


@dataclass(frozen=True)
class ImageRecord:
    """One image and its labels.

    Attributes
    ----------
    path : str
        Path of the image file (the data set root joined with its relative path).
    pid : int
        Person identity as the data set spells it (not relabelled).
    cam : int
        Camera number: 1..6 on SYSU-MM01; 1 (visible) or 2 (thermal) on RegDB.
    modality : int
        0 = visible, 1 = infrared / thermal.
    """

    path: str
    pid: int
    cam: int
    modality: int


def records_to_arrays(records):
    """Split records into label arrays.

    Parameters
    ----------
    records : sequence of ImageRecord

    Returns
    -------
    arrays : dict
        ``"pids"``, ``"cams"``, ``"modalities"``: int64 arrays of length
        ``len(records)``; ``"paths"``: an array of str.
    """
    records = list(records)
    return {
        "pids": np.fromiter((r.pid for r in records), dtype=np.int64, count=len(records)),
        "cams": np.fromiter((r.cam for r in records), dtype=np.int64, count=len(records)),
        "modalities": np.fromiter((r.modality for r in records), dtype=np.int64, count=len(records)),
        "paths": np.array([r.path for r in records], dtype=str),
    }


def record_paths(records) -> list[str]:
    """The image paths of ``records``, in order."""
    return [r.path for r in records]
