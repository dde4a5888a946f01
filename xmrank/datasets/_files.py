"""Small file-reading helpers shared by the data set readers (one-line InputErrors).

The readers (SYSU-MM01, RegDB, LLCM and the folder sets of
:mod:`xmrank.torch.data`) stay inside the data set root, all through these
helpers: a list file and its folder must resolve (symbolic links followed)
under the root before they are read (:func:`read_text`, :func:`check_inside`);
list files may name only relative paths that resolve under the root
(:func:`safe_join`); folder listings (:func:`list_images`,
:func:`walk_images`) keep only image files whose real path is under the
root, and skip links leading out with one warning (:class:`Skipped`).
Messages name paths, and quote at most a short token of a file that passed
these checks (:func:`quote`).
"""

from __future__ import annotations

import os

from .._validation import InputError, warn_user

#: File name extensions (lower case) the folder readers list as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def require_dir(path, what: str) -> str:
    """Return ``path`` if it is a directory, else raise an InputError naming ``what``."""
    try:
        path = os.fspath(path)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        ok = os.path.isdir(path)
    except (TypeError, ValueError) as exc:  # not a path, or an embedded NUL byte
        raise InputError(f"{what} must be a folder path; got {type(path).__name__} ({exc}).") from None
    if not ok:
        raise InputError(f"{what} {path!r} is not a directory.")
    return path


def read_text(path: str, what: str, root_real: str | None = None) -> str:
    """The text of the list file ``path``; a missing or unreadable file is an InputError naming it.

    With ``root_real`` (from :func:`real_root`), the file and the folder
    holding it must resolve (links followed) under the data set root
    (:func:`check_inside`), checked before anything is read.
    """
    if root_real is not None:
        check_inside(os.path.dirname(path), root_real, what, "list folder")
        check_inside(path, root_real, what, "list file")
    if not os.path.isfile(path):
        raise InputError(f"{what}: list file {path} not found.")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError:
        raise InputError(f"{what}: cannot read list file {path}: it is not UTF-8 text.") from None
    except OSError as exc:
        raise InputError(f"{what}: cannot read list file {path} ({exc.strerror or exc.__class__.__name__}).") from None


def check_inside(path: str, root_real: str, what: str, kind: str) -> str:
    """``path`` if it is missing or its real path (links followed) lies under the data set root; else an InputError.

    The one-line message names ``path`` and where it leads is not shown
    (nothing outside the root is read or quoted).
    """
    if os.path.lexists(path) and not inside(path, root_real):
        raise InputError(f"{what}: {kind} {path} leads outside the data set root {root_real.rstrip(os.sep)} "
                         "(a symbolic link?); it is not read.")
    return path


def shorten(text: str, limit: int = 24) -> str:
    """A token read from a data set file, cut to ``limit`` characters (a message never dumps a file)."""
    return text if len(text) <= limit else text[:limit] + "..."


def quote(text: str, limit: int = 24) -> str:
    """``repr`` of :func:`shorten`: a token of a data set file, quoted for a message."""
    return repr(shorten(text, limit))


def real_root(root: str) -> str:
    """The real path of a data set root, with a trailing separator (for prefix tests)."""
    return os.path.join(os.path.realpath(root), "")


def inside(path: str, root_real: str) -> bool:
    """Whether ``path``'s real path (links followed) is ``root_real`` (from :func:`real_root`) or lies under it."""
    return os.path.join(os.path.realpath(path), "").startswith(root_real)


def safe_join(root: str, relative: str, root_real: str | None = None) -> str | None:
    """``root/relative`` if ``relative`` is a relative path that stays under ``root``, else None.

    Refused: absolute paths (``/x``, ``C:\\x``, ``\\\\server\\x``), paths that
    climb out with ``..``, NUL bytes, and paths whose real location (symbolic
    links followed) is outside the root.
    """
    if not relative or "\x00" in relative:
        return None
    drive, _ = os.path.splitdrive(relative)
    if os.path.isabs(relative) or drive or relative.startswith(("/", "\\")):
        return None
    parts = relative.replace("\\", "/").split("/")
    if ".." in parts:
        return None
    path = os.path.join(root, relative)
    if not inside(path, root_real or real_root(root)):
        return None
    return path


class Skipped:
    """Files a folder reader left out, reported once per call in one warning line."""

    def __init__(self, what: str, root: str):
        self.what = what
        self.root = root
        self.not_image = []
        self.outside = []

    def warn(self) -> None:
        if not (self.not_image or self.outside):
            return
        parts = []
        if self.not_image:
            parts.append(f"{len(self.not_image)} non-image file(s) (e.g. {self._rel(self.not_image[0])})")
        if self.outside:
            parts.append(f"{len(self.outside)} link(s) pointing outside the root (e.g. {self._rel(self.outside[0])})")
        warn_user(f"{self.what}: skipped {' and '.join(parts)} under {self.root}.")

    def _rel(self, path):
        return os.path.relpath(path, self.root)


def list_images(folder: str, root_real: str | None = None, skipped: Skipped | None = None) -> list[str]:
    """Sorted names of the image files in ``folder`` (the published readers' order).

    Kept: regular files (or links to them) with an image extension
    (:data:`IMAGE_EXTENSIONS`, any case) whose real path is under
    ``root_real``. Hidden names (leading ``.``) and sub-folders are ignored
    silently; other files, and links that lead out of the root, are noted in
    ``skipped``.
    """
    names = []
    if root_real is not None and not inside(folder, root_real):  # a folder leading out is not even listed
        if skipped is not None:
            skipped.outside.append(folder)
        return names
    # entries that are not links lie where their folder lies: resolve only the folder and the links
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            path = os.path.join(folder, e.name)
            if root_real is not None and e.is_symlink() and not inside(path, root_real):
                if skipped is not None:
                    skipped.outside.append(path)
                continue
            try:
                is_file = e.is_file()  # follows links
            except OSError:
                is_file = False
            if not is_file:
                continue
            if not e.name.lower().endswith(IMAGE_EXTENSIONS):
                if skipped is not None:
                    skipped.not_image.append(path)
                continue
            names.append(e.name)
    return sorted(names)


def walk_images(top: str, root_real: str, skipped: Skipped | None = None) -> list[str]:
    """Sorted paths of the image files under ``top`` at any depth, as :func:`list_images` keeps them.

    Hidden files and folders are ignored; sub-folders (and links to folders)
    whose real path leaves the root are not entered and are noted in ``skipped``.
    """
    out = []
    stack = [top]
    seen = set()
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a link back to a folder already listed
            continue
        seen.add(real)
        if not inside(folder, root_real):
            if skipped is not None:
                skipped.outside.append(folder)
            continue
        out.extend(os.path.join(folder, name) for name in list_images(folder, root_real, skipped))
        try:
            with os.scandir(folder) as it:
                # links leading out were noted by list_images above
                subs = [e.path for e in it if not e.name.startswith(".") and e.is_dir()
                        and (not e.is_symlink() or inside(e.path, root_real))]
        except OSError:
            continue
        stack.extend(subs)
    return sorted(out)
