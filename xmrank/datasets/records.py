"""``ImageRecord``: one image of a visible/infrared re-identification data set.

Every reader in :mod:`xmrank.datasets` returns a list of these; the helpers
below turn such a list into the numpy arrays the rest of xmrank works with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .._validation import InputError, plain

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
    try:
        records = list(records)
    except TypeError:
        raise InputError(f"records must be a sequence of ImageRecord; got {type(records).__name__}.") from None
    out = {}
    for field, key in (("pid", "pids"), ("cam", "cams"), ("modality", "modalities")):
        values = np.empty(len(records), dtype=np.int64)
        for i, r in enumerate(records):
            v = getattr(r, field, None)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not -(2**63) <= int(v) < 2**63:
                raise InputError(f"records[{i}].{field} must be an integer of at most 64 bits; got {plain(v)}.")
            values[i] = v
        out[key] = values
    out["paths"] = np.array([os.fspath(r.path) for r in records], dtype=str)
    return out


def record_paths(records) -> list[str]:
    """The image paths of ``records``, in order."""
    return [r.path for r in records]
