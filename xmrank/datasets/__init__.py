"""Readers for visible/infrared re-identification data sets (SYSU-MM01, RegDB, LLCM).

Each reader returns a list of :class:`ImageRecord` (path, pid, cam, modality);
:func:`records_to_arrays` turns one into label arrays. Nothing here loads images.
"""

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
]
