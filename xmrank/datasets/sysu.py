"""SYSU-MM01 in its raw layout, and the single-shot test protocol of the published code.

Layout under ``root``::

    cam1/ ... cam6/          one folder per camera
        0001/ 0002/ ...      one folder per identity, zero-padded to 4 digits (``%04d``)
            0001.jpg ...     the images
    exp/train_id.txt         one line of comma-separated ints (the same for val_id, test_id)

Cameras 1, 2, 4, 5 are visible (1 and 2 indoor), 3 and 6 infrared.

Ordering (fixed, because the random gallery draw depends on it): identities in
ascending order (the published readers iterate ``sorted(ids)``; the shipped
files are already sorted, so this equals file order), cameras in ascending
order within the modality, each folder's files sorted by name. Only image
files (by extension, see :data:`xmrank.datasets._files.IMAGE_EXTENSIONS`)
whose real path is inside ``root`` are listed: other files (``Thumbs.db``)
and symbolic links leading out of the root are skipped with one warning per
call; hidden files (names starting with ``.``) and sub-folders are ignored.
Empty identity folders are skipped and draw nothing from the random generator.
"""

from __future__ import annotations

import os
import random

import re

from .._validation import SEED_MAX, InputError, check_int, check_option
from ._files import Skipped, list_images, quote, read_text, real_root, require_dir, shorten

_ID = re.compile(r"[0-9]+")
#: Largest identity id accepted (the folders are named ``%04d``; ids fit in 64 bits).
_MAX_ID = 2**63 - 1
from .records import INFRARED, VISIBLE, ImageRecord

__all__ = [
    "VISIBLE_CAMERAS",
    "INFRARED_CAMERAS",
    "INDOOR_CAMERAS",
    "SYSU_MODES",
    "SYSU_SHOTS",
    "sysu_ids",
    "sysu_train_records",
    "sysu_test_records",
    "sysu_query_gallery",
]

#: Visible cameras of SYSU-MM01.
VISIBLE_CAMERAS = (1, 2, 4, 5)
#: Infrared cameras of SYSU-MM01.
INFRARED_CAMERAS = (3, 6)
#: Gallery cameras of the indoor-search mode.
INDOOR_CAMERAS = (1, 2)
#: Search modes: gallery cameras of each.
SYSU_MODES = {"all": VISIBLE_CAMERAS, "indoor": INDOOR_CAMERAS}
#: Gallery settings: images drawn per (identity, camera).
SYSU_SHOTS = {"single": 1, "multi": 10}


def sysu_ids(root, split: str) -> list[int]:
    """Identity ids listed in ``exp/{split}_id.txt``, as ints in file order.

    Parameters
    ----------
    root : str or path-like
        The SYSU-MM01 folder.
    split : {"train", "val", "test"}

    Raises
    ------
    xmrank.InputError
        If the root or the file is missing, or its first line is not a
        comma-separated list of non-negative integers (ASCII digits, at
        most 64 bits each).
    """
    root = require_dir(root, "SYSU-MM01 root")
    check_option(split, "split", ("train", "val", "test"))
    path = os.path.join(root, "exp", f"{split}_id.txt")
    text = read_text(path, "SYSU-MM01", real_root(root))
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    tokens = [t.strip() for t in first.split(",") if t.strip()]
    if not tokens:
        raise InputError(f"SYSU-MM01: list file {path} is empty; expected one line of comma-separated ids.")
    ids = []
    for t in tokens:
        if t.startswith("-") and _ID.fullmatch(t[1:]):
            raise InputError(f"SYSU-MM01: list file {path} holds a negative id ({shorten(t)}).")
        if not _ID.fullmatch(t):
            raise InputError(f"SYSU-MM01: list file {path} holds {quote(t)}; expected comma-separated integer ids.")
        value = int(t)
        if value > _MAX_ID:
            raise InputError(f"SYSU-MM01: list file {path} holds id {shorten(t)}, beyond 64 bits.")
        ids.append(value)
    return ids


def _records(root, ids, cameras, modality, skipped=None):
    out = []
    root_real = real_root(root)
    own = skipped is None
    skipped = Skipped("SYSU-MM01", root) if own else skipped
    for pid in sorted(set(ids)):
        for cam in cameras:
            folder = os.path.join(root, f"cam{cam}", "%04d" % pid)
            if os.path.isdir(folder):
                out.extend(ImageRecord(os.path.join(folder, name), pid, cam, modality)
                           for name in list_images(folder, root_real, skipped))
    if own:
        skipped.warn()
    return out


def _require_some(records, what, root):
    if not records:
        raise InputError(f"SYSU-MM01: found no {what} images under {root} (expected camK/PPPP/*.jpg folders).")
    return records


def sysu_train_records(root) -> list[ImageRecord]:
    """Every training image: ids of ``train_id.txt`` plus ``val_id.txt``, all six cameras.

    Visible images come first (cameras 1, 2, 4, 5), then infrared (3, 6), each
    in identity-then-camera order. ``pid`` keeps the data set's ids (no
    relabelling). On the full data set: 395 ids, 22,258 visible and 11,909
    infrared images.
    """
    root = require_dir(root, "SYSU-MM01 root")
    ids = sysu_ids(root, "train") + sysu_ids(root, "val")
    skipped = Skipped("SYSU-MM01", root)
    recs = _records(root, ids, VISIBLE_CAMERAS, VISIBLE, skipped) + _records(root, ids, INFRARED_CAMERAS, INFRARED, skipped)
    skipped.warn()
    return _require_some(recs, "training", root)


def sysu_test_records(root) -> list[ImageRecord]:
    """Every image of the ``test_id.txt`` identities, all six cameras (visible first, then infrared).

    The union of every trial's query and gallery: extract features for these
    once, then pick rows per trial (see :func:`xmrank.retrieval.sysu_evaluation`).
    """
    root = require_dir(root, "SYSU-MM01 root")
    ids = sysu_ids(root, "test")
    skipped = Skipped("SYSU-MM01", root)
    recs = _records(root, ids, VISIBLE_CAMERAS, VISIBLE, skipped) + _records(root, ids, INFRARED_CAMERAS, INFRARED, skipped)
    skipped.warn()
    return _require_some(recs, "test", root)


def sysu_query_gallery(root, *, mode: str = "all", trial: int = 0, shot: str = "single"):
    """Query and single-shot (or multi-shot) gallery of one SYSU-MM01 test trial, as the published code draws them.

    Parameters
    ----------
    root : str or path-like
        The SYSU-MM01 folder.
    mode : {"all", "indoor"}, default="all"
        All-search (gallery cameras 1, 2, 4, 5) or indoor-search (1, 2).
        The query is the same in both modes.
    trial : int, default=0
        Seed of the gallery draw; the published protocol uses trials 0-9.
    shot : {"single", "multi"}, default="single"
        Images per (identity, gallery camera): one (``random.choice``), or
        ten (``random.sample(files, 10)``, as the multi-shot setting of the
        code that reports it draws them; a folder with fewer than ten images
        gives all of them, in a random order). 301 and 3,010 images in
        all-search on the full data set.

    Returns
    -------
    query : list of ImageRecord
        Every infrared (camera 3 and 6) image of the test ids: 3,803 on the
        full data set.
    gallery : list of ImageRecord
        One image (ten with ``shot="multi"``) per (test id, gallery camera)
        that has images, drawn from the sorted file list after
        ``random.seed(trial)`` (a private generator, so the global ``random``
        state is untouched).

    Notes
    -----
    Evaluate with ``xmrank.evaluate(..., protocol="sysu")``, which drops
    camera-2 gallery images for camera-3 queries.
    """
    root = require_dir(root, "SYSU-MM01 root")
    check_option(mode, "mode", tuple(SYSU_MODES))
    check_option(shot, "shot", tuple(SYSU_SHOTS))
    trial = check_int(trial, "trial", minimum=0, maximum=SEED_MAX)
    ids = sorted(set(sysu_ids(root, "test")))
    skipped = Skipped("SYSU-MM01", root)
    query = _records(root, ids, INFRARED_CAMERAS, INFRARED, skipped)
    rng = random.Random(trial)
    gallery = []
    root_real = real_root(root)
    for pid in ids:
        for cam in SYSU_MODES[mode]:
            folder = os.path.join(root, f"cam{cam}", "%04d" % pid)
            if not os.path.isdir(folder):
                continue
            names = list_images(folder, root_real, skipped)
            if not names:
                continue
            picks = [rng.choice(names)] if shot == "single" else rng.sample(names, min(SYSU_SHOTS[shot], len(names)))
            gallery.extend(ImageRecord(os.path.join(folder, name), pid, cam, VISIBLE) for name in picks)
    skipped.warn()
    _require_some(query, "infrared test (query)", root)
    _require_some(gallery, "visible test (gallery)", root)
    return query, gallery
