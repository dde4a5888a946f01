"""Small file-reading helpers shared by the data set readers (one-line InputErrors)."""

from __future__ import annotations

import os

from .._validation import InputError


def require_dir(path: str, what: str) -> str:
    """Return ``path`` if it is a directory, else raise an InputError naming ``what``."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(f"{what} {path!r} is not a directory.")
    return path


def read_text(path: str, what: str) -> str:
    """The text of the file ``path``; a missing or unreadable file is an InputError naming it."""
    if not os.path.isfile(path):
        raise InputError(f"{what}: list file {path} not found.")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: cannot read list file {path} ({exc.__class__.__name__}: {exc}).") from None


def list_images(folder: str) -> list[str]:
    """Sorted names of the regular, non-hidden files in ``folder`` (the published readers' order)."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if not e.name.startswith(".") and e.is_file()]
    return sorted(names)
