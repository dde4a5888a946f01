"""A run's log file and its JSON output.

- :func:`run_log`: copy the ``xmrank`` logger's INFO records to ``RUN/train.log``
  without showing more than before anywhere else.
- :func:`atomic_json`: write a JSON file through a temporary file beside it.
- :func:`run_lock`: one training process per run folder.
- :func:`plain`: a copy of a metrics structure in plain Python types.
- :func:`log_epoch`: the one-line summary of an epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys

from .._atomic import atomic_write
from .._json import json_default
from .._validation import InputError

#: the trainer's own progress lines (per-epoch clustering statistics, evaluations)
logger = logging.getLogger("xmrank.train")
#: every xmrank message goes to RUN/train.log
_base_logger = logging.getLogger("xmrank")

__all__ = ["run_log", "run_lock", "atomic_json", "plain", "log_epoch", "LOCK"]


def plain(payload):
    """``payload`` with numpy scalars and arrays turned into Python numbers and lists (a JSON round trip)."""
    return json.loads(json.dumps(payload, default=json_default))


def atomic_json(path, payload):
    """Write ``payload`` as indented JSON to ``path`` (:func:`xmrank._atomic.atomic_write`)."""
    text = json.dumps(payload, indent=2, default=json_default) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


#: Lock file of a run folder: held by the process training in it.
LOCK = ".xmrank-train.lock"


@contextlib.contextmanager
def run_lock(folder):
    """Hold an exclusive lock on the run folder ``folder`` (``fcntl.flock`` on ``folder/.xmrank-train.lock``).

    Raises
    ------
    xmrank.InputError
        When another process holds it (two trainings writing one run
        folder would interleave their files). Where ``fcntl`` does not
        exist (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = os.path.join(os.fspath(folder), LOCK)
    fh = open(path, "a")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"output {folder} is in use by another training run (it holds the lock {path}); "
                             "wait for that run to end or choose another folder.") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def _fmt_share(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def log_epoch(rec):
    """Log one epoch's record: time, learning rate, losses and clustering statistics."""
    st = rec["clusters"]
    parts = []
    for name in ("visible", "infrared", "global"):
        if name in st:
            s = st[name]
            text = f"{name}: {s['n_clusters']} clusters, noise {_fmt_share(s['noise_share'])}"
            if "mixed_share" in s:
                text += f", mixed {_fmt_share(s['mixed_share'])}"
            if s.get("purity") is not None:
                text += f", purity {_fmt_share(s['purity'])}"
            parts.append(text)
    loss = f"loss intra {rec['loss_intra']:.3f}" if rec["loss_intra"] is not None else "no intra loss"
    if rec["loss_global"] is not None:
        loss += f", global {rec['loss_global']:.3f}"
    logger.info("stage %d epoch %d (%.1fs, lr %.2e): %s; %s", rec["stage"], rec["epoch"], rec["time_s"], rec["lr"],
                loss, "; ".join(parts))


class _Relay(logging.Handler):
    """Pass records at or above ``level`` on to ``handlers`` (each with its own threshold)."""

    def __init__(self, level, handlers):
        super().__init__(level)
        self.handlers = handlers

    def emit(self, record):
        for h in self.handlers:
            if record.levelno >= h.level:
                h.handle(record)


class _RunLogHandler(logging.FileHandler):
    """The run's ``train.log``: a record that cannot be written (a file-size limit, a full disk) stops the run with
    the ``OSError`` naming the file, instead of logging's own traceback on stderr and a run that goes on unlogged."""

    def handleError(self, record):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror or str(exc), self.baseFilename) from None
        super().handleError(record)


@contextlib.contextmanager
def run_log(path):
    """Write INFO records of the "xmrank" logger to ``path`` without showing more than before elsewhere.

    The logger is lowered to INFO for the file; records below its previous
    effective level reach no other handler.
    """
    file_handler = _RunLogHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    file_handler.setLevel(logging.INFO)
    old_level, old_propagate, old_handlers = _base_logger.level, _base_logger.propagate, list(_base_logger.handlers)
    effective = _base_logger.getEffectiveLevel()
    _base_logger.addHandler(file_handler)
    if effective > logging.INFO:
        for h in old_handlers:  # keep the logger's own handlers at their previous threshold
            _base_logger.removeHandler(h)
        _base_logger.setLevel(logging.INFO)
        gate = _Relay(effective, old_handlers)
        _base_logger.addHandler(gate)
        forward = None
        if old_propagate:  # what used to propagate to the root's handlers still does, at the old threshold
            forward = _Relay(effective, logging.getLogger().handlers)
            _base_logger.addHandler(forward)
            _base_logger.propagate = False
    else:
        gate = forward = None
    try:
        yield
    finally:
        for h in (file_handler, gate, forward):
            if h is not None:
                _base_logger.removeHandler(h)
        for h in old_handlers:
            if h not in _base_logger.handlers:
                _base_logger.addHandler(h)
        file_handler.close()
        _base_logger.setLevel(old_level)
        _base_logger.propagate = old_propagate
