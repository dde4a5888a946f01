"""Shared CLI plumbing: reading arrays, writing outputs, one-line errors."""

from __future__ import annotations

import functools
import json
import os
import zipfile

import click
import numpy as np

from xmrank._validation import InputError


def fail(message: str):
    """Abort the command with one line on stderr and exit status 1."""
    raise click.ClickException(message)


def load_array(path: str, *, name: str, key: str | None = None, allow_pickle: bool = False) -> np.ndarray:
    """Read a ``.npy`` file, or array ``key`` of a ``.npz`` file (``PATH.npz:KEY`` also works).

    A ``.npz`` with a single array needs no key. Errors are one line naming ``name``.
    """
    if key is None and ":" in os.path.basename(path) and path.rsplit(":", 1)[0].endswith(".npz"):
        path, key = path.rsplit(":", 1)
    if not os.path.exists(path):
        fail(f"{name}: file not found: {path}")
    try:
        obj = np.load(path, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        fail(f"{name}: cannot read {path} as a .npy or .npz array file ({exc.__class__.__name__}: {exc}).")
    if isinstance(obj, np.lib.npyio.NpzFile):
        with obj:
            keys = list(obj.files)
            if key is None:
                if len(keys) != 1:
                    fail(f"{name}: {path} holds several arrays ({', '.join(keys)}); name one with PATH.npz:KEY.")
                key = keys[0]
            if key not in keys:
                fail(f"{name}: {path} has no array {key!r}; it holds {', '.join(keys) or 'none'}.")
            try:
                return obj[key]
            except ValueError as exc:
                fail(f"{name}: cannot read array {key!r} of {path} ({exc}).")
    return obj


def load_optional(path, *, name, npz=None, key=None):
    """Load ``path`` if given, else array ``key`` of an already-open ``.npz`` mapping, else None."""
    if path is not None:
        return load_array(path, name=name)
    if npz is not None and key in npz:
        return npz[key]
    return None


def write_npy(path: str, array: np.ndarray):
    try:
        np.save(path, array)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def write_json(path: str, payload):
    try:
        with open(path, "w") as fh:
            json.dump(payload, fh, indent=2, default=_json_default)
            fh.write("\n")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def user_errors(func):
    """Turn xmrank's InputError (and ValueError from validation) into a one-line CLI error."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
        except MemoryError:
            fail("out of memory: try fewer rows, a smaller k1, or knn='ann'.")

    return wrapper
