"""Shared CLI plumbing: reading arrays, checking and writing outputs, one-line errors.

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
import stat
import sys
import warnings
import zipfile

import click
import numpy as np

from xmrank import _atomic
from xmrank._atomic import is_devnull
from xmrank._json import json_default
from xmrank._validation import InputError, plain, torch_numpy

def fail(message: str):
    """Abort the command with one line on stderr and exit status 1."""
    raise click.ClickException(" ".join(str(message).split()))


#: Array names read from an input file, for every command: the feature matrix, then the per-row arrays
#: (first name present wins). Read by :func:`xmrank.cli._bundle.read_bundle`, the one bundle reader.
BUNDLE_KEYS = {
    "features": ("features", "X", "feats", "embeddings", "embedding", "feature"),
    "modalities": ("modalities", "modality", "mods"),
    "cameras": ("cameras", "cams", "camera", "cam", "camids"),
    "ids": ("ids", "labels", "pids", "id", "label", "pid"),
    "names": ("names", "paths", "name", "path", "files", "filenames", "file", "filename", "images", "image"),
}

#: File endings read, and the optional package each needs (None: numpy or the standard library).
FORMATS = {
    ".npy": None, ".npz": None, ".pt": "torch", ".pth": "torch", ".csv": None, ".tsv": None, ".txt": None,
    ".h5": "h5py", ".hdf5": "h5py", ".hdf": "h5py", ".parquet": "pyarrow", ".pq": "pyarrow",
}
_INSTALL = {"torch": "pip install torch (or 'xmrank[torch]')", "h5py": "pip install h5py (or 'xmrank[io]')",
            "pyarrow": "pip install pyarrow (or 'xmrank[io]')"}
FORMATS_HELP = (".npy, .npz, .pt/.pth (torch), .csv/.tsv/.txt, .h5/.hdf5 (h5py) or .parquet (pyarrow)")


def _split_key(path):
    """``PATH.EXT:KEY`` -> (PATH.EXT, KEY) for a readable extension when PATH.EXT:KEY itself is no file."""
    path = os.fspath(path)
    base = os.path.basename(path)
    if ":" in base and not os.path.exists(path):
        head, key = path.rsplit(":", 1)
        if os.path.splitext(head)[1].lower() in FORMATS and key:
            return head, key
    return path, None


def _sniff(path) -> str | None:
    """The format of a file from its first bytes: npy, zip (npz or torch), hdf5, parquet, text, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x80"):  # a plain pickle (torch.save's legacy format, or pickle.dump)
        return "pickle"
    if not head or b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return "text" if printable >= 0.95 * len(text) else None


def _zip_kind(path) -> str:
    """".pt" for a torch archive (it holds a data.pkl), else ".npz"."""
    try:
        with zipfile.ZipFile(path) as z:
            return ".pt" if any(n.endswith("data.pkl") for n in z.namelist()) else ".npz"
    except (OSError, zipfile.BadZipFile):
        return ".npz"


def _format_of(path, name) -> str:
    """The reader for ``path``: its extension, else (an unknown one) what its bytes say."""
    ext = os.path.splitext(path)[1].lower()
    if ext in FORMATS:
        return ext
    kind = _sniff(path)
    guess = {"npy": ".npy", "zip": _zip_kind(path) if kind == "zip" else None, "hdf5": ".h5",
             "parquet": ".parquet"}.get(kind)
    if guess is not None:
        return guess
    what = "text" if kind == "text" else "pickled Python objects" if kind == "pickle" else "data of an unknown kind"
    fail(f"{name}: cannot read {path}: its name ends in {ext or '(no extension)'!r} and it holds {what}; "
         f"xmrank reads {FORMATS_HELP}.")


def _need(module, path, name, ext):
    try:
        return __import__(module)
    except ImportError:
        fail(f"{name}: reading {path} ({ext}) needs the {module} package, which is not installed: "
             f"{_INSTALL[module]}; or save the arrays as .npy/.npz.")


def _check_exists(path, name):
    if not os.path.exists(path):
        fail(f"{name}: file not found: {path}")
    if os.path.isdir(path):
        fail(f"{name}: {path} is a folder; give a file ({FORMATS_HELP}).")


def read_arrays(path, *, name: str, keys=None) -> dict:
    """Every array of an input file, by name (only ``keys`` when given), whatever its format.

    ====================  ===================================================================
    ``.npy``              one array, named ``features``
    ``.npz``              its arrays (``np.load``, no pickles)
    ``.pt``, ``.pth``     a tensor (named ``features``) or a dict of tensors, arrays, lists
                          (``torch.load(weights_only=True)``: no code runs); needs torch.
                          bfloat16/float16/float8 tensors are widened to float32, quantised
                          ones (qint8, ...) dequantised; sparse tensors and lists mixing
                          strings and numbers are refused
    ``.csv .tsv .txt``    a table: with a header row, columns named as in :data:`BUNDLE_KEYS`
                          (``modality``, ``camera``, ``id``, ``path``, ...) are per-row arrays
                          and the other numeric columns the features; without one, every
                          column is a feature
    ``.h5``, ``.hdf5``    the datasets at the file's root; needs h5py
    ``.parquet``          its columns as for CSV (a text column among the features is
                          refused); a column of lists is a 2-D array (one list per row);
                          needs pyarrow
    ====================  ===================================================================

    ``PATH.EXT:KEY`` reads array (dataset, column) ``KEY`` only, as ``{KEY: array}``.
    Every failure is one line naming ``name``.
    """
    path, key = _split_key(path)
    _check_exists(path, name)
    if key is not None:
        keys = [key]
    fmt = _format_of(path, name)
    if fmt == ".npy" and key is not None:
        fail(f"{name}: {path} is a .npy array, not an archive; drop ':{key}'.")
    readers = {".npy": _read_npy, ".npz": _read_npz, ".pt": _read_torch, ".pth": _read_torch, ".csv": _read_csv,
               ".tsv": _read_csv, ".txt": _read_csv, ".h5": _read_h5, ".hdf5": _read_h5, ".hdf": _read_h5,
               ".parquet": _read_parquet, ".pq": _read_parquet}
    try:
        arrays = readers[fmt](path, name, keys)
    except MemoryError:
        fail(f"{name}: the arrays of {path} do not fit in memory.")
    if key is not None and key not in arrays:
        fail(f"{name}: {path} has no array {key!r}.")
    return arrays


def load_array(path: str, *, name: str, key: str | None = None, allow_pickle: bool = False) -> np.ndarray:
    """Read one array: a ``.npy`` file, array ``key`` of a ``.npz`` file (``PATH.npz:KEY`` also works),
    or the single array of any other readable format (``PATH.EXT:KEY`` picks one; see :func:`read_arrays`).

    A file with a single array needs no key. Errors are one line naming ``name``.
    """
    if key is None:
        path, key = _split_key(path)
    path = os.fspath(path)
    _check_exists(path, name)
    fmt = _format_of(path, name)
    if fmt not in (".npy", ".npz"):
        arrays = read_arrays(f"{path}:{key}" if key else path, name=name)
        if key is None and len(arrays) != 1:
            fail(f"{name}: {path} holds several arrays ({', '.join(arrays)}); name one with PATH:KEY.")
        return arrays[key] if key is not None else next(iter(arrays.values()))
    _check_npy_size(path, name)
    try:
        obj = np.load(path, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        _explain_npy_failure(path, name, exc)
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


def _explain_npy_failure(path, name, exc):
    """One line for a file np.load refused: say what the file really holds when it is no .npy/.npz."""
    kind = _sniff(path)
    ext = os.path.splitext(path)[1].lower() or "(no extension)"
    real = {"text": "text (a CSV? name it .csv)", "hdf5": "HDF5 data (name it .h5)",
            "parquet": "Parquet data (name it .parquet)", "pickle": "pickled Python objects (not read, for safety)"}
    if kind in real and not (kind == "pickle" and ext == ".npy"):
        fail(f"{name}: cannot read {path}: it is not a {ext} array file but {real[kind]}.")
    if kind == "zip" and ext == ".npy":
        fail(f"{name}: cannot read {path}: it is a zip archive, not a .npy array (a .npz? a torch .pt?).")
    detail = "it holds pickled Python objects, which xmrank does not load" if "pickle" in str(exc) else \
        f"{exc.__class__.__name__}: {exc}"
    fail(f"{name}: cannot read {path} as a .npy or .npz array file ({detail}).")


def _read_npy(path, name, keys):
    return {"features": load_array(path, name=name)}


def _read_npz(path, name, keys):
    try:
        with np.load(path, allow_pickle=False) as npz:
            wanted = [k for k in npz.files if keys is None or k in keys]
            out = {}
            for k in wanted:
                try:
                    out[k] = npz[k]
                except ValueError as exc:  # an object array inside the archive
                    fail(f"{name}: cannot read array {k!r} of {path} ({_first_line(exc)}).")
            return out
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        fail(f"{name}: cannot read {path} as a .npz archive ({exc.__class__.__name__}: {exc}).")
    except ValueError as exc:
        _explain_npy_failure(path, name, exc)


def _to_numpy(value, where, name):
    """A tensor, array, list or scalar of an input file as a numpy array (bfloat16 widened to float32)."""
    mod = type(value).__module__.split(".")[0]
    if mod == "torch":
        import torch

        if value.dtype == torch.float16 and value.layout == torch.strided:
            value = value.float()
        try:  # float8 / bfloat16 widened, quantised tensors dequantised, sparse ones refused
            return torch_numpy(value, where)
        except InputError as exc:
            fail(f"{name}: {exc}")
        except (RuntimeError, TypeError) as exc:
            fail(f"{name}: {where} is a tensor of type {str(value.dtype).replace('torch.', '')}, which xmrank cannot "
                 f"read ({_first_line(exc)}).")
    if isinstance(value, (list, tuple)):
        text = [isinstance(v, (str, bytes)) for v in value]
        if value and all(text):
            return np.asarray([v.decode() if isinstance(v, bytes) else v for v in value])
        if any(text):  # numpy would turn [0, "a"] into two strings: a mix of numbers and strings is refused
            first = next(v for v, t in zip(value, text) if not t)
            fail(f"{name}: {where} mixes strings and other values ({type(first).__name__} {plain(first)}); "
                 "labels are all numbers or all strings.")
        if value and type(value[0]).__module__.split(".")[0] == "torch":
            import torch

            try:
                return _to_numpy(torch.stack(list(value)), where, name)
            except (RuntimeError, TypeError):
                fail(f"{name}: {where} is a list of tensors of different shapes.")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        fail(f"{name}: {where} is not an array (ragged lists?).")
    if arr.dtype == object:
        fail(f"{name}: {where} holds {type(value).__name__} values that are not numbers or strings.")
    return arr


def _read_torch(path, name, keys):
    torch = _need("torch", path, name, os.path.splitext(path)[1] or ".pt")
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            fail(f"{name}: {path} holds Python objects that torch.load(weights_only=True) refuses to run; "
                 "save a tensor or a dict of tensors, arrays and lists.")
        fail(f"{name}: cannot read {path} as a torch file ({_first_line(exc)}).")
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        fail(f"{name}: cannot read {path} as a torch file ({exc.__class__.__name__}: {_first_line(exc)}).")
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str) or (keys is not None and k not in keys):
                continue
            if isinstance(v, dict):
                continue  # a nested dict (a model's state) is no per-row array
            out[k] = _to_numpy(v, f"entry {k!r} of {path}", name)
        if not out:
            fail(f"{name}: {path} is a dict without tensors or arrays{' named ' + ', '.join(keys) if keys else ''}.")
        return out
    return {"features": _to_numpy(obj, path, name)}


def _column(values, label):
    """A CSV column as int64, float64 or strings, whichever fits every value."""
    try:
        ints = np.array([int(v) for v in values], dtype=np.int64)
        return ints
    except (ValueError, OverflowError):
        pass
    try:
        return np.array([float(v) if v.strip() else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.asarray(values)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv(path, name, keys):
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(65536)
            fh.seek(0)
            first = sample.splitlines()[0] if sample.strip() else ""
            delim = "\t" if (path.lower().endswith(".tsv") or ("\t" in first and "," not in first)) else \
                (";" if first.count(";") > first.count(",") else ",")
            if path.lower().endswith(".txt") and delim == "," and "," not in first and " " in first.strip():
                rows = [line.split() for line in fh if line.strip()]
            else:
                rows = [r for r in csv.reader(fh, delimiter=delim) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        fail(f"{name}: cannot read {path} as CSV: it is not UTF-8 text (a binary file named .csv?).")
    except (OSError, csv.Error) as exc:
        fail(f"{name}: cannot read {path} as CSV ({exc.__class__.__name__}: {exc}).")
    if not rows:
        fail(f"{name}: {path} is empty.")
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        fail(f"{name}: {path} line {bad + 1} has {len(rows[bad])} fields where line 1 has {width}.")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
        if not rows:
            fail(f"{name}: {path} has a header but no rows.")
    if header is None:
        try:
            arr = np.array(rows, dtype=np.float64)
        except ValueError:
            fail(f"{name}: {path} holds values that are not numbers (and its first line is no header).")
        if arr.shape[1] == 1:
            col = arr[:, 0]
            return {"features": col.astype(np.int64) if np.all(col == np.round(col)) and np.all(np.isfinite(col))
                    else col}
        return {"features": arr}
    named = {k.lower(): field for field, names in BUNDLE_KEYS.items() if field != "features" for k in names}
    columns = list(zip(*rows))
    out, feature_cols = {}, []
    for label, values in zip(header, columns):
        if label.lower() in named:
            out[label] = _column(values, label)
        else:
            feature_cols.append((label, values))
    if len(feature_cols) == 1 and not out:
        label, values = feature_cols[0]
        out[label] = _column(values, label)
        return _pick(out, keys)
    if feature_cols:
        try:
            X = np.array([[float(v) if v.strip() else np.nan for v in values] for _, values in feature_cols],
                         dtype=np.float64).T
        except ValueError:
            bad = next(label for label, values in feature_cols if not all(_is_number(v) or not v.strip() for v in values))
            fail(f"{name}: {path} column {bad!r} holds values that are not numbers; name per-row label columns "
                 f"{', '.join(sorted({v[0] for v in BUNDLE_KEYS.values()} - {'features'}))}.")
        out["features"] = X
    return _pick(out, keys)


def _pick(arrays, keys):
    return arrays if keys is None else {k: v for k, v in arrays.items() if k in keys}


def _read_h5(path, name, keys):
    h5py = _need("h5py", path, name, os.path.splitext(path)[1] or ".h5")
    out = {}
    try:
        with h5py.File(path, "r") as fh:
            names = list(keys) if keys is not None else [k for k in fh.keys() if isinstance(fh[k], h5py.Dataset)]
            for k in names:
                if k not in fh or not isinstance(fh[k], h5py.Dataset):
                    continue
                arr = fh[k][()]
                if isinstance(arr, bytes) or (isinstance(arr, np.ndarray) and arr.dtype.kind in "OS"):
                    arr = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(arr)])
                out[k] = np.asarray(arr)
    except OSError as exc:
        fail(f"{name}: cannot read {path} as HDF5 ({_first_line(exc)}).")
    if not out and keys is None:
        fail(f"{name}: {path} holds no dataset at its root.")
    return out


def _read_parquet(path, name, keys):
    _need("pyarrow", path, name, os.path.splitext(path)[1] or ".parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=list(keys) if keys is not None else None)
    except (pa.ArrowException, OSError, KeyError) as exc:
        if keys is not None and isinstance(exc, (KeyError, pa.ArrowInvalid)):
            return {}
        fail(f"{name}: cannot read {path} as Parquet ({_first_line(exc)}).")
    named = {k.lower() for field, names in BUNDLE_KEYS.items() for k in names}
    out, feature_cols = {}, []
    for label in table.column_names:
        col = table.column(label).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            lengths = col.value_lengths().to_numpy(zero_copy_only=False)
            if col.null_count or (lengths.size and (lengths != lengths[0]).any()):
                fail(f"{name}: {path} column {label!r} holds lists of different lengths (or missing rows).")
            flat = col.flatten().to_numpy(zero_copy_only=False)
            out[label] = flat.reshape(len(col), int(lengths[0]) if lengths.size else 0)
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            if label.lower() not in named and keys is None and table.num_columns > 1:
                # as the CSV reader: a text column among the features is refused, never silently dropped
                fail(f"{name}: {path} column {label!r} holds values that are not numbers; name per-row label "
                     f"columns {', '.join(sorted({v[0] for v in BUNDLE_KEYS.values()} - {'features'}))}.")
            out[label] = np.asarray(col.to_pylist(), dtype=str)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            arr = col.to_numpy(zero_copy_only=False)
            if label.lower() in named or keys is not None:
                out[label] = arr
            else:
                feature_cols.append(arr)
        else:
            fail(f"{name}: {path} column {label!r} has type {col.type}, which xmrank cannot read.")
    if feature_cols and not any(k.lower() in {f.lower() for f in BUNDLE_KEYS["features"]} for k in out):
        out["features"] = np.stack([np.asarray(c, dtype=np.float64) for c in feature_cols], axis=1)
    return out


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
    """The file behind an input argument: ``PATH.EXT:KEY`` -> ``PATH.EXT``; None for a non-path (an integer label)."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if ":" in os.path.basename(path):
        head = path.rsplit(":", 1)[0]
        if os.path.splitext(head)[1].lower() in FORMATS and not os.path.exists(path):
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


def _under_proc(path) -> bool:
    """A name under /dev/fd, /proc or /dev (``/dev/stdout`` redirected to a file is a link to that file)."""
    names = {os.path.abspath(path), os.path.realpath(path)}
    return any(n.startswith(("/dev/", "/proc/")) for n in names) and os.name == "posix"


def _inside(path, root) -> bool:
    """Whether ``path`` (real path) is ``root`` or lies under it."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(os.path.join(top, ""))


def check_outside_roots(path, option: str, roots=()):
    """Fail unless ``path`` lies outside every data set root of ``roots`` (``(name, folder)`` pairs).

    A data set's own files (its list files, its images) are never written
    over: rather than listing them, no output may lie anywhere inside a root
    the command reads (links followed).
    """
    for name, root in roots:
        if root is not None and os.path.isdir(root) and _inside(path, root):
            fail(f"{option} {path}: lies inside the data set root of {name} ({root}); outputs are never written "
                 "inside a data set, choose a path outside it.")


def check_output(path, option: str, *, inputs=(), roots=(), suffix: str | None = None):
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
    roots : iterable of (str, str)
        ``(name, folder)`` of the data set roots the command reads: no output
        may lie inside one (a data set's files are never written over).
    suffix : str, default=None
        Required file ending (``".npz"``).

    Notes
    -----
    An existing path that is no regular file (a FIFO, ``/dev/stdout``, a
    terminal) is refused: a partial write there could not be taken back.
    The null device is accepted (written directly).
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
    check_outside_roots(path, option, roots)
    if is_devnull(path):  # written directly: nothing there can be lost
        return
    if _special(path) or _under_proc(path):
        fail(f"{option} {path}: is not a regular file (a pipe, terminal or device), where a partial write could "
             "not be taken back; give a file name" + (" (or - for standard output)." if option in _STDOUT_OK else "."))
    folder = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(folder):
        fail(f"{option} {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{option} {path}: folder {folder} is not writable.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        fail(f"{option} {path}: the existing file is read-only.")


#: The path that means standard output, for the options that accept it (``--json -``).
STDOUT = "-"
#: Options that accept ``-`` (standard output) in some command, for messages.
_STDOUT_OK = {"--json", "--contents"}


def _stdout_open() -> bool:
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


def check_outputs(outputs, *, inputs=(), roots=(), stdout=()):
    """Pre-flight check of all of a command's outputs, before any work.

    Parameters
    ----------
    outputs : iterable of (str, str or None)
        ``(option, path)``; None paths (options not given) are skipped.
    inputs : iterable of (str, str or None)
        ``(name, path)`` of every input file: no output may name one.
    roots : iterable of (str, str or None)
        ``(name, folder)`` of every data set root read: no output may lie inside one.
    stdout : iterable of str
        Options for which ``-`` means standard output (skipped here); at most
        one output may go there, and standard output must be open.

    Each output passes :func:`check_output`, and no two outputs may name one file.
    """
    inputs = list(inputs)
    roots = list(roots)
    stdout = set(stdout)
    to_stdout = [option for option, path in outputs if path is not None and os.fspath(path) == STDOUT
                 and option in stdout]
    if len(to_stdout) > 1:
        fail(f"{to_stdout[0]} and {to_stdout[1]} both name standard output (-); send one of them to a file.")
    if to_stdout and not _stdout_open():
        fail(f"{to_stdout[0]} -: standard output is closed; give a file name.")
    given = [(option, os.fspath(path)) for option, path in outputs
             if path is not None and not (option in stdout and os.fspath(path) == STDOUT)]
    for option, path in given:
        check_output(path, option, inputs=inputs, roots=roots)
    for i, (opt_a, a) in enumerate(given):
        for opt_b, b in given[i + 1:]:
            if same_file(a, b) and not _special(a):
                fail(f"{opt_a} and {opt_b} name the same file {a}; give each output its own file.")


# --- writing: a temporary file beside the target, renamed into place (xmrank._atomic) -------

def _write_failed(option, path, exc):
    fail(f"{option}: cannot write {path}: {exc.strerror or _first_line(exc)}")


@contextlib.contextmanager
def atomic_path(path, option: str = "output"):
    """Yield a temporary path beside ``path`` (same extension); once the block completes, rename it to ``path``.

    :func:`xmrank._atomic.atomic_path`, with an ``OSError`` turned into one
    line naming ``option``. Inside :func:`committed` the rename waits for the
    command's other outputs.
    """
    try:
        with _atomic.atomic_path(path) as tmp:
            yield tmp
    except OSError as exc:
        _write_failed(option, path, exc)


def write_atomic(path, option: str, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path`` (see :func:`atomic_path`)."""
    try:
        _atomic.atomic_write(path, write)
    except OSError as exc:
        _write_failed(option, path, exc)


def committed():
    """A block whose outputs replace their targets together at its end, or none of them (a failure inside).

    Wrap every write of a command that writes several outputs::

        with committed():
            write_npy(output, labels)
            write_json(json_path, summary)
    """
    return _atomic.committed_together()


def write_npy(path: str, array: np.ndarray, option: str = "--output"):
    """``array`` in .npy format at exactly ``path`` (no ``.npy`` appended), atomically."""
    write_atomic(path, option, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))


def write_json(path: str, payload, option: str = "--json"):
    """``payload`` as indented JSON at ``path``, atomically; ``-`` writes it to standard output.

    Serialised in full before anything is written.
    """
    text = json.dumps(payload, indent=2, default=json_default, allow_nan=True) + "\n"
    if os.fspath(path) == STDOUT:
        _to_stdout(text, option)
        return
    write_atomic(path, option, lambda fh: fh.write(text.encode("utf-8")))


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


def write_text(path: str, text: str, option: str):
    """``text`` (UTF-8) at ``path``, atomically; ``-`` writes it to standard output."""
    if os.fspath(path) == STDOUT:
        _to_stdout(text, option)
        return
    write_atomic(path, option, lambda fh: fh.write(text.encode("utf-8")))


def write_sparse(path: str, matrix, option: str):
    """A scipy sparse matrix in ``scipy.sparse.save_npz`` format at exactly ``path``, atomically."""
    import scipy.sparse as sp

    write_atomic(path, option, lambda fh: sp.save_npz(fh, matrix.tocsr(), compressed=False))


def write_json_atomic(path: str, option: str, payload):
    """Same as :func:`write_json`, with the option first."""
    write_json(path, payload, option)


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
