"""Atomic file writes: a temporary file beside the target, renamed into place once complete.

Every file xmrank writes (command outputs, ``train.log``'s JSON neighbours,
checkpoints, the synthetic images) goes through :func:`atomic_path` or
:func:`atomic_write`:

- the data go to a temporary file in the target's folder, named
  ``.NAME.xmrank-tmp-PID-XXXXXXXX.EXT`` (:data:`TMP_MARK`; ``NAME`` the
  target's file name, ``PID`` the writing process), and replace the target
  with :func:`os.replace` only once complete and flushed: the target is
  either its old content or the new one, never a mix;
- a failed write (an exception, a full disk, a file-size limit, Ctrl-C)
  removes the temporary file; SIGTERM and SIGHUP remove every temporary file
  of the process before it ends as the signal asks; temporary files left by
  a process that died without cleaning up (SIGKILL, a power cut) are removed
  the next time the same target is written;
- short writes that a C-level writer does not report (numpy, pillow, torch
  under a file-size limit) are detected by comparing the file's size with
  what was sent, and a file-size limit (``ulimit -f``, ``EFBIG``) or a full
  disk (``ENOSPC``) is raised as an :class:`OSError` naming the target;
- inside :func:`committed_together`, the renames wait until the block ends:
  a command's outputs all replace their targets together, or (a failure
  writing any of them) none does.

The module uses only the standard library, so every layer may import it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import stat
import tempfile
import threading

logger = logging.getLogger(__name__)

__all__ = ["TMP_MARK", "atomic_path", "atomic_write", "committed_together", "remove_stale", "temporary_name_pattern",
           "is_devnull"]

#: What every temporary file name holds: ``.NAME`` + TMP_MARK + ``PID-XXXXXXXX`` + the target's extension.
TMP_MARK = ".xmrank-tmp-"

_live: set[str] = set()  # temporaries of this process not yet renamed or removed
_lock = threading.Lock()
_handled: set[int] = set()
_pending = threading.local()  # the open committed_together() block of this thread, if any


def temporary_name_pattern(target) -> str:
    """The glob pattern of the temporary files of ``target`` (of any process)."""
    return f".{os.path.basename(os.fspath(target))}{TMP_MARK}*"


def is_devnull(path) -> bool:
    """Whether ``path`` is the null device (written directly: nothing there can be lost)."""
    try:
        return os.path.samefile(path, os.devnull)
    except (OSError, ValueError):
        return False


def _forget_live():
    """In a forked child (a DataLoader worker): the parent's temporaries are not the child's to remove."""
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_live)


def _remove_live(signum=None, frame=None):
    with _lock:
        paths = list(_live)
        _live.clear()
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


def _install_handlers():
    """Remove this process's temporaries on SIGTERM and SIGHUP, then end as the previous handler would."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None or sig in _handled:
            continue
        try:
            previous = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        if previous == signal.SIG_IGN:
            _handled.add(sig)
            continue

        def handler(signum, frame, previous=previous):
            _remove_live()
            if callable(previous):
                return previous(signum, frame)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return None

        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):
            continue
        _handled.add(sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale(target) -> list[str]:
    """Remove the temporary files of ``target`` left by processes that no longer run; return their paths."""
    target = os.fspath(target)
    folder = os.path.dirname(os.path.abspath(target))
    pattern = re.compile(re.escape(f".{os.path.basename(target)}{TMP_MARK}") + r"([0-9]+)-")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.remove(path)
                removed.append(path)
        except OSError:
            continue
    if removed:
        logger.info("removed %d temporary file(s) of %s left by a process that was killed", len(removed), target)
    return removed


def _new_file_mode(target) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _limit_error(tmp, target):
    """An OSError for a write that stopped at the file-size limit or on a full disk, else None."""
    try:
        size = os.stat(tmp).st_size
    except OSError:
        size = None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and size is not None and size >= soft:
            return OSError(errno.EFBIG, f"file too large: the file-size limit (ulimit -f) is {soft:,} bytes",
                           os.fspath(target))
    except (ImportError, OSError, ValueError):
        pass
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(tmp)))
        if st.f_bavail == 0:
            return OSError(errno.ENOSPC, "no space left on the device", os.fspath(target))
    except (AttributeError, OSError):
        pass
    return None


def _real_target(path: str) -> str:
    return os.path.realpath(path) if os.path.islink(path) else path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same extension); once the block completes, it replaces ``path``.

    Parameters
    ----------
    path : str or path-like
        The target. A symbolic link is followed (the file it names is
        replaced); the null device is yielded as it is. Any other existing
        file that is not a regular file (a FIFO, a terminal, a socket) is
        refused with an OSError.

    Notes
    -----
    Inside :func:`committed_together` the rename waits for the end of that
    block. On failure the temporary file is removed and ``path`` keeps its
    previous content; a write cut short by a file-size limit or a full disk
    raises an OSError (``EFBIG``, ``ENOSPC``) naming ``path``, whatever
    exception the writer raised.
    """
    path = os.fspath(path)
    if is_devnull(path):
        yield path
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file (a folder, pipe or device); give a file name", path)
    target = _real_target(path)
    folder = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    remove_stale(target)
    _install_handlers()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}{TMP_MARK}{os.getpid()}-",
                               suffix=os.path.splitext(base)[1])
    with _lock:
        _live.add(tmp)
    os.close(fd)
    done = False
    try:
        os.chmod(tmp, _new_file_mode(target))
        try:
            yield tmp
        except Exception:
            limit = _limit_error(tmp, target)
            if limit is not None:  # whatever the writer made of it (torch: a RuntimeError)
                raise limit from None
            raise
        group = getattr(_pending, "group", None)
        if group is not None:
            group.append((tmp, target))
        else:
            os.replace(tmp, target)
            with _lock:
                _live.discard(tmp)
        done = True
    finally:
        if not done:
            _discard(tmp)


def _discard(tmp):
    with _lock:
        _live.discard(tmp)
    with contextlib.suppress(OSError):
        os.remove(tmp)


def _check_complete(fh, tmp, target, *, fsync: bool):
    """Raise an OSError when the file holds fewer bytes than were written to it (a short write nobody reported)."""
    fh.flush()
    end, size = fh.tell(), os.fstat(fh.fileno()).st_size
    if size < end:
        raise _limit_error(tmp, target) or OSError(
            errno.EIO, f"only {size:,} of {end:,} bytes could be written (disk full or a file-size limit?)",
            os.fspath(target))
    if fsync:
        os.fsync(fh.fileno())


def atomic_write(path, write, *, fsync: bool = True):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Parameters
    ----------
    path : str or path-like
        The target (see :func:`atomic_path`).
    write : callable
        Writes the content to the open binary file it is given.
    fsync : bool, default=True
        Flush the file to the disk before the rename.

    Raises
    ------
    OSError
        When the file cannot be written completely (``EFBIG`` for a
        file-size limit, ``ENOSPC`` for a full disk); ``path`` is then
        untouched.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            if not is_devnull(tmp):
                _check_complete(fh, tmp, path, fsync=fsync)


@contextlib.contextmanager
def committed_together():
    """Hold back the renames of every :func:`atomic_path` inside the block until it completes.

    All the files written inside replace their targets one right after the
    other at the end; when the block fails, every temporary file is removed
    and no target changes. Blocks do not nest: an inner block joins the
    outer one.
    """
    if getattr(_pending, "group", None) is not None:
        yield
        return
    group: list = []
    _pending.group = group
    ok = False
    try:
        yield
        ok = True
    finally:
        _pending.group = None
        if ok:
            try:
                for tmp, target in group:
                    os.replace(tmp, target)
                    with _lock:
                        _live.discard(tmp)
            finally:
                for tmp, _ in group:
                    if tmp in _live:
                        _discard(tmp)
        else:
            for tmp, _ in group:
                _discard(tmp)
