"""Reading a feature matrix and its per-row label arrays for the CLI commands."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ._io import fail, load_array

FEATURE_KEYS = ("features", "X", "feats", "embeddings")


def load_inputs(features_path, *, modalities=None, cameras=None, labels=None):
    """Load FEATURES (.npy, or .npz with named arrays) and optional label files.

    With a .npz, arrays named ``modalities``, ``cameras`` and ``ids``/``labels``
    inside it are used when the matching option is not given.

    Returns
    -------
    X, modalities, cameras, labels : ndarrays (labels may be None)
    """
    bundled = {}
    if features_path.endswith(".npz") and os.path.exists(features_path) and ":" not in os.path.basename(features_path):
        try:
            with np.load(features_path, allow_pickle=False) as z:
                keys = list(z.files)
                key = next((k for k in FEATURE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    fail(f"FEATURES: {features_path} has no array named {' or '.join(FEATURE_KEYS)}; it holds {', '.join(keys)}.")
                X = z[key]
                bundled = {k: z[k] for k in ("modalities", "cameras", "ids", "labels") if k in keys}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            fail(f"FEATURES: cannot read {features_path} as an .npz archive ({exc}).")
    else:
        X = load_array(features_path, name="FEATURES")
    mods = load_array(modalities, name="--modalities") if modalities else bundled.get("modalities")
    cams = load_array(cameras, name="--cameras") if cameras else bundled.get("cameras")
    labs = load_array(labels, name="--labels") if labels else bundled.get("ids", bundled.get("labels"))
    return X, mods, cams, labs
