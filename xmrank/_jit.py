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
  (once per process), and this is logged once at INFO.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

import numba

logger = logging.getLogger(__name__)

__all__ = ["njit", "kernel_cache_dir"]

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
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _cache_target() -> str | None:
    """Resolve once per process: the folder to hand numba, "" for numba's own NUMBA_CACHE_DIR, None for no cache."""
    if "target" not in _state:
        if numba.config.CACHE_DIR:
            target = ""  # the user chose a numba cache folder: numba honours it
        else:
            path = kernel_cache_dir()
            target = path if path is not None and _writable(path) else None
            if target is None:
                logger.info(
                    "no writable cache folder for compiled kernels (tried %s); they are compiled in each "
                    "process. Set XMRANK_CACHE_DIR to a writable folder to keep them.",
                    path or "a user cache folder: HOME is unknown",
                )
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
