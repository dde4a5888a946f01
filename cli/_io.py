"""Shared CLI plumbing: reading arrays, checking and writing outputs, one-line errors.

Every file a command writes goes through :func:`check_outputs` (before any
work: folder exists and is writable, the path is no directory, no input file
and no other output of the same command) and :func:`write_atomic` (a
temporary file beside the target, renamed into place with :func:`os.replace`
once complete): an output is whole or absent, the previous file stays
untouched when a write fails, and no input is ever written over.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import stat
import tempfile
import warnings
import zipfile

import click
import numpy as np

from xmrank._validation import InputError

#: Click type of every ``--seed``: what numpy's and torch's generators accept (0 to 2**64 - 1).
SEED = click.IntRange(0, 2**64 - 1)


def fail(message: str):
    """Abort the command with one line on stderr and exit status 1."""
    raise click.ClickException(" ".join(str(message).split()))


def load_array(path: str, *, name: str, key: str | None = None, allow_pickle: bool = False) -> np.ndarray:
    """Read a ``.npy`` file, or array ``key`` of a ``.npz`` file (``PATH.npz:KEY`` also works).

    A ``.npz`` with a single array needs no key. Errors are one line naming ``name``.
    """
    if key is None and ":" in os.path.basename(path) and path.rsplit(":", 1)[0].endswith(".npz"):
        path, key = path.rsplit(":", 1)
    if not os.path.exists(path):
        fail(f"{name}: file not found: {path}")
    if os.path.isdir(path):
        fail(f"{name}: {path} is a folder; give a .npy or .npz file.")
    _check_npy_size(path, name)
    try:
        obj = np.load(path, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        fail(f"{name}: cannot read {path} as a .npy or .npz array file ({exc.__class__.__name__}: {exc}).")
    except MemoryError:
        fail(f"{name}: the arrays of {path} do not fit in memory.")
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
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                fail(f"{name}: cannot read array {key!r} of {path} ({exc.__class__.__name__}: {exc}).")
            except MemoryError:
                fail(f"{name}: array {key!r} of {path} does not fit in memory (or its header lies about its size).")
    if key is not None:
        fail(f"{name}: {path} is a .npy array, not a .npz archive; drop ':{key}'.")
    return obj


def _check_npy_size(path, name):
    """A .npy file must hold the bytes its header promises: an untrusted header must not make us allocate
    terabytes (a MemoryError) for a file of a few bytes."""
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                return  # a .npz (zip) or not an array file: np.load says so
            fh.seek(0)
            version = np.lib.format.read_magic(fh)
            fmt = np.lib.format
            shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fh)
            offset = fh.tell()
            size = os.fstat(fh.fileno()).st_size
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, UnicodeDecodeError):
        return  # np.load reports a malformed header in one line
    if dtype.hasobject:
        return  # refused by np.load (allow_pickle=False)
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - offset < needed:
        fail(f"{name}: {path} is cut short: its header promises an array of shape {tuple(shape)} "
             f"({needed:,} bytes) but the file holds {max(size - offset, 0):,}.")


def load_optional(path, *, name, npz=None, key=None):
    """Load ``path`` if given, else array ``key`` of an already-open ``.npz`` mapping, else None."""
    if path is not None:
        return load_array(path, name=name)
    if npz is not None and key in npz:
        return npz[key]
    return None


# --- output paths: checked before any work ------------------------------------------------

def file_of(path):
    """The file behind an input argument: ``PATH.npz:KEY`` -> ``PATH.npz``; None for a non-path (an integer label)."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if ":" in os.path.basename(path):
        head = path.rsplit(":", 1)[0]
        if head.endswith(".npz") and not os.path.exists(path):
            return head
    return path


def same_file(a, b) -> bool:
    """True when paths ``a`` and ``b`` name one file (resolved real paths; :func:`os.path.samefile` when both exist)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _special(path) -> bool:
    """An existing path that is not a regular file or folder (a device such as /dev/null, a pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output(path, option: str, *, inputs=(), suffix: str | None = None):
    """Fail (one line naming ``option``) unless ``path`` can be written and is none of ``inputs``.

    Parameters
    ----------
    path : str or None
        None passes.
    option : str
        The option's name, for the message (``"--json"``).
    inputs : iterable of (str, str)
        ``(name, path)`` of the command's input files (None and integers are
        skipped; ``PATH.npz:KEY`` means ``PATH.npz``): the output must not be one of them.
    suffix : str, default=None
        Required file ending (``".npz"``).
    """
    if path is None:
        return
    path = os.fspath(path)
    if not path.strip():
        fail(f"{option}: the file name is empty.")
    if suffix is not None and not path.lower().endswith(suffix):
        fail(f"{option} {path}: the file name must end with {suffix}.")
    if os.path.isdir(path):
        fail(f"{option} {path}: is a folder; give a file name.")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        fail(f"{option} {path}: ends with a path separator; give a file name.")
    for name, other in inputs:
        other = file_of(other)
        if other is not None and same_file(path, other):
            fail(f"{option} {path}: is the input file of {name}; choose another output name, inputs are never written over.")
    if _special(path):  # /dev/null, a pipe: written straight, no temporary file
        if not os.access(path, os.W_OK):
            fail(f"{option} {path}: not writable.")
        return
    folder = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(folder):
        fail(f"{option} {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{option} {path}: folder {folder} is not writable.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        fail(f"{option} {path}: the existing file is read-only.")


def check_outputs(outputs, *, inputs=()):
    """Pre-flight check of all of a command's outputs, before any work.

    Parameters
    ----------
    outputs : iterable of (str, str or None)
        ``(option, path)``; None paths (options not given) are skipped.
    inputs : iterable of (str, str or None)
        ``(name, path)`` of every input file: no output may name one.

    Each output passes :func:`check_output`, and no two outputs may name one file.
    """
    inputs = list(inputs)
    given = [(option, os.fspath(path)) for option, path in outputs if path is not None]
    for option, path in given:
        check_output(path, option, inputs=inputs)
    for i, (opt_a, a) in enumerate(given):
        for opt_b, b in given[i + 1:]:
            if same_file(a, b) and not _special(a):
                fail(f"{opt_a} and {opt_b} name the same file {a}; give each output its own file.")


# --- writing: a temporary file beside the target, renamed into place -----------------------

def _new_file_mode(target) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path, option: str = "output"):
    """Yield a temporary path beside ``path`` (same extension); once the block completes, rename it to ``path``.

    On any failure (an exception, a full disk, a file-size limit, Ctrl-C) the
    temporary file is removed and ``path`` keeps its previous content. An
    ``OSError`` becomes one line naming ``option``. A symbolic link is
    followed (its target is replaced); a device such as ``/dev/null`` is
    written directly.
    """
    path = os.fspath(path)
    if _special(path):
        try:
            yield path
        except OSError as exc:
            fail(f"{option}: cannot write {path}: {exc.strerror or exc}")
        return
    target = os.path.realpath(path) if os.path.islink(path) else path
    folder = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    ext = os.path.splitext(base)[1]
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=f".tmp{ext}")
        os.close(fd)
        os.chmod(tmp, _new_file_mode(target))
        yield tmp
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        fail(f"{option}: cannot write {path}: {exc.strerror or exc}")
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def write_atomic(path, option: str, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path, option) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            if not _special(tmp):
                # numpy writes arrays through a C stream of its own and does not report every short
                # write (a full disk, a file-size limit): compare what the file holds with what was sent.
                end, size = fh.tell(), os.fstat(fh.fileno()).st_size
                if size < end:
                    raise OSError(errno.EIO, f"only {size} of {end} bytes could be written (disk full or a file-size limit?)")
                os.fsync(fh.fileno())


def write_npy(path: str, array: np.ndarray, option: str = "--output"):
    """``array`` in .npy format at exactly ``path`` (no ``.npy`` appended), atomically."""
    write_atomic(path, option, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))


def write_json(path: str, payload, option: str = "--json"):
    """``payload`` as indented JSON at ``path``, atomically. Serialised in full before anything is written."""
    text = json.dumps(payload, indent=2, default=_json_default, allow_nan=True) + "\n"
    write_atomic(path, option, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: str, option: str, payload):
    """Same as :func:`write_json`, with the option first."""
    write_json(path, payload, option)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- errors --------------------------------------------------------------------------------

def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


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


def check_npy_output(path, option: str):
    """An output written in .npy format goes to exactly ``path``; a ``.npz`` name (an archive) cannot be honoured."""
    if path is not None and os.fspath(path).lower().endswith(".npz"):
        fail(f"{option} {path}: this output is one .npy array, not a .npz archive; give a .npy file name.")


class FiniteFloat(click.ParamType):
    """A finite number (no nan or inf), optionally bounded below (``min``, strictly with ``min_open``)."""

    name = "float"

    def __init__(self, min=None, min_open=False, max=None):
        self.min, self.min_open, self.max = min, min_open, max

    def convert(self, value, param, ctx):
        if isinstance(value, float) and np.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number.", param, ctx)
        if not np.isfinite(number):
            self.fail(f"expected a finite number; got {value!r}.", param, ctx)
        if self.min is not None and (number < self.min or (self.min_open and number == self.min)):
            self.fail(f"expected a number {'>' if self.min_open else '>='} {self.min}; got {value!r}.", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"expected a number <= {self.max}; got {value!r}.", param, ctx)
        return number
