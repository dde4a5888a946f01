"""RegDB through its ``idx/`` list files, and the visible<->thermal test protocol.

Layout under ``root``::

    idx/train_visible_1.txt ... idx/test_thermal_10.txt
    Visible/... Thermal/...      the images, at the paths the lists name

Each list line is ``relative/path.bmp label``; the path must stay inside
``root`` (no absolute paths, no ``..``, no links leading out), and the label
is a non-negative integer of at most 64 bits. Trials 1-10 each have their own
train/test split (one model is trained per trial). Cameras: 1 = visible,
2 = thermal (RegDB has one camera per modality).
"""

from __future__ import annotations

import os
import re

from .._validation import InputError, check_int, check_option
from ._files import quote, read_text, real_root, require_dir, safe_join, shorten

_LABEL = re.compile(r"[+-]?[0-9]+")
from .records import INFRARED, VISIBLE, ImageRecord

__all__ = ["REGDB_DIRECTIONS", "regdb_records", "regdb_query_gallery"]

_MODALITY = {"visible": (VISIBLE, 1), "thermal": (INFRARED, 2)}
#: Direction -> (query modality, gallery modality).
REGDB_DIRECTIONS = {"v2t": ("visible", "thermal"), "t2v": ("thermal", "visible")}


def regdb_records(root, *, split: str = "train", trial: int = 1, modality: str = "visible") -> list[ImageRecord]:
    """The images listed in ``idx/{split}_{modality}_{trial}.txt``, in file order.

    Parameters
    ----------
    root : str or path-like
        The RegDB folder (holding ``idx/``).
    split : {"train", "test"}, default="train"
    trial : int, default=1
        Split number, 1-10 in the published protocol.
    modality : {"visible", "thermal"}, default="visible"

    Returns
    -------
    records : list of ImageRecord
        ``path`` = root joined with the listed relative path, ``pid`` = the
        listed label, ``cam`` = 1 (visible) or 2 (thermal), ``modality`` = 0
        or 1. The test lists hold 2,060 images each on the full data set.

    Raises
    ------
    xmrank.InputError
        If the root or list file is missing, or a line is not ``path label``
        with an integer label that fits in 64 bits, or its path is absolute
        or leads outside ``root`` (the message names the file and line).
    """
    root = require_dir(root, "RegDB root")
    check_option(split, "split", ("train", "test"))
    check_option(modality, "modality", tuple(_MODALITY))
    trial = check_int(trial, "trial", minimum=1, maximum=2**63 - 1)
    path = os.path.join(root, "idx", f"{split}_{modality}_{trial}.txt")
    root_real = real_root(root)
    text = read_text(path, "RegDB", root_real)
    mod, cam = _MODALITY[modality]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not _LABEL.fullmatch(parts[1]):
            raise InputError(
                f"RegDB: line {lineno} of {path} is {quote(line, 60)}; expected 'relative/path label' with an integer label."
            )
        label = int(parts[1])
        if not -(2**63) <= label < 2**63:
            raise InputError(f"RegDB: line {lineno} of {path} has label {shorten(parts[1])}, beyond 64 bits.")
        image = safe_join(root, parts[0], root_real)
        if image is None:
            raise InputError(
                f"RegDB: line {lineno} of {path} names {quote(parts[0], 60)}, outside the root; list paths must be relative "
                f"to {root} and stay inside it."
            )
        out.append(ImageRecord(image, label, cam, mod))
    if not out:
        raise InputError(f"RegDB: list file {path} lists no images.")
    return out


def regdb_query_gallery(root, *, trial: int = 1, direction: str = "v2t"):
    """Query and gallery of one RegDB test trial.

    Parameters
    ----------
    root : str or path-like
    trial : int, default=1
    direction : {"v2t", "t2v"}, default="v2t"
        ``"v2t"``: visible queries against the thermal gallery (the published
        default); ``"t2v"``: the lists swapped.

    Returns
    -------
    query, gallery : list of ImageRecord
        The ``test_{visible,thermal}_{trial}.txt`` lists (2,060 each on the
        full data set). Evaluate with ``protocol="regdb"`` (nothing removed).
    """
    check_option(direction, "direction", tuple(REGDB_DIRECTIONS))
    q_mod, g_mod = REGDB_DIRECTIONS[direction]
    query = regdb_records(root, split="test", trial=trial, modality=q_mod)
    gallery = regdb_records(root, split="test", trial=trial, modality=g_mod)
    return query, gallery
