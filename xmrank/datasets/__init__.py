"""Data for xmrank: readers of the visible/infrared re-identification sets, bundled and synthetic data.

Readers (SYSU-MM01, RegDB, LLCM)
    Each returns a list of :class:`ImageRecord` (path, pid, cam, modality);
    :func:`records_to_arrays` turns one into label arrays. Nothing here loads
    images.
load_clip_pairs
    Real CLIP image/caption features shipped with xmrank (module :mod:`.clip`;
    the file and its licence live in the package :mod:`xmrank.data`).
make_biased, make_cross_modal
    Synthetic feature sets with a modality gap (module :mod:`.synthetic`).
make_synthetic
    The procedural visible/infrared image set in SYSU-MM01 layout, written to
    disk (module :mod:`.synthetic_images`; numpy and pillow, no torch).

The readers are imported with the package; the other names load their
module on first use.
"""

from .._lazy import lazy_exports
from .llcm import (
    LLCM_DIRECTIONS,
    LLCM_INFRARED_CAMERAS,
    LLCM_VISIBLE_CAMERAS,
    llcm_ids,
    llcm_query_gallery,
    llcm_test_records,
    llcm_train_records,
)
from .records import INFRARED, VISIBLE, ImageRecord, record_paths, records_to_arrays
from .regdb import REGDB_DIRECTIONS, regdb_query_gallery, regdb_records
from .sysu import (
    INDOOR_CAMERAS,
    INFRARED_CAMERAS,
    SYSU_MODES,
    SYSU_SHOTS,
    VISIBLE_CAMERAS,
    sysu_ids,
    sysu_query_gallery,
    sysu_test_records,
    sysu_train_records,
)

__all__ = [
    "ImageRecord",
    "VISIBLE",
    "INFRARED",
    "records_to_arrays",
    "record_paths",
    "sysu_ids",
    "sysu_train_records",
    "sysu_test_records",
    "sysu_query_gallery",
    "VISIBLE_CAMERAS",
    "INFRARED_CAMERAS",
    "INDOOR_CAMERAS",
    "SYSU_MODES",
    "SYSU_SHOTS",
    "regdb_records",
    "regdb_query_gallery",
    "REGDB_DIRECTIONS",
    "llcm_ids",
    "llcm_train_records",
    "llcm_test_records",
    "llcm_query_gallery",
    "LLCM_VISIBLE_CAMERAS",
    "LLCM_INFRARED_CAMERAS",
    "LLCM_DIRECTIONS",
    "load_clip_pairs",
    "make_biased",
    "make_cross_modal",
    "make_synthetic",
]

#: public name -> submodule, loaded on first use
_EXPORTS = {
    "load_clip_pairs": "clip",
    "make_biased": "synthetic",
    "make_cross_modal": "synthetic",
    "make_synthetic": "synthetic_images",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
