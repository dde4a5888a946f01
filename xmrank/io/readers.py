"""Readers: every array of a feature file, whatever its format (.npy, .npz, .pt, .csv, .h5, .parquet).

The command line reads its inputs with these functions; a Python user reads
a file exactly as the commands do. Nothing read runs code: ``.npz``/``.npy``
files are loaded without pickles, torch files with ``weights_only=True``.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .._validation import InputError, plain, torch_numpy
from .formats import BUNDLE_KEYS, check_exists, fail, first_line, format_of, need, sniff, split_key

__all__ = ["read_array", "read_arrays"]


def read_arrays(path, keys=None, *, name: str = "path") -> dict:
    """Every array of a file, by name (only ``keys`` when given), whatever its format.

    ====================  ===================================================================
    ``.npy``              one array, named ``features``
    ``.npz``              its arrays (``np.load``, no pickles)
    ``.pt``, ``.pth``     a tensor (named ``features``) or a dict of tensors, arrays, lists
                          (``torch.load(weights_only=True)``: no code runs); needs torch.
                          bfloat16/float16/float8 tensors are widened to float32, quantised
                          ones (qint8, ...) dequantised; sparse tensors and lists mixing
                          strings and numbers are refused
    ``.csv .tsv .txt``    a table: with a header row, columns named as in
                          :data:`~xmrank.io.formats.BUNDLE_KEYS` (``modality``, ``camera``,
                          ``id``, ``path``, ...) are per-row arrays and the other numeric
                          columns the features; without one, every column is a feature
    ``.h5``, ``.hdf5``    the datasets at the file's root; needs h5py
    ``.parquet``          its columns as for CSV (a text column among the features is
                          refused); a column of lists is a 2-D array (one list per row);
                          needs pyarrow
    ====================  ===================================================================

    A file with another ending is read by what its first bytes hold.

    Parameters
    ----------
    path : str or path-like
        The file. ``PATH.EXT:KEY`` reads array (dataset, column) ``KEY``
        only, as ``{KEY: array}``.
    keys : iterable of str, optional
        Read only these arrays (those the file lacks are left out).
    name : str, default="path"
        The argument, for messages.

    Returns
    -------
    arrays : dict of str to numpy.ndarray

    Raises
    ------
    xmrank.InputError
        One line naming ``name`` and the file: not found, a folder, a format
        that cannot be read, a missing optional package, a file cut short, a
        ``KEY`` the file lacks, arrays that do not fit in memory.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import read_arrays
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "bundle.npz")
    >>> np.savez(path, features=np.eye(3, dtype=np.float32), modalities=np.array([0, 1, 1]))
    >>> sorted(read_arrays(path))
    ['features', 'modalities']
    >>> read_arrays(path + ":modalities")
    {'modalities': array([0, 1, 1])}
    """
    path, key = split_key(path)
    check_exists(path, name)
    if key is not None:
        keys = [key]
    elif keys is not None:
        keys = [keys] if isinstance(keys, str) else list(keys)
    fmt = format_of(path, name)
    if fmt == ".npy" and key is not None:
        fail(f"{name}: {path} is a .npy array, not an archive; drop ':{key}'.")
    try:
        arrays = _READERS[fmt](path, name, keys)
    except MemoryError:
        fail(f"{name}: the arrays of {path} do not fit in memory.")
    if key is not None and key not in arrays:
        fail(f"{name}: {path} has no array {key!r}.")
    return arrays


def read_array(path, key: str | None = None, *, name: str = "path", allow_pickle: bool = False) -> np.ndarray:
    """One array of a file: a ``.npy`` file, array ``key`` of an archive, or the single array of any other file.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`read_arrays` reads; ``PATH.EXT:KEY`` picks array ``KEY``.
    key : str, optional
        The array to read; a file holding a single array needs none.
    name : str, default="path"
        The argument, for messages.
    allow_pickle : bool, default=False
        Let ``.npy``/``.npz`` files hold Python objects. Loading them can run
        code: only for files you trust.

    Returns
    -------
    array : numpy.ndarray

    Raises
    ------
    xmrank.InputError
        As :func:`read_arrays`; also when the file holds several arrays and
        no ``key`` names one, or none is called ``key``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from xmrank.io import read_array
    >>> folder = tempfile.mkdtemp()
    >>> np.savez(os.path.join(folder, "b.npz"), a=np.arange(3), b=np.ones(2))
    >>> read_array(os.path.join(folder, "b.npz"), "a")
    array([0, 1, 2])
    >>> read_array(os.path.join(folder, "b.npz"))
    Traceback (most recent call last):
    ...
    xmrank._validation.InputError: path: ... holds several arrays (a, b); name one with PATH.npz:KEY.
    """
    if key is None:
        path, key = split_key(path)
    path = os.fspath(path)
    check_exists(path, name)
    fmt = format_of(path, name)
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


# --- .npy / .npz -----------------------------------------------------------------------------

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


def _explain_npy_failure(path, name, exc):
    """One line for a file np.load refused: say what the file really holds when it is no .npy/.npz."""
    kind = sniff(path)
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
    return {"features": read_array(path, name=name)}


def _read_npz(path, name, keys):
    try:
        with np.load(path, allow_pickle=False) as npz:
            wanted = [k for k in npz.files if keys is None or k in keys]
            out = {}
            for k in wanted:
                try:
                    out[k] = npz[k]
                except ValueError as exc:  # an object array inside the archive
                    fail(f"{name}: cannot read array {k!r} of {path} ({first_line(exc)}).")
            return out
    except InputError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        fail(f"{name}: cannot read {path} as a .npz archive ({exc.__class__.__name__}: {exc}).")
    except ValueError as exc:
        _explain_npy_failure(path, name, exc)


# --- torch -------------------------------------------------------------------------------------

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
                 f"read ({first_line(exc)}).")
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
                stacked = torch.stack(list(value))
            except (RuntimeError, TypeError):
                fail(f"{name}: {where} is a list of tensors of different shapes.")
            return _to_numpy(stacked, where, name)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        fail(f"{name}: {where} is not an array (ragged lists?).")
    if arr.dtype == object:
        fail(f"{name}: {where} holds {type(value).__name__} values that are not numbers or strings.")
    return arr


def _read_torch(path, name, keys):
    torch = need("torch", path, name, os.path.splitext(path)[1] or ".pt")
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            fail(f"{name}: {path} holds Python objects that torch.load(weights_only=True) refuses to run; "
                 "save a tensor or a dict of tensors, arrays and lists.")
        fail(f"{name}: cannot read {path} as a torch file ({first_line(exc)}).")
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        fail(f"{name}: cannot read {path} as a torch file ({exc.__class__.__name__}: {first_line(exc)}).")
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


# --- CSV / TSV / text --------------------------------------------------------------------------

def _label_columns() -> str:
    return ", ".join(sorted({v[0] for v in BUNDLE_KEYS.values()} - {"features"}))


def _column(values):
    """A CSV column as int64, float64 or strings, whichever fits every value."""
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
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


def _pick(arrays, keys):
    return arrays if keys is None else {k: v for k, v in arrays.items() if k in keys}


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
            out[label] = _column(values)
        else:
            feature_cols.append((label, values))
    if len(feature_cols) == 1 and not out:
        label, values = feature_cols[0]
        out[label] = _column(values)
        return _pick(out, keys)
    if feature_cols:
        try:
            X = np.array([[float(v) if v.strip() else np.nan for v in values] for _, values in feature_cols],
                         dtype=np.float64).T
        except ValueError:
            bad = next(label for label, values in feature_cols if not all(_is_number(v) or not v.strip() for v in values))
            fail(f"{name}: {path} column {bad!r} holds values that are not numbers; name per-row label columns "
                 f"{_label_columns()}.")
        out["features"] = X
    return _pick(out, keys)


# --- HDF5 --------------------------------------------------------------------------------------

def _read_h5(path, name, keys):
    h5py = need("h5py", path, name, os.path.splitext(path)[1] or ".h5")
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
        fail(f"{name}: cannot read {path} as HDF5 ({first_line(exc)}).")
    if not out and keys is None:
        fail(f"{name}: {path} holds no dataset at its root.")
    return out


# --- Parquet -----------------------------------------------------------------------------------

def _read_parquet(path, name, keys):
    need("pyarrow", path, name, os.path.splitext(path)[1] or ".parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=list(keys) if keys is not None else None)
    except (pa.ArrowException, OSError, KeyError) as exc:
        if keys is not None and isinstance(exc, (KeyError, pa.ArrowInvalid)):
            return {}
        fail(f"{name}: cannot read {path} as Parquet ({first_line(exc)}).")
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
                     f"columns {_label_columns()}.")
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


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".pt": _read_torch, ".pth": _read_torch, ".csv": _read_csv,
            ".tsv": _read_csv, ".txt": _read_csv, ".h5": _read_h5, ".hdf5": _read_h5, ".hdf": _read_h5,
            ".parquet": _read_parquet, ".pq": _read_parquet}
