"""Feature files: a feature matrix and its per-row arrays (modalities, cameras, ids, names), by name.

A *bundle* is any file :func:`xmrank.io.read_arrays` reads. Its arrays are
found by the names of :data:`~xmrank.io.formats.BUNDLE_KEYS` (first name
present wins), the same for every command of the command line:

============  ==============================================================
field         array names
============  ==============================================================
features      features, X, feats, embeddings, embedding, feature
modalities    modalities, modality, mods
cameras       cameras, cams, camera, cam, camids
ids           ids, labels, pids, id, label, pid
names         names, paths, name, path, files, filenames, file, filename, ...
============  ==============================================================
"""

from __future__ import annotations

import numpy as np

from .formats import BUNDLE_KEYS, fail, split_key
from .readers import read_arrays

__all__ = ["read_bundle", "read_features"]


def read_bundle(path, *, name: str = "path", require_features: bool = True) -> dict:
    """A feature file as ``{"features": X, "modalities": ..., "cameras": ..., "ids": ..., "names": ...}``.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`~xmrank.io.read_arrays` reads. A file of one array
        that bears none of the names is its features; ``PATH.EXT:KEY`` reads
        array ``KEY`` as the features.
    name : str, default="path"
        The argument, for messages.
    require_features : bool, default=True
        Fail when there is no feature matrix; without it a file of labels
        only (ids and cameras beside a distance matrix) is fine, but a file
        holding none of the names is not.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The fields the file holds (those it lacks are absent), under the
        names of the table above.

    Raises
    ------
    xmrank.InputError
        As :func:`~xmrank.io.read_arrays`, and when no array is named as a
        feature matrix (one line listing the arrays the file holds).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import read_bundle
    >>> path = os.path.join(tempfile.mkdtemp(), "train.npz")
    >>> np.savez(path, X=np.zeros((4, 2)), mods=[0, 0, 1, 1], pids=[7, 8, 7, 8])
    >>> bundle = read_bundle(path)
    >>> sorted(bundle)
    ['features', 'ids', 'modalities']
    >>> bundle["modalities"]
    array([0, 0, 1, 1])
    """
    path_only, key = split_key(path)
    arrays = read_arrays(path, name=name)
    if key is not None:
        return {"features": arrays[key]}
    out, claimed = {}, set()
    for field, names in BUNDLE_KEYS.items():
        hit = next((k for k in names if k in arrays), None)
        if hit is not None:
            out[field] = arrays[hit]
            claimed.add(hit)
    if "features" not in out and len(arrays) == 1 and not claimed:
        out["features"] = next(iter(arrays.values()))
    if "features" not in out and (require_features or not out):
        wanted = " or ".join(BUNDLE_KEYS["features"][:4]) if require_features else \
            ", ".join(v[0] for v in BUNDLE_KEYS.values())
        fail(f"{name}: {path_only} has no array named {wanted}; it holds {', '.join(arrays) or 'none'}.")
    return out


def read_features(path, key: str | None = None, *, name: str = "path", ndim: int | None = 2) -> np.ndarray:
    """The feature matrix of a file, found as the command line finds it.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`~xmrank.io.read_arrays` reads: a ``.npy`` array, or
        an archive or table whose features are named ``features`` (or ``X``,
        ``feats``, ``embeddings``, see :func:`read_bundle`); ``PATH.EXT:KEY``
        names the array.
    key : str, optional
        The array to read (the same as ``PATH.EXT:KEY``).
    name : str, default="path"
        The argument, for messages.
    ndim : int or None, default=2
        The number of dimensions required (rows by features); None accepts any.

    Returns
    -------
    features : numpy.ndarray
        As stored (no copy, no change of dtype).

    Raises
    ------
    xmrank.InputError
        As :func:`read_bundle`; also when ``key`` is not in the file, or the
        array does not have ``ndim`` dimensions.

    See Also
    --------
    read_bundle : the features with the per-row arrays stored beside them.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import read_features, write_array
    >>> path = os.path.join(tempfile.mkdtemp(), "feats.npy")
    >>> write_array(path, np.ones((5, 3), dtype=np.float32))
    >>> read_features(path).shape
    (5, 3)
    >>> read_features(path, ndim=1)
    Traceback (most recent call last):
    ...
    xmrank._validation.InputError: path: ... holds an array of shape (5, 3); expected 1 dimension.
    """
    if key is not None:
        path_only = split_key(path)[0]
        features = read_arrays(f"{path_only}:{key}", name=name)[key]
    else:
        path_only = split_key(path)[0]
        features = read_bundle(path, name=name)["features"]
    if ndim is not None and np.ndim(features) != ndim:
        fail(f"{name}: {path_only} holds an array of shape {tuple(np.shape(features))}; expected {ndim} "
             f"dimension{'s' if ndim != 1 else ''}.")
    return features
