"""Reading feature files and writing outputs, as the command line does.

Readers (:mod:`xmrank.io.readers`, :mod:`xmrank.io.bundle`)
    :func:`read_features`, :func:`read_bundle`, :func:`read_arrays` and
    :func:`read_array` read .npy, .npz, .pt/.pth (torch), .csv/.tsv/.txt,
    .h5/.hdf5 (h5py) and .parquet (pyarrow) files; ``PATH.EXT:KEY`` names
    one array of a file. Nothing read runs code.
Outputs (:mod:`xmrank.io.outputs`)
    :func:`check_output` and :func:`check_outputs` refuse, before any work,
    an output path that cannot be written or would overwrite an input;
    :func:`write_array`, :func:`write_arrays`, :func:`write_json`,
    :func:`write_text` and :func:`write_sparse` write atomically (a
    temporary file renamed into place, :mod:`xmrank._atomic`), and
    :func:`committed` makes several writes replace their targets together.
Formats (:mod:`xmrank.io.formats`)
    The endings read, the array names of a feature file
    (:data:`~xmrank.io.formats.BUNDLE_KEYS`), format sniffing.

Every reader and check fails with an :class:`xmrank.InputError` of one line
naming the argument (``name``, ``"path"`` by default), the file, and what was
expected; the writers raise :class:`OSError` naming the target.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> import xmrank
>>> path = os.path.join(tempfile.mkdtemp(), "gallery.npz")
>>> xmrank.io.write_arrays(path, {"features": np.eye(4, 3), "modalities": [0, 1, 0, 1]})
>>> xmrank.io.read_features(path).shape
(4, 3)
>>> xmrank.io.read_bundle(path)["modalities"]
array([0, 1, 0, 1])
>>> xmrank.io.read_features(path + ":labels")
Traceback (most recent call last):
...
xmrank._validation.InputError: path: ... has no array 'labels'.
"""

from .bundle import read_bundle, read_features
from .formats import BUNDLE_KEYS, FORMATS, FORMATS_HELP
from .outputs import (check_npy_output, check_output, check_outputs,
                      check_outside_roots, committed, file_of, same_file, write_array, write_arrays, write_json,
                      write_sparse, write_text)
from .readers import read_array, read_arrays

__all__ = [
    "BUNDLE_KEYS",
    "FORMATS",
    "FORMATS_HELP",
    "read_features",
    "read_bundle",
    "read_arrays",
    "read_array",
    "check_output",
    "check_outputs",
    "check_outside_roots",
    "check_npy_output",
    "file_of",
    "same_file",
    "committed",
    "write_array",
    "write_arrays",
    "write_json",
    "write_text",
    "write_sparse",
]
