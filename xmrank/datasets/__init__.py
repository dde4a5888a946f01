"""Readers for visible/infrared re-identification data sets (SYSU-MM01, RegDB).

Each reader returns a list of :class:`ImageRecord` (path, pid, cam, modality);
:func:`records_to_arrays` turns one into label arrays. Nothing here loads images.
"""

from .records import INFRARED, VISIBLE, ImageRecord, record_paths, records_to_arrays
from .regdb import REGDB_DIRECTIONS, regdb_query_gallery, regdb_records
from .sysu import (
    INDOOR_CAMERAS,
    INFRARED_CAMERAS,
    SYSU_MODES,
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
    "regdb_records",
    "regdb_query_gallery",
    "REGDB_DIRECTIONS",
]
