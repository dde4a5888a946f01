"""The one reader of input bundles: a feature file and its per-row arrays, for every command.

A bundle is any file :func:`xmrank.io.read_arrays` reads (.npy, .npz,
.pt, .csv, .h5, .parquet), read by :func:`xmrank.io.read_bundle` (here with
failures as one-line usage errors). Its arrays are found by the names of
:data:`xmrank.io.formats.BUNDLE_KEYS`, the same for ``cluster``, ``diagnose``,
``evaluate``, ``rerank`` and ``visrank`` (the table is in :mod:`xmrank.io.bundle`).
"""

from __future__ import annotations

from ._io import fail, load_array, read_bundle

__all__ = ["BUNDLE_HELP", "load_bundle", "load_side", "read_bundle"]

#: The bundle's array names, for --help texts.
BUNDLE_HELP = ("'features' (or 'X', 'feats', 'embeddings'), 'modalities' (or 'mods'), 'cameras' (or 'cams', "
               "'camids'), 'ids' (or 'labels', 'pids') and 'names' (or 'paths')")

#: The command-line option behind each per-row field of ``cluster`` and ``diagnose``.
_OPTION = {"modalities": "--modalities", "cameras": "--cameras", "ids": "--ids", "names": "--names"}


def load_bundle(features_path, *, modalities=None, cameras=None, ids=None, names=None, spellings=None) -> dict:
    """FEATURES and its per-row arrays (``cluster``, ``diagnose``): options win over the bundled arrays.

    Each option is a file of one array (or ``PATH:KEY``). ``spellings``
    (``{field: option}``) names an option as the user typed it in messages
    (``--labels``, the older spelling of ``--ids``).

    Returns
    -------
    arrays : dict
        ``features`` and, when present, ``modalities``, ``cameras``, ``ids``, ``names``.
    """
    option = {**_OPTION, **(spellings or {})}
    arrays = read_bundle(features_path, name="FEATURES")
    for field, path in (("modalities", modalities), ("cameras", cameras), ("ids", ids), ("names", names)):
        if path is not None:
            arrays[field] = load_array(path, name=option[field])
    for field in ("modalities", "cameras", "ids"):
        if arrays.get(field) is not None and arrays[field].dtype == object:
            fail(f"{option[field]} must hold integer or string labels.")
    return arrays


def load_side(path, side: str, overrides: dict, options: dict | None = None) -> dict:
    """The arrays of one side of a retrieval (``evaluate``, ``rerank``, ``visrank``): a bundle, or nothing.

    ``overrides`` maps a field (``ids``, ``cameras``, ``modalities``) to a
    file given on the command line, or to an int (one label for the whole
    side); those win over the bundle. Without ``path`` the side is the
    overrides alone (distances given instead of features). ``options``
    names the option of a field in messages (default ``--SIDE-FIELD``).
    """
    arrays = {} if path is None else read_bundle(path, name=side, require_features=False)
    options = options or {}
    for field, value in overrides.items():
        if value is None:
            continue
        option = options.get(field, f"--{side}-{field}")
        arrays[field] = value if isinstance(value, int) else load_array(value, name=option)
    return arrays
