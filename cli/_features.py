"""Reading a feature matrix and its per-row label arrays for the CLI commands."""

from __future__ import annotations

from ._io import BUNDLE_KEYS, fail, load_array, read_bundle

#: Names of the feature matrix inside a bundle file, first present wins (kept for importers).
FEATURE_KEYS = BUNDLE_KEYS["features"]


def load_bundle(features_path, *, modalities=None, cameras=None, labels=None, names=None) -> dict:
    """FEATURES and its per-row arrays: options win over the arrays bundled in the FEATURES file.

    FEATURES may be any format :func:`xmrank.cli._io.read_arrays` reads
    (.npy, .npz, .pt, .csv, .h5, .parquet); arrays named ``modalities``,
    ``cameras`` (or ``cams``), ``ids``/``labels``/``pids`` and
    ``names``/``paths`` inside it are used when the matching option is not
    given. Each option is a file of one array (or ``PATH:KEY``).

    Returns
    -------
    arrays : dict
        ``features`` and, when present, ``modalities``, ``cameras``,
        ``labels``, ``names``.
    """
    arrays = read_bundle(features_path, name="FEATURES")
    for field, path, option in (("modalities", modalities, "--modalities"), ("cameras", cameras, "--cameras"),
                                ("labels", labels, "--labels"), ("names", names, "--names")):
        if path is not None:
            arrays[field] = load_array(path, name=option)
    for field in ("modalities", "cameras", "labels"):
        if arrays.get(field) is not None and arrays[field].dtype == object:
            fail(f"--{field} must hold integer or string labels.")
    return arrays


def load_inputs(features_path, *, modalities=None, cameras=None, labels=None):
    """Load FEATURES (any readable format) and optional label files.

    With a bundle file, arrays named ``modalities``, ``cameras`` (or ``cams``)
    and ``ids``/``labels`` inside it are used when the matching option is not given.

    Returns
    -------
    X, modalities, cameras, labels : ndarrays (the last three may be None)
    """
    arrays = load_bundle(features_path, modalities=modalities, cameras=cameras, labels=labels)
    return arrays["features"], arrays.get("modalities"), arrays.get("cameras"), arrays.get("labels")
