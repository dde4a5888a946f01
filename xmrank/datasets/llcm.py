"""LLCM (Zhang and Wang, CVPR 2023): reader and test protocol as the authors' code defines them.

LLCM, the Low-Light Cross-Modality benchmark: 46,767 images of 1,064
identities from 9 cameras that switch between visible (VIS) and near-infrared
(NIR) light; 713 identities train, 351 test. Layout under ``root``, as the
authors' ``DEEN/data_manager.py`` and ``data_loader.py`` read it::

    idx/test_id.txt              one line of comma-separated ints (as SYSU-MM01's)
    idx/train_vis.txt            training lists: "relative/path label" per line
    idx/train_nir.txt
    test_vis/cam1/ ... cam9/     visible test images
        0001/ 0002/ ...          one folder per identity, zero-padded (``%04d``)
    test_nir/cam1/ ... cam9/     near-infrared test images (no cam3: NIR cameras
                                 1, 2, 4, 5, 6, 7, 8, 9)

A camera number names one physical camera in both modalities (VIS ``cam4``
and NIR ``cam4`` are the same camera), which the evaluation uses: a gallery
image of the query's identity *and* camera is removed (:func:`xmrank.evaluate`
``protocol="llcm"``, the authors' ``eval_llcm``).

Test protocol (the authors' ``test.py``), 10 trials with ``random.seed(trial)``:

- ``"ir2vis"`` (their ``test_mode = [1, 2]``, the default): every NIR test image
  is a query; the gallery holds one VIS image per (identity, camera), drawn
  with ``random.choice`` from the sorted file list.
- ``"vis2ir"`` (``test_mode = [2, 1]``): every VIS test image on one side, one
  NIR image per (identity, camera) drawn on the other, and the distance
  matrix is scored with the *drawn NIR images as its rows*: their code calls
  ``eval_llcm(-distmat, gall_label, query_label, gall_cam, query_cam)`` with
  ``distmat = gallery @ query.T``. :func:`llcm_query_gallery` returns the
  sides as scored (rows first), so ``xmrank.evaluate`` gives their numbers.

Ordering (the draw depends on it): identities ascending, cameras in the
order above, files sorted by name; only image files inside ``root`` are
listed (see :mod:`xmrank.datasets.sysu`).
"""

from __future__ import annotations

import os
import random
import re

from .._validation import SEED_MAX, InputError, check_int, check_option
from ._files import Skipped, list_images, quote, read_text, real_root, require_dir, safe_join, shorten
from .records import INFRARED, VISIBLE, ImageRecord

__all__ = [
    "LLCM_VISIBLE_CAMERAS",
    "LLCM_INFRARED_CAMERAS",
    "LLCM_DIRECTIONS",
    "llcm_ids",
    "llcm_train_records",
    "llcm_test_records",
    "llcm_query_gallery",
]

#: Cameras of the visible test folders.
LLCM_VISIBLE_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
#: Cameras of the near-infrared test folders (the authors' list has no camera 3).
LLCM_INFRARED_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
#: Direction -> (modality whose images are all used, modality drawn one per (identity, camera)).
LLCM_DIRECTIONS = {"ir2vis": (INFRARED, VISIBLE), "vis2ir": (VISIBLE, INFRARED)}

_FOLDER = {VISIBLE: "test_vis", INFRARED: "test_nir"}
_CAMERAS = {VISIBLE: LLCM_VISIBLE_CAMERAS, INFRARED: LLCM_INFRARED_CAMERAS}
_ID = re.compile(r"[0-9]+")
_LABEL = re.compile(r"[+-]?[0-9]+")
_CAM = re.compile(r"(?:^|[/\\])cam([0-9]+)(?:[/\\]|$)")


def llcm_ids(root, split: str = "test") -> list[int]:
    """Identity ids listed in ``idx/{split}_id.txt``, in file order.

    Raises
    ------
    xmrank.InputError
        If the root or file is missing, or its first line is not a
        comma-separated list of non-negative integers of at most 64 bits.
    """
    root = require_dir(root, "LLCM root")
    check_option(split, "split", ("train", "test"))
    path = os.path.join(root, "idx", f"{split}_id.txt")
    lines = read_text(path, "LLCM", real_root(root)).splitlines()
    tokens = [t.strip() for t in (lines[0] if lines else "").split(",") if t.strip()]
    if not tokens:
        raise InputError(f"LLCM: list file {path} is empty; expected one line of comma-separated ids.")
    ids = []
    for t in tokens:
        if not _ID.fullmatch(t):
            raise InputError(f"LLCM: list file {path} holds {quote(t)}; expected comma-separated non-negative integer ids.")
        if int(t) >= 2**63:
            raise InputError(f"LLCM: list file {path} holds id {shorten(t)}, beyond 64 bits.")
        ids.append(int(t))
    return ids


def _folder_records(root, ids, modality, skipped):
    out = []
    root_real = real_root(root)
    for pid in sorted(set(ids)):
        for cam in _CAMERAS[modality]:
            folder = os.path.join(root, _FOLDER[modality], f"cam{cam}", "%04d" % pid)
            if os.path.isdir(folder):
                out.extend(ImageRecord(os.path.join(folder, name), pid, cam, modality)
                           for name in list_images(folder, root_real, skipped))
    return out


def _draw(root, ids, modality, rng, skipped):
    out = []
    root_real = real_root(root)
    for pid in sorted(set(ids)):
        for cam in _CAMERAS[modality]:
            folder = os.path.join(root, _FOLDER[modality], f"cam{cam}", "%04d" % pid)
            if not os.path.isdir(folder):
                continue
            names = list_images(folder, root_real, skipped)
            if names:
                out.append(ImageRecord(os.path.join(folder, rng.choice(names)), pid, cam, modality))
    return out


def _require(records, what, root):
    if not records:
        raise InputError(f"LLCM: found no {what} images under {root} (expected test_vis/camK/PPPP and "
                         "test_nir/camK/PPPP folders).")
    return records


def llcm_test_records(root) -> list[ImageRecord]:
    """Every test image of the ``idx/test_id.txt`` identities: visible first, then near-infrared.

    The union of every trial's query and gallery: extract features for these
    once (see :func:`xmrank.retrieval.llcm_evaluation`).
    """
    root = require_dir(root, "LLCM root")
    ids = llcm_ids(root, "test")
    skipped = Skipped("LLCM", root)
    recs = _folder_records(root, ids, VISIBLE, skipped) + _folder_records(root, ids, INFRARED, skipped)
    skipped.warn()
    return _require(recs, "test", root)


def llcm_query_gallery(root, *, direction: str = "ir2vis", trial: int = 0):
    """The two sides of one LLCM test trial, rows first, as the authors' ``test.py`` scores them.

    Parameters
    ----------
    root : str or path-like
        The LLCM folder.
    direction : {"ir2vis", "vis2ir"}, default="ir2vis"
        See the module docstring.
    trial : int, default=0
        Seed of the draw (``random.seed(trial)``, in a private generator);
        the protocol uses trials 0-9.

    Returns
    -------
    query : list of ImageRecord
        The rows of the scored distance matrix: ``"ir2vis"``: every NIR test
        image; ``"vis2ir"``: one NIR image per (identity, NIR camera) drawn
        for this trial.
    gallery : list of ImageRecord
        The columns: ``"ir2vis"``: one VIS image per (identity, VIS camera)
        drawn for this trial; ``"vis2ir"``: every VIS test image.

    Notes
    -----
    Evaluate with ``xmrank.evaluate(..., protocol="llcm")``.
    """
    root = require_dir(root, "LLCM root")
    check_option(direction, "direction", tuple(LLCM_DIRECTIONS))
    trial = check_int(trial, "trial", minimum=0, maximum=SEED_MAX)
    ids = llcm_ids(root, "test")
    full_mod, drawn_mod = LLCM_DIRECTIONS[direction]
    skipped = Skipped("LLCM", root)
    full = _folder_records(root, ids, full_mod, skipped)
    drawn = _draw(root, ids, drawn_mod, random.Random(trial), skipped)
    skipped.warn()
    names = {VISIBLE: "visible", INFRARED: "near-infrared"}
    _require(full, f"{names[full_mod]} test", root)
    _require(drawn, f"{names[drawn_mod]} test", root)
    return (full, drawn) if direction == "ir2vis" else (drawn, full)


def llcm_train_records(root) -> list[ImageRecord]:
    """The training images of ``idx/train_vis.txt`` then ``idx/train_nir.txt``, in file order.

    Each line is ``relative/path label``; ``pid`` is the listed label, ``cam``
    the number of a ``camN`` folder in the path (0 when there is none), and
    the path must stay inside ``root``.
    """
    root = require_dir(root, "LLCM root")
    root_real = real_root(root)
    out = []
    for name, modality in (("train_vis", VISIBLE), ("train_nir", INFRARED)):
        path = os.path.join(root, "idx", f"{name}.txt")
        text = read_text(path, "LLCM", root_real)
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or not _LABEL.fullmatch(parts[1]) or not -(2**63) <= int(parts[1]) < 2**63:
                raise InputError(f"LLCM: line {lineno} of {path} is {quote(line, 60)}; expected 'relative/path label' with "
                                 "an integer label of at most 64 bits.")
            image = safe_join(root, parts[0], root_real)
            if image is None:
                raise InputError(f"LLCM: line {lineno} of {path} names {quote(parts[0], 60)}, outside the root; list paths "
                                 f"must be relative to {root} and stay inside it.")
            cam = _CAM.search(parts[0])
            out.append(ImageRecord(image, int(parts[1]), int(cam.group(1)) if cam else 0, modality))
    if not out:
        raise InputError(f"LLCM: the training lists under {os.path.join(root, 'idx')} list no images.")
    return out
