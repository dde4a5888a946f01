"""File formats: which endings are read, what a file's first bytes say it holds, optional packages.

Every reader of :mod:`xmrank.io` fails with an :class:`xmrank.InputError`
of one line that begins with the name of the argument (``"path"`` by default,
``"FEATURES"`` or ``--labels`` in the command line).
"""

from __future__ import annotations

import os
import zipfile

from .._validation import InputError

__all__ = ["BUNDLE_KEYS", "FORMATS", "FORMATS_HELP", "format_of", "sniff", "split_key"]

#: Array names of a feature file, by field: the feature matrix, then the per-row arrays (first name present wins).
BUNDLE_KEYS = {
    "features": ("features", "X", "feats", "embeddings", "embedding", "feature"),
    "modalities": ("modalities", "modality", "mods"),
    "cameras": ("cameras", "cams", "camera", "cam", "camids"),
    "ids": ("ids", "labels", "pids", "id", "label", "pid"),
    "names": ("names", "paths", "name", "path", "files", "filenames", "file", "filename", "images", "image"),
}

#: File endings read, and the optional package each needs (None: numpy or the standard library).
FORMATS = {
    ".npy": None, ".npz": None, ".pt": "torch", ".pth": "torch", ".csv": None, ".tsv": None, ".txt": None,
    ".h5": "h5py", ".hdf5": "h5py", ".hdf": "h5py", ".parquet": "pyarrow", ".pq": "pyarrow",
}

#: How to install each optional package, for messages.
INSTALL = {"torch": "pip install torch (or 'xmrank[torch]')", "h5py": "pip install h5py (or 'xmrank[io]')",
           "pyarrow": "pip install pyarrow (or 'xmrank[io]')"}

#: The formats read, for messages.
FORMATS_HELP = ".npy, .npz, .pt/.pth (torch), .csv/.tsv/.txt, .h5/.hdf5 (h5py) or .parquet (pyarrow)"


def fail(message: str):
    """Raise an :class:`xmrank.InputError` of one line (whitespace runs folded to one space)."""
    raise InputError(" ".join(str(message).split())) from None


def first_line(exc) -> str:
    """The first line of an exception's message, or its class name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def split_key(path):
    """``PATH.EXT:KEY`` -> ``(PATH.EXT, KEY)``, for a readable extension when ``PATH.EXT:KEY`` itself is no file.

    Examples
    --------
    >>> from xmrank.io.formats import split_key
    >>> split_key("bundle.npz:features")
    ('bundle.npz', 'features')
    >>> split_key("features.npy")
    ('features.npy', None)
    """
    path = os.fspath(path)
    base = os.path.basename(path)
    if ":" in base and not os.path.exists(path):
        head, key = path.rsplit(":", 1)
        if os.path.splitext(head)[1].lower() in FORMATS and key:
            return head, key
    return path, None


def sniff(path) -> str | None:
    """The format of a file from its first bytes: ``npy``, ``zip`` (npz or torch), ``hdf5``, ``parquet``,
    ``pickle``, ``text``, or None (unreadable, empty or binary data of another kind)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x80"):  # a plain pickle (torch.save's legacy format, or pickle.dump)
        return "pickle"
    if not head or b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return "text" if printable >= 0.95 * len(text) else None


def _zip_kind(path) -> str:
    """``.pt`` for a torch archive (it holds a data.pkl), else ``.npz``."""
    try:
        with zipfile.ZipFile(path) as z:
            return ".pt" if any(n.endswith("data.pkl") for n in z.namelist()) else ".npz"
    except (OSError, zipfile.BadZipFile):
        return ".npz"


def format_of(path, name: str = "path") -> str:
    """The reader for ``path``: its extension, else (an unknown one) what its bytes say.

    Returns
    -------
    ext : str
        A key of :data:`FORMATS` (``".npy"``, ``".csv"``, ...).

    Raises
    ------
    xmrank.InputError
        When the extension is unknown and the bytes are of no readable format.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in FORMATS:
        return ext
    kind = sniff(path)
    guess = {"npy": ".npy", "zip": _zip_kind(path) if kind == "zip" else None, "hdf5": ".h5",
             "parquet": ".parquet"}.get(kind)
    if guess is not None:
        return guess
    what = "text" if kind == "text" else "pickled Python objects" if kind == "pickle" else "data of an unknown kind"
    fail(f"{name}: cannot read {path}: its name ends in {ext or '(no extension)'!r} and it holds {what}; "
         f"xmrank reads {FORMATS_HELP}.")


def need(module: str, path, name: str, ext: str):
    """Import the optional package ``module`` that reading ``path`` needs, or fail naming how to install it."""
    try:
        return __import__(module)
    except ImportError:
        fail(f"{name}: reading {path} ({ext}) needs the {module} package, which is not installed: "
             f"{INSTALL[module]}; or save the arrays as .npy/.npz.")


def check_exists(path, name: str):
    """Fail unless ``path`` exists and is no folder."""
    if not os.path.exists(path):
        fail(f"{name}: file not found: {path}")
    if os.path.isdir(path):
        fail(f"{name}: {path} is a folder; give a file ({FORMATS_HELP}).")
