"""Outputs: checking a path before any work, and writing files atomically.

Every file xmrank writes (command outputs, the trainer's checkpoints and
logs, the synthetic data sets) goes through the one atomic writer,
:mod:`xmrank._atomic`: the data go to a temporary file
``.NAME.xmrank-tmp-PID-*`` beside the target, renamed into place with
:func:`os.replace` once complete. An output is whole or absent, and the
previous file stays untouched when a write fails. Writes inside
:func:`committed` replace their targets together at the end of the block, or
none of them.

The checks (:func:`check_output`, :func:`check_outputs`) refuse, before any
work, in one :class:`xmrank.InputError` line naming the output: a folder, a
missing or read-only folder, a pipe or device, an input file, a path inside
a data set root that is read, two outputs naming one file.
"""

from __future__ import annotations

import json
import os
import stat
import sys

import numpy as np

from .. import _atomic  # looked up at each call: one writer, which tests may replace
from .._atomic import is_devnull
from .._json import json_default
from .formats import FORMATS, fail

__all__ = ["STDOUT", "check_npy_output", "check_output", "check_outputs",
           "check_outside_roots", "committed", "file_of", "same_file", "stdout_open", "write_array", "write_arrays",
           "write_json", "write_sparse", "write_text"]

#: The path that means standard output, for the outputs that accept it (``--json -``).
STDOUT = "-"


# --- paths: checked before any work -------------------------------------------------------------

def file_of(path):
    """The file behind an input argument: ``PATH.EXT:KEY`` -> ``PATH.EXT``; None for a non-path (an integer label).

    Examples
    --------
    >>> from xmrank.io import file_of
    >>> file_of("bundle.npz:features"), file_of("plain.npy"), file_of(3)
    ('bundle.npz', 'plain.npy', None)
    """
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if ":" in os.path.basename(path):
        head = path.rsplit(":", 1)[0]
        if os.path.splitext(head)[1].lower() in FORMATS and not os.path.exists(path):
            return head
    return path


def same_file(a, b) -> bool:
    """True when paths ``a`` and ``b`` name one file (resolved real paths; :func:`os.path.samefile` when both exist).

    Examples
    --------
    >>> from xmrank.io import same_file
    >>> same_file("out/../x.npy", "x.npy")
    True
    """
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


def _under_proc(path) -> bool:
    """A name under /dev/fd, /proc or /dev (``/dev/stdout`` redirected to a file is a link to that file)."""
    names = {os.path.abspath(path), os.path.realpath(path)}
    return any(n.startswith(("/dev/", "/proc/")) for n in names) and os.name == "posix"


def _inside(path, root) -> bool:
    """Whether ``path`` (real path) is ``root`` or lies under it."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(os.path.join(top, ""))


def check_outside_roots(path, name: str = "path", roots=()):
    """Fail unless ``path`` lies outside every data set root of ``roots`` (``(name, folder)`` pairs).

    A data set's own files (its list files, its images) are never written
    over: rather than listing them, no output may lie anywhere inside a root
    that is read (links followed).

    Raises
    ------
    xmrank.InputError
        Naming ``name`` and the root.
    """
    for root_name, root in roots:
        if root is not None and os.path.isdir(root) and _inside(path, root):
            fail(f"{name} {path}: lies inside the data set root of {root_name} ({root}); outputs are never written "
                 "inside a data set, choose a path outside it.")


def check_output(path, name: str = "path", *, inputs=(), roots=(), suffix: str | None = None,
                 stdout_ok: bool = False):
    """Fail (one line naming ``name``) unless ``path`` can be written and is none of ``inputs``.

    Parameters
    ----------
    path : str, path-like or None
        None passes.
    name : str, default="path"
        The argument or option, for the message (``"--json"``).
    inputs : iterable of (str, str)
        ``(name, path)`` of the input files (None and integers are skipped;
        ``PATH.npz:KEY`` means ``PATH.npz``): the output must not be one of them.
    roots : iterable of (str, str)
        ``(name, folder)`` of the data set roots read: no output may lie
        inside one (a data set's files are never written over).
    suffix : str, optional
        Required file ending (``".npz"``).
    stdout_ok : bool, default=False
        Whether this output accepts ``-`` (standard output) instead of a
        path, said in the message for a pipe or terminal.

    Raises
    ------
    xmrank.InputError
        A folder, a missing or read-only folder, a read-only file, an
        existing path that is no regular file (a FIFO, ``/dev/stdout``, a
        terminal: a partial write there could not be taken back), one of
        ``inputs``, a path inside one of ``roots``. The null device is
        accepted (written directly).

    Examples
    --------
    >>> import os, tempfile
    >>> from xmrank.io import check_output
    >>> folder = tempfile.mkdtemp()
    >>> check_output(os.path.join(folder, "labels.npy"), "output")
    >>> check_output(folder, "output")
    Traceback (most recent call last):
    ...
    xmrank._validation.InputError: output ...: is a folder; give a file name.
    """
    if path is None:
        return
    path = os.fspath(path)
    if not path.strip():
        fail(f"{name}: the file name is empty.")
    if suffix is not None and not path.lower().endswith(suffix):
        fail(f"{name} {path}: the file name must end with {suffix}.")
    if os.path.isdir(path):
        fail(f"{name} {path}: is a folder; give a file name.")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        fail(f"{name} {path}: ends with a path separator; give a file name.")
    for input_name, other in inputs:
        other = file_of(other)
        if other is not None and same_file(path, other):
            fail(f"{name} {path}: is the input file of {input_name}; choose another output name, inputs are never "
                 "written over.")
    check_outside_roots(path, name, roots)
    if is_devnull(path):  # written directly: nothing there can be lost
        return
    if _special(path) or _under_proc(path):
        fail(f"{name} {path}: is not a regular file (a pipe, terminal or device), where a partial write could "
             "not be taken back; give a file name" + (" (or - for standard output)." if stdout_ok else "."))
    folder = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(folder):
        fail(f"{name} {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{name} {path}: folder {folder} is not writable.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        fail(f"{name} {path}: the existing file is read-only.")


def check_npy_output(path, name: str = "path"):
    """Fail when an output written in .npy format (one array, at exactly ``path``) is given a ``.npz`` name."""
    if path is not None and os.fspath(path).lower().endswith(".npz"):
        fail(f"{name} {path}: this output is one .npy array, not a .npz archive; give a .npy file name.")


def stdout_open() -> bool:
    """Whether standard output can be written (a closed descriptor makes Python's sys.stdout None)."""
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # not a real descriptor (a test runner's buffer)
        return not getattr(sys.stdout, "closed", False)
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def check_outputs(outputs, *, inputs=(), roots=(), stdout=(), stdout_ok=None):
    """Check every output of one task before any work: each passes :func:`check_output`, no two name one file.

    Parameters
    ----------
    outputs : iterable of (str, str or None)
        ``(name, path)``; None paths (outputs not asked for) are skipped.
    inputs : iterable of (str, str or None)
        ``(name, path)`` of every input file: no output may name one.
    roots : iterable of (str, str or None)
        ``(name, folder)`` of every data set root read: no output may lie inside one.
    stdout : iterable of str
        Outputs for which ``-`` means standard output (skipped here); at
        most one output may go there, and standard output must be open.
    stdout_ok : iterable of str, optional
        Outputs whose messages say that ``-`` is accepted (default: ``stdout``).

    Raises
    ------
    xmrank.InputError
        One line naming the first output refused.

    Examples
    --------
    >>> import os, tempfile
    >>> from xmrank.io import check_outputs
    >>> folder = tempfile.mkdtemp()
    >>> out = os.path.join(folder, "labels.npy")
    >>> check_outputs([("labels", out), ("summary", os.path.join(folder, "s.json"))])
    >>> check_outputs([("labels", out), ("copy", out)])
    Traceback (most recent call last):
    ...
    xmrank._validation.InputError: labels and copy name the same file ...; give each output its own file.
    """
    outputs = list(outputs)
    inputs = list(inputs)
    roots = list(roots)
    stdout = set(stdout)
    stdout_ok = stdout if stdout_ok is None else set(stdout_ok)
    to_stdout = [option for option, path in outputs if path is not None and os.fspath(path) == STDOUT
                 and option in stdout]
    if len(to_stdout) > 1:
        fail(f"{to_stdout[0]} and {to_stdout[1]} both name standard output (-); send one of them to a file.")
    if to_stdout and not stdout_open():
        fail(f"{to_stdout[0]} -: standard output is closed; give a file name.")
    given = [(option, os.fspath(path)) for option, path in outputs
             if path is not None and not (option in stdout and os.fspath(path) == STDOUT)]
    for option, path in given:
        check_output(path, option, inputs=inputs, roots=roots, stdout_ok=option in stdout_ok)
    for i, (opt_a, a) in enumerate(given):
        for opt_b, b in given[i + 1:]:
            if same_file(a, b) and not _special(a):
                fail(f"{opt_a} and {opt_b} name the same file {a}; give each output its own file.")


# --- writing: a temporary file beside the target, renamed into place (xmrank._atomic) -----------

def committed():
    """A block whose writes replace their targets together at its end, or none of them (a failure inside).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import committed, write_array, write_json
    >>> folder = tempfile.mkdtemp()
    >>> with committed():
    ...     write_array(os.path.join(folder, "labels.npy"), np.array([0, 0, 1]))
    ...     write_json(os.path.join(folder, "summary.json"), {"n_clusters": 2})
    >>> sorted(os.listdir(folder))
    ['labels.npy', 'summary.json']
    """
    return _atomic.committed_together()


def write_array(path, array) -> None:
    """``array`` in .npy format at exactly ``path`` (no ``.npy`` appended), atomically.

    Parameters
    ----------
    path : str or path-like
    array : array-like
        Numbers or strings; Python objects are refused (``ValueError``), as
        the readers would not load them.

    Raises
    ------
    OSError
        The file cannot be written (no permission, a full disk: ``ENOSPC``,
        a file-size limit: ``EFBIG``); ``path`` is then untouched.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import read_array, write_array
    >>> path = os.path.join(tempfile.mkdtemp(), "labels")
    >>> write_array(path, np.array([3, -1, 3]))
    >>> read_array(path)
    array([ 3, -1,  3])
    """
    _atomic.atomic_write(path, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))


def write_arrays(path, arrays: dict, *, compressed: bool = False) -> None:
    """The arrays of ``arrays`` (name -> array) as a ``.npz`` archive at exactly ``path``, atomically.

    Parameters
    ----------
    path : str or path-like
    arrays : dict of str to array-like
    compressed : bool, default=False
        ``np.savez_compressed`` instead of ``np.savez``.

    Raises
    ------
    OSError
        As :func:`write_array`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import read_bundle, write_arrays
    >>> path = os.path.join(tempfile.mkdtemp(), "bundle.npz")
    >>> write_arrays(path, {"features": np.eye(2), "modalities": [0, 1]})
    >>> read_bundle(path)["modalities"]
    array([0, 1])
    """
    save = np.savez_compressed if compressed else np.savez
    data = {str(k): np.asarray(v) for k, v in arrays.items()}
    for k, v in data.items():
        if v.dtype.hasobject:
            raise ValueError(f"arrays[{k!r}] holds Python objects, which the readers do not load; "
                             "give numbers or strings.")
    _atomic.atomic_write(path, lambda fh: save(fh, **data))


def write_json(path, payload) -> None:
    """``payload`` as indented JSON at ``path``, atomically (numpy scalars and arrays as numbers and lists).

    Serialised in full before anything is written.

    Raises
    ------
    OSError
        As :func:`write_array`.
    TypeError
        ``payload`` holds values JSON cannot hold (nothing is written).

    Examples
    --------
    >>> import json, os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import write_json
    >>> path = os.path.join(tempfile.mkdtemp(), "summary.json")
    >>> write_json(path, {"n": np.int64(3), "sizes": np.array([2, 1])})
    >>> json.load(open(path))
    {'n': 3, 'sizes': [2, 1]}
    """
    text = json.dumps(payload, indent=2, default=json_default, allow_nan=True) + "\n"
    write_text(path, text)


def write_text(path, text: str) -> None:
    """``text`` (UTF-8) at ``path``, atomically.

    Raises
    ------
    OSError
        As :func:`write_array`.
    """
    data = text.encode("utf-8")
    _atomic.atomic_write(path, lambda fh: fh.write(data))


def write_sparse(path, matrix) -> None:
    """A scipy sparse matrix in ``scipy.sparse.save_npz`` format (CSR, uncompressed) at exactly ``path``, atomically.

    Raises
    ------
    OSError
        As :func:`write_array`.

    Examples
    --------
    >>> import os, tempfile
    >>> import scipy.sparse as sp
    >>> from xmrank.io import write_sparse
    >>> path = os.path.join(tempfile.mkdtemp(), "distance.npz")
    >>> write_sparse(path, sp.eye(3))
    >>> sp.load_npz(path).nnz
    3
    """
    import scipy.sparse as sp

    csr = matrix.tocsr() if sp.issparse(matrix) else sp.csr_matrix(matrix)
    _atomic.atomic_write(path, lambda fh: sp.save_npz(fh, csr, compressed=False))
