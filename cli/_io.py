"""Shared CLI plumbing: the library's readers and output checks as one-line usage errors, echo helpers,
the error decorator and click types.

The readers, the output checks and the atomic writers live in :mod:`xmrank.io`
(a Python user reads a feature file exactly as the commands do); here each
is wrapped so that its :class:`xmrank.InputError` (or, for a write, its
:class:`OSError`) becomes one line naming the option, and ``-`` means
standard output where an option accepts it.

Every file a command writes goes through :func:`check_outputs` (before any
work: folder exists and is writable, the path is no directory, no pipe or
device, no input file, nothing inside a data set root the command reads, and
no other output of the same command) and :func:`write_atomic` (a temporary
file ``.NAME.xmrank-tmp-PID-*`` beside the target, renamed into place with
:func:`os.replace` once complete, see :mod:`xmrank._atomic`): an output is
whole or absent, the previous file stays untouched when a write fails, and no
input is ever written over. A command with several outputs writes them inside
:func:`committed`, so that they replace their targets together or not at all.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import warnings

import click
import numpy as np

from xmrank import _atomic
from xmrank import io as _lib
from xmrank._json import json_default
from xmrank._validation import InputError
from xmrank.io.formats import BUNDLE_KEYS, FORMATS, FORMATS_HELP, first_line as _first_line
from xmrank.io.outputs import STDOUT, file_of, same_file
from xmrank.io.outputs import stdout_open as _stdout_open

__all__ = ["BUNDLE_KEYS", "FORMATS", "FORMATS_HELP", "STDOUT",
           "atomic_path", "check_npy_output", "check_output", "check_outputs", "check_outside_roots", "committed",
           "echo_report", "fail", "file_of", "load_array", "load_optional", "read_arrays", "same_file", "user_errors",
           "write_atomic", "write_json", "write_json_atomic", "write_npy", "write_sparse", "write_text"]


def fail(message: str):
    """Abort the command with one line on stderr and exit status 1."""
    raise click.ClickException(" ".join(str(message).split()))


@contextlib.contextmanager
def _usage():
    """The library's InputError (one line naming the argument) as the command's one-line error."""
    try:
        yield
    except InputError as exc:
        fail(str(exc))


# --- reading: xmrank.io, failures as one line naming the argument ------------------------------

def read_arrays(path, *, name: str, keys=None) -> dict:
    """Every array of an input file, by name (:func:`xmrank.io.read_arrays`); failures are one line naming ``name``."""
    with _usage():
        return _lib.read_arrays(path, keys, name=name)


def load_array(path: str, *, name: str, key: str | None = None, allow_pickle: bool = False) -> np.ndarray:
    """One array of an input file (:func:`xmrank.io.read_array`); failures are one line naming ``name``."""
    with _usage():
        return _lib.read_array(path, key, name=name, allow_pickle=allow_pickle)


def read_bundle(path, *, name: str = "FEATURES", require_features: bool = True) -> dict:
    """A feature file and its per-row arrays (:func:`xmrank.io.read_bundle`); failures are one line naming ``name``."""
    with _usage():
        return _lib.read_bundle(path, name=name, require_features=require_features)


def load_optional(path, *, name, npz=None, key=None):
    """Load ``path`` if given, else array ``key`` of an already-open ``.npz`` mapping, else None."""
    if path is not None:
        return load_array(path, name=name)
    if npz is not None and key in npz:
        return npz[key]
    return None


# --- output paths: checked before any work (xmrank.io.outputs) ---------------------------------

#: Options that accept ``-`` (standard output) in some command, for messages.
_STDOUT_OK = {"--json", "--contents"}


def check_outside_roots(path, option: str, roots=()):
    """Fail unless ``path`` lies outside every data set root of ``roots`` (:func:`xmrank.io.check_outside_roots`)."""
    with _usage():
        _lib.check_outside_roots(path, option, roots)


def check_output(path, option: str, *, inputs=(), roots=(), suffix: str | None = None):
    """Fail (one line naming ``option``) unless ``path`` can be written and is none of ``inputs``
    (:func:`xmrank.io.check_output`)."""
    with _usage():
        _lib.check_output(path, option, inputs=inputs, roots=roots, suffix=suffix, stdout_ok=option in _STDOUT_OK)


def check_outputs(outputs, *, inputs=(), roots=(), stdout=()):
    """Pre-flight check of all of a command's outputs, before any work (:func:`xmrank.io.check_outputs`).

    ``stdout`` names the options for which ``-`` means standard output.
    """
    with _usage():
        _lib.check_outputs(outputs, inputs=inputs, roots=roots, stdout=stdout, stdout_ok=_STDOUT_OK)


def check_npy_output(path, option: str):
    """An output written in .npy format goes to exactly ``path``; a ``.npz`` name (an archive) cannot be honoured."""
    with _usage():
        _lib.check_npy_output(path, option)


# --- writing: xmrank.io's atomic writers (xmrank._atomic), failures as one line naming the option -----

def _write_failed(option, path, exc):
    fail(f"{option}: cannot write {path}: {exc.strerror or _first_line(exc)}")


@contextlib.contextmanager
def _writing(option, path):
    """An OSError of the write to ``path`` as one line naming ``option``."""
    try:
        yield
    except OSError as exc:
        _write_failed(option, path, exc)


@contextlib.contextmanager
def atomic_path(path, option: str = "output"):
    """Yield a temporary path beside ``path`` (same extension); once the block completes, rename it to ``path``.

    :func:`xmrank._atomic.atomic_path`, with an ``OSError`` turned into one
    line naming ``option``. Inside :func:`committed` the rename waits for the
    command's other outputs.
    """
    with _writing(option, path), _atomic.atomic_path(path) as tmp:
        yield tmp


def write_atomic(path, option: str, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path`` (see :func:`atomic_path`)."""
    with _writing(option, path):
        _atomic.atomic_write(path, write)


def committed():
    """A block whose outputs replace their targets together at its end, or none of them (a failure inside).

    Wrap every write of a command that writes several outputs::

        with committed():
            write_npy(output, labels)
            write_json(json_path, summary)
    """
    return _lib.committed()


def write_npy(path: str, array: np.ndarray, option: str = "--output"):
    """``array`` in .npy format at exactly ``path`` (no ``.npy`` appended), atomically (:func:`xmrank.io.write_array`)."""
    with _writing(option, path):
        _lib.write_array(path, array)


def write_json(path: str, payload, option: str = "--json"):
    """``payload`` as indented JSON at ``path``, atomically (:func:`xmrank.io.write_json`); ``-`` writes it to
    standard output.

    Serialised in full before anything is written.
    """
    if os.fspath(path) == STDOUT:
        _to_stdout(json.dumps(payload, indent=2, default=json_default, allow_nan=True) + "\n", option)
        return
    with _writing(option, path):
        _lib.write_json(path, payload)


def write_text(path: str, text: str, option: str):
    """``text`` (UTF-8) at ``path``, atomically (:func:`xmrank.io.write_text`); ``-`` writes it to standard output."""
    if os.fspath(path) == STDOUT:
        _to_stdout(text, option)
        return
    with _writing(option, path):
        _lib.write_text(path, text)


def write_sparse(path: str, matrix, option: str):
    """A scipy sparse matrix in ``scipy.sparse.save_npz`` format at exactly ``path``, atomically
    (:func:`xmrank.io.write_sparse`)."""
    with _writing(option, path):
        _lib.write_sparse(path, matrix)


def write_json_atomic(path: str, option: str, payload):
    """Same as :func:`write_json`, with the option first."""
    write_json(path, payload, option)


# --- standard output ---------------------------------------------------------------------------

def _to_stdout(text: str, option: str) -> None:
    """Write ``text`` to standard output in full, or fail: an output nobody receives is no success."""
    if not _stdout_open():
        fail(f"{option} -: standard output is closed; nothing was written.")
    try:
        click.echo(text, nl=False)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        fail(f"{option} -: cannot write to standard output ({getattr(exc, 'strerror', None) or _first_line(exc)}).")


def echo_report(text: str, *outputs) -> None:
    """A command's human-readable report: on standard output, or on standard error when one of
    ``outputs`` (paths) is ``-``, since standard output then carries that file's data."""
    click.echo(text, err=any(path is not None and os.fspath(path) == STDOUT for path in outputs))


# --- errors --------------------------------------------------------------------------------

def user_errors(func):
    """Turn xmrank's InputError (and other ValueErrors) into a one-line CLI error.

    Python warnings raised while the command runs (numpy's overflow warnings,
    say) are held back: shown one line each when the command succeeds, dropped
    when it fails, so that a failure is always exactly one line.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                result = func(*args, **kwargs)
            except InputError as exc:
                fail(str(exc))
            except MemoryError:
                fail("out of memory: try fewer rows, a smaller k1, or knn='ann'.")
            except (ValueError, OverflowError, FloatingPointError) as exc:
                fail(_first_line(exc))
            except BrokenPipeError:  # stdout closed early (`| head`): click exits quietly
                raise
            except OSError as exc:  # a file that cannot be read or written (no space, no permission, ...)
                where = f"{exc.filename}: " if exc.filename else ""
                fail(f"{where}{exc.strerror or _first_line(exc)}")
        seen = set()
        for w in caught:
            text = f"Warning: {_first_line(w.message)}"
            if text not in seen:
                seen.add(text)
                click.echo(text, err=True)
        return result

    return wrapper
