"""Progress reporting that fits where long runs happen.

:func:`progress_bar` follows xmrank's ``progress`` argument:

=================  ==========================================================
``progress``       on a terminal               elsewhere (nohup, a scheduler,
                                               a pipe, a notebook log)
=================  ==========================================================
``None`` (default) a tqdm bar, cleared when    no bar; one log line per stage
                   done                        with its time (and about every
                                               30 s on long loops) at INFO on
                                               the ``xmrank.progress`` logger:
                                               shown by ``xmrank -v``
``True``           a tqdm bar, cleared         those lines on stderr, whatever
                                               the logging level
``False``          nothing                     nothing
=================  ==========================================================

No carriage-return bar is ever written into a log file. Inner loops (the
blocks of a long search) report through :func:`block_progress`, which
follows the setting of the :func:`progress_bar` around it.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time

from tqdm import tqdm

logger = logging.getLogger("xmrank.progress")

__all__ = ["progress_bar", "block_progress", "on_terminal"]

#: Seconds between two lines of a long loop when not on a terminal.
LINE_INTERVAL = 30.0

#: The ``show`` setting of the innermost open progress_bar, for block_progress.
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("xmrank_progress", default=False)


def on_terminal(stream=None) -> bool:
    """Whether ``stream`` (default: stderr, where progress goes) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _check_show(show):
    if show is None or isinstance(show, bool):
        return show
    try:
        import numpy as np

        if isinstance(show, np.bool_):
            return bool(show)
    except ImportError:  # pragma: no cover
        pass
    from ._validation import InputError, plain

    raise InputError(f"progress must be True, False or None; got {plain(show)}.")


class _Bar(tqdm):
    """tqdm with :meth:`stage`: name the step that just finished, then advance."""

    def stage(self, name, n=1):
        self.set_postfix_str(str(name), refresh=False)
        self.update(n)


class _Lines:
    """Progress as plain lines: one per stage with its time, and one about every ``interval`` seconds."""

    def __init__(self, *, total=None, desc=None, emit, interval=LINE_INTERVAL, disable=False, **_):
        self.total, self.desc, self.n = total, desc or "progress", 0
        self.disable = disable
        self._emit, self._interval = emit, interval
        self._start = self._last_stage = self._last_line = time.perf_counter()
        self._postfix = ""
        self._closed = False

    def _line(self, text):
        if not self.disable:
            self._emit(f"{self.desc}: {text}")

    def _count(self):
        return f"{self.n}/{self.total}" if self.total else f"{self.n}"

    def stage(self, name, n=1):
        now = time.perf_counter()
        self.n += n
        if self.total == 1 and self.n == 1:  # a single step: its line is the whole report
            self._line(f"{name} in {now - self._start:.2f}s")
            self._closed = True
        else:
            self._line(f"{name} {now - self._last_stage:.2f}s ({self._count()})")
        self._last_stage = self._last_line = now

    def update(self, n=1):
        self.n += n
        now = time.perf_counter()
        if now - self._last_line >= self._interval:
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            extra = f", {self._postfix}" if self._postfix else ""
            self._line(f"{self._count()}{share}, {now - self._start:.1f}s{extra}")
            self._last_line = now
        return True

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        items = dict(ordered_dict or {}, **kwargs)
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s="", refresh=True):
        self._postfix = str(s)

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or self.desc

    def refresh(self, *args, **kwargs):
        pass

    def write(self, text, *args, **kwargs):
        self._emit(str(text))

    def close(self):
        if self._closed:
            return
        self._closed = True
        elapsed = time.perf_counter() - self._start
        if self.n or self.total:
            self._line(f"done, {self._count()} in {elapsed:.2f}s")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # a failed run says so through its error, not with "done"
        return False

    def __iter__(self):  # pragma: no cover - tqdm's iterable form is not used by xmrank
        raise TypeError("progress_bar(...) is used with update(), not as an iterable")


def _to_stderr(line):
    print(line, file=sys.stderr, flush=True)


def _to_log(line):
    logger.info("%s", line)


class _Scope:
    """Wraps a bar: while it is open, :func:`block_progress` follows its ``show`` setting."""

    def __init__(self, bar, show):
        self._bar, self._show, self._token = bar, show, None

    def __enter__(self):
        self._token = _ACTIVE.set(self._show)
        self._bar.__enter__()
        return self._bar

    def __exit__(self, *exc):
        try:
            return self._bar.__exit__(*exc)
        finally:
            _ACTIVE.reset(self._token)

    def __getattr__(self, name):
        return getattr(self._bar, name)


def progress_bar(*, total=None, desc=None, show=None, interval: float = LINE_INTERVAL, **kwargs):
    """Progress for a loop or a list of stages, following xmrank's ``progress`` argument.

    Parameters
    ----------
    total : int, default=None
    desc : str, default=None
    show : bool or None, default=None
        True: always report; False: never; None: a bar on a terminal, log
        lines (INFO, ``xmrank.progress``) elsewhere. See the module docstring.
    interval : float, default=30
        Seconds between two lines of a long loop when not on a terminal.
    **kwargs
        Passed to tqdm on a terminal.

    Returns
    -------
    bar
        Use it as a context manager; ``bar.update(n)`` advances,
        ``bar.stage(name)`` names the step just finished (one line with its
        time when not on a terminal), ``bar.set_postfix(...)`` adds figures.
    """
    show = _check_show(show)
    if show is False:
        bar = _Bar(total=total, desc=desc, disable=True, leave=False, **kwargs)
    elif on_terminal():
        bar = _Bar(total=total, desc=desc, disable=False, leave=False, file=sys.stderr, **kwargs)
    else:
        emit = _to_log if (show is None or logger.isEnabledFor(logging.INFO)) else _to_stderr
        bar = _Lines(total=total, desc=desc, emit=emit, interval=interval)
    return _Scope(bar, show)


def block_progress(*, total=None, desc=None, **kwargs):
    """Progress of an inner loop (blocks of a search), shown as the enclosing :func:`progress_bar` is.

    Outside any progress_bar, or inside one with ``show=False``, it is silent.
    """
    show = _ACTIVE.get()
    if show is False or (total is not None and total <= 1):
        return _Scope(_Bar(total=total, desc=desc, disable=True, leave=False), False)
    return progress_bar(total=total, desc=desc, show=show, **kwargs)
