"""Compiled-kernel set-up: ``numba.njit`` with its on-disk cache kept outside the installed package.

numba's ``cache=True`` writes next to the source file by default, that is
inside ``site-packages/xmrank`` for an installed copy, where the files outlive
``pip uninstall`` and the leftover folder shadows a later editable install;
and where neither the package folder nor a home directory is writable
(a container run with ``--user``, a read-only image, ``HOME`` unset) numba
refuses to compile at import time. :func:`njit` avoids both:

- the cache goes to :func:`kernel_cache_dir` (``$XMRANK_CACHE_DIR/numba``,
  else the user cache directory: ``$XDG_CACHE_HOME/xmrank/numba`` or
  ``~/.cache/xmrank/numba`` on Linux, ``~/Library/Caches/xmrank/numba`` on
  macOS, ``%LOCALAPPDATA%\\xmrank\\numba`` on Windows), unless the user set
  ``NUMBA_CACHE_DIR``, which numba then honours as usual;
- where no writable cache location exists, kernels compile without a cache
  (once per process), and this is logged once at INFO;
- a cache folder that someone else could write to (group- or
  other-writable, or not owned by the current user or root: see
  :func:`unsafe_cache_reason`) is not used at all, since numba unpickles its
  index files: kernels compile in the process instead, with one warning.
  Folders xmrank creates for the cache are private (mode 0700).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import tempfile

import numba

logger = logging.getLogger(__name__)

__all__ = ["njit", "kernel_cache_dir", "unsafe_cache_reason", "cache_refusal", "cache_folder"]

_state: dict = {}


def kernel_cache_dir() -> str | None:
    """The folder compiled kernels are cached in, or None where none is usable.

    ``XMRANK_CACHE_DIR`` (its ``numba`` sub-folder) wins; otherwise the
    platform's user cache folder. A relative path (``HOME`` unknown) counts
    as unusable.
    """
    env = os.environ.get("XMRANK_CACHE_DIR")
    if env:
        path = os.path.join(env, "numba")
    else:
        if sys.platform == "win32":
            base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
        elif sys.platform == "darwin":
            base = os.path.join(os.path.expanduser("~"), "Library", "Caches")
        else:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "xmrank", "numba")
    return path if os.path.isabs(path) else None


def _writable(path: str) -> bool:
    try:
        # folders xmrank creates are private (0700): nobody else may plant cache files in them
        for folder in (os.path.dirname(path), path):
            if not os.path.isdir(folder):
                os.makedirs(folder, mode=0o700, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _unsafe_entry(path: str, st, *, ancestor: bool) -> str | None:
    """Why one folder or file of the cache is unsafe to load from, or None."""
    if st.st_uid not in (os.getuid(), 0):
        try:
            import pwd

            owner = pwd.getpwuid(st.st_uid).pw_name
        except (ImportError, KeyError):
            owner = f"uid {st.st_uid}"
        return f"{path} is owned by {owner}, not by you"
    if ancestor and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return None  # a sticky folder (/tmp): others cannot rename or replace what is ours in it
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
    return None


def unsafe_cache_reason(path: str) -> str | None:
    """Why the kernel cache folder ``path`` must not be loaded from, or None when it is safe.

    numba unpickles the cache's index files (``.nbi``) when it loads a
    kernel, so whoever can write there can run code in every process that
    loads xmrank's kernels. The folder, the folder above it (the xmrank cache
    folder, or ``XMRANK_CACHE_DIR``) and, where others may enter the folder,
    everything in it must be owned by the current user (or root) and not be
    writable by the group or others (a sticky folder such as ``/tmp`` is fine
    as the folder above). On systems without user ids (Windows) nothing is
    checked.
    """
    if not hasattr(os, "getuid"):
        return None
    for folder, ancestor in ((os.path.dirname(path), True), (path, False)):
        try:
            st = os.stat(folder)
        except OSError:
            continue
        reason = _unsafe_entry(folder, st, ancestor=ancestor)
        if reason:
            return reason
    try:
        st = os.stat(path)
    except OSError:
        return None
    stack = [path] if st.st_mode & (stat.S_IXGRP | stat.S_IXOTH) else []
    while stack:  # below a folder others cannot enter, nothing needs checking
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            reason = _unsafe_entry(entry.path, est, ancestor=False)
            if reason:
                return reason
            if stat.S_ISDIR(est.st_mode) and est.st_mode & (stat.S_IXGRP | stat.S_IXOTH):
                stack.append(entry.path)
    return None


def cache_refusal() -> str | None:
    """Why this process refused its kernel cache folder (see :func:`unsafe_cache_reason`), or None.

    The message names the folder, or the file or folder in it, that failed the check.
    """
    _cache_target()
    return _state.get("refused")


def cache_folder() -> str | None:
    """The folder compiled kernels are cached in for this process, or None (none writable, or refused as unsafe).

    ``NUMBA_CACHE_DIR`` where the user set it, else :func:`kernel_cache_dir`;
    other small caches that belong with the kernels (the measured constants
    of :mod:`xmrank.knn.cost_model`) live there too, under the same rules.
    """
    import numba

    target = _cache_target()
    if target is None:
        return None
    return target or os.path.abspath(numba.config.CACHE_DIR)


def _refuse(folder: str, reason: str) -> None:
    from ._validation import warn_user

    _state["refused"] = reason
    warn_user(f"not using the compiled-kernel cache {folder}: {reason}, and numba runs the code its index "
              "files hold when it loads them; compiling the kernels in this process instead. Make the folder "
              "yours and private (chown, chmod -R go-w) or set XMRANK_CACHE_DIR to a folder only you can write.")


def _cache_target() -> str | None:
    """Resolve once per process: the folder to hand numba, "" for numba's own NUMBA_CACHE_DIR, None for no cache."""
    if "target" not in _state:
        if numba.config.CACHE_DIR:
            target = ""  # the user chose a numba cache folder: numba honours it, once it passes the check
            reason = unsafe_cache_reason(os.path.abspath(numba.config.CACHE_DIR))
            if reason:
                _refuse(numba.config.CACHE_DIR, reason)
                target = None
        else:
            path = kernel_cache_dir()
            target = path if path is not None and _writable(path) else None
            if target is None:
                logger.info(
                    "no writable cache folder for compiled kernels (tried %s); they are compiled in each "
                    "process. Set XMRANK_CACHE_DIR to a writable folder to keep them.",
                    path or "a user cache folder: HOME is unknown",
                )
            else:
                reason = unsafe_cache_reason(path)
                if reason:
                    _refuse(path, reason)
                    target = None
        _state["target"] = target
    return _state["target"]


def _compile_uncached(func, options):
    _state["target"] = None
    return numba.njit(**{**options, "cache": False})(func)


def njit(**options):
    """``numba.njit(**options)``; with ``cache=True`` the cache lives in :func:`kernel_cache_dir`.

    Parameters
    ----------
    **options
        Passed to :func:`numba.njit`.

    Returns
    -------
    decorator
        Falls back to ``cache=False`` where no cache folder can be written,
        instead of numba's import-time ``RuntimeError``.
    """

    def decorate(func):
        if not options.get("cache"):
            return numba.njit(**options)(func)
        target = _cache_target()
        if target is None:
            return _compile_uncached(func, options)
        saved = numba.config.CACHE_DIR
        if target:
            # numba's user-provided locator reads this when the dispatcher is made (here), and only then
            numba.config.CACHE_DIR = target
        try:
            return numba.njit(**options)(func)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            logger.info("compiled kernels are not cached (%s)", exc)
            return _compile_uncached(func, options)
        finally:
            numba.config.CACHE_DIR = saved

    return decorate
