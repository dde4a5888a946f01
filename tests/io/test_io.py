"""xmrank.io, the Python API of the readers and writers the command line uses: every format read back as
written, wrong keys and shapes, a missing optional package, hostile files (each either read or refused with one
InputError line naming the argument), output checks and atomic writes."""

import builtins
import json
import os
import pickle
import warnings
from functools import partial

import numpy as np
import pytest

import xmrank
from conftest import one_line
from xmrank import InputError
from xmrank import io as xio

N, D = 12, 4


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return {"features": rng.normal(size=(N, D)).astype(np.float32), "modalities": np.tile([0, 1], N // 2),
            "ids": np.repeat(np.arange(N // 2), 2), "names": np.array([f"img{i}.jpg" for i in range(N)])}


#: The InputError message (see conftest): one line holding ``words``, beginning with the argument's name -- a
#: reader's ``path`` unless a test names another.
one_line = partial(one_line, name="path")


# --- every format: written, read back -----------------------------------------------------------------

def _write_csv(path, arrays, sep=","):
    X = arrays["features"]
    with open(path, "w") as fh:
        fh.write(sep.join(["modality", "id", "path"] + [f"f{j}" for j in range(X.shape[1])]) + "\n")
        for i, row in enumerate(X):
            fh.write(sep.join([str(arrays["modalities"][i]), str(arrays["ids"][i]), arrays["names"][i]]
                              + [repr(float(x)) for x in row]) + "\n")


def _write(fmt, path, arrays):
    if fmt == ".npz":
        xio.write_arrays(path, arrays)
    elif fmt == ".pt":
        torch = pytest.importorskip("torch")
        torch.save({"features": torch.from_numpy(arrays["features"]), "modalities": torch.from_numpy(
            arrays["modalities"]), "ids": arrays["ids"].tolist(), "names": arrays["names"].tolist()}, path)
    elif fmt in (".csv", ".tsv"):
        _write_csv(path, arrays, sep="\t" if fmt == ".tsv" else ",")
    elif fmt == ".h5":
        h5py = pytest.importorskip("h5py")
        with h5py.File(path, "w") as fh:
            for k, v in arrays.items():
                fh[k] = v.astype("S") if v.dtype.kind == "U" else v
    elif fmt == ".parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"features": list(arrays["features"]), "modality": arrays["modalities"],
                                 "id": arrays["ids"], "path": arrays["names"]}), path)


@pytest.mark.parametrize("fmt", [".npz", ".pt", ".csv", ".tsv", ".h5", ".parquet"])
def test_every_format_round_trips_as_a_bundle(tmp_path, arrays, fmt):
    path = tmp_path / f"bundle{fmt}"
    _write(fmt, path, arrays)
    bundle = xio.read_bundle(path)
    assert sorted(bundle) == ["features", "ids", "modalities", "names"]
    np.testing.assert_allclose(bundle["features"], arrays["features"], rtol=1e-6)
    assert bundle["features"].shape == (N, D)
    np.testing.assert_array_equal(bundle["modalities"], arrays["modalities"])
    np.testing.assert_array_equal(bundle["ids"], arrays["ids"])
    assert list(bundle["names"]) == list(arrays["names"])
    np.testing.assert_allclose(xio.read_features(path), arrays["features"], rtol=1e-6)
    # the same through the top-level lazy name
    assert xmrank.io.read_features is xio.read_features


def test_npy_round_trip_and_exact_path(tmp_path, arrays):
    path = tmp_path / "labels"  # no .npy appended: exactly the path given
    xio.write_array(path, arrays["ids"])
    assert os.listdir(tmp_path) == ["labels"]
    np.testing.assert_array_equal(xio.read_array(path), arrays["ids"])
    xio.write_array(tmp_path / "f.npy", arrays["features"])
    assert xio.read_arrays(tmp_path / "f.npy").keys() == {"features"}
    np.testing.assert_array_equal(xio.read_features(str(tmp_path / "f.npy")), arrays["features"])


def test_headerless_text_and_a_single_column(tmp_path, arrays):
    np.savetxt(tmp_path / "x.txt", arrays["features"])
    np.testing.assert_allclose(xio.read_features(tmp_path / "x.txt"), arrays["features"], rtol=1e-6)
    np.savetxt(tmp_path / "m.csv", arrays["modalities"], fmt="%d")
    m = xio.read_array(tmp_path / "m.csv")
    assert m.dtype == np.int64 and np.array_equal(m, arrays["modalities"])


def test_keys_select_arrays(tmp_path, arrays):
    path = tmp_path / "b.npz"
    xio.write_arrays(path, arrays, compressed=True)
    assert set(xio.read_arrays(path, keys=["ids", "names"])) == {"ids", "names"}
    assert set(xio.read_arrays(path, keys="ids")) == {"ids"}
    np.testing.assert_array_equal(xio.read_array(path, "ids"), arrays["ids"])
    np.testing.assert_array_equal(xio.read_array(f"{path}:ids"), arrays["ids"])
    np.testing.assert_array_equal(xio.read_features(path, key="features"), arrays["features"])
    np.testing.assert_array_equal(xio.read_features(f"{path}:features"), arrays["features"])


# --- wrong keys, wrong shapes ---------------------------------------------------------------------------

def test_wrong_key(tmp_path, arrays):
    path = tmp_path / "b.npz"
    xio.write_arrays(path, arrays)
    with pytest.raises(InputError) as exc:
        xio.read_array(path, "labels")
    one_line(exc, str(path), "no array 'labels'", "features, modalities")
    with pytest.raises(InputError) as exc:
        xio.read_arrays(f"{path}:nothing", name="gallery")
    one_line(exc, "no array 'nothing'", name="gallery")
    with pytest.raises(InputError) as exc:
        xio.read_features(path, key="nothing")
    one_line(exc, "no array 'nothing'")
    with pytest.raises(InputError) as exc:
        xio.read_array(path)
    one_line(exc, "holds several arrays", "PATH.npz:KEY")
    xio.write_array(tmp_path / "one.npy", arrays["ids"])
    with pytest.raises(InputError) as exc:
        xio.read_array(tmp_path / "one.npy", "x")
    one_line(exc, "is a .npy array", "drop ':x'")


def test_no_feature_array(tmp_path, arrays):
    path = tmp_path / "labels.npz"
    xio.write_arrays(path, {"ids": arrays["ids"], "modalities": arrays["modalities"]})
    with pytest.raises(InputError) as exc:
        xio.read_features(path, name="query")
    one_line(exc, "has no array named features or X", "it holds ids, modalities", name="query")
    assert set(xio.read_bundle(path, require_features=False)) == {"ids", "modalities"}


def test_wrong_shape(tmp_path, arrays):
    xio.write_array(tmp_path / "flat.npy", arrays["ids"])
    with pytest.raises(InputError) as exc:
        xio.read_features(tmp_path / "flat.npy", name="FEATURES")
    one_line(exc, f"shape ({N},)", "expected 2 dimensions", name="FEATURES")
    xio.write_array(tmp_path / "cube.npy", arrays["features"][:, :, None])
    with pytest.raises(InputError) as exc:
        xio.read_features(tmp_path / "cube.npy")
    one_line(exc, f"shape ({N}, {D}, 1)")
    assert xio.read_features(tmp_path / "cube.npy", ndim=None).ndim == 3
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    with pytest.raises(InputError) as exc:
        xio.read_features(tmp_path / "ragged.csv")
    one_line(exc, "line 2 has 2 fields where line 1 has 3")


# --- a missing optional package ----------------------------------------------------------------------------

@pytest.mark.parametrize("module,suffix,magic", [("h5py", ".h5", b"\x89HDF\r\n\x1a\n"), ("pyarrow", ".parquet", b"PAR1"),
                                                 ("torch", ".pt", b"PK\x03\x04")])
def test_a_missing_package_is_named(tmp_path, monkeypatch, module, suffix, magic):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(magic)
    real_import = builtins.__import__

    def no_module(name, *args, **kwargs):
        if name.split(".")[0] == module:
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_module)
    with pytest.raises(InputError) as exc:
        xio.read_features(path)
    msg = one_line(exc, str(path), f"needs the {module} package", "pip install", ".npy/.npz")
    assert ("xmrank[io]" in msg) == (module != "torch")


# --- hostile files ------------------------------------------------------------------------------------------

def _hostile_files(d, arrays):
    """name -> path of files no reader should fail on with anything but one InputError line."""
    X = arrays["features"]
    files = {}

    def put(name, data):
        files[name] = d / name
        (d / name).write_bytes(data) if isinstance(data, bytes) else (d / name).write_text(data)

    put("empty.npy", b"")
    put("junk.npy", b"\x93NUMPY garbage")
    put("text.npy", "1,2,3\n")
    put("pickle.npy", pickle.dumps({"a": 1}))
    put("pickle.pt", pickle.dumps({"a": 1}))
    put("zip.npy", b"PK\x03\x04" + b"\x00" * 40)
    put("zip.npz", b"PK\x03\x04" + b"\x00" * 40)
    put("empty.csv", "")
    put("header_only.csv", "a,b\n")
    put("words.csv", "a,b\nx,y\n")
    put("bin.csv", bytes(range(256)))
    put("text_feature.csv", "id,f0,f1\n1,0.5,abc\n")
    put("empty.h5", b"")
    put("junk.h5", b"\x89HDF\r\n\x1a\n" + b"\xff" * 64)
    put("junk.parquet", b"PAR1" + b"\x00" * 32 + b"PAR1")
    put("junk.pt", b"PK\x03\x04" + b"\xff" * 64)
    put("junk.dat", bytes(range(256)) * 4)
    put("table.dat", "1,2\n3,4\n")
    # a header promising terabytes, in a file of a few bytes
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float64))
    header["shape"] = (10**12,)
    with open(d / "huge.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
    files["huge.npy"] = d / "huge.npy"
    objects = np.empty(2, dtype=object)
    objects[:] = [{"a": 1}, None]
    np.save(d / "objects.npy", objects, allow_pickle=True)
    files["objects.npy"] = d / "objects.npy"
    np.savez(d / "objects.npz", features=X, bad=objects)
    files["objects.npz"] = d / "objects.npz"
    # every valid file cut short at a few lengths
    for fmt in (".npy", ".npz", ".csv", ".h5", ".parquet", ".pt"):
        whole = d / f"whole{fmt}"
        if fmt == ".npy":
            np.save(whole, X)
        else:
            try:
                _write(fmt, whole, arrays)
            except pytest.skip.Exception:
                continue
        data = whole.read_bytes()
        for cut in (1, 9, len(data) // 2, len(data) - 1):
            put(f"cut{cut}_{fmt[1:]}{fmt}", data[:cut])
    rng = np.random.default_rng(1)
    for fmt in (".npy", ".npz", ".pt", ".csv", ".h5", ".parquet", ".bin"):
        put(f"random{fmt}", rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    return files


def _torch_hostile(d):
    torch = pytest.importorskip("torch")
    X = torch.randn(N, D)
    m = torch.tensor([0, 1] * (N // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantised tensors are deprecated in torch
        cases = {
            "sparse": {"features": X.to_sparse(), "modalities": m},
            "qint8": {"features": torch.quantize_per_tensor(X, 0.01, 0, torch.qint8)},
            "float8": {"features": X.to(torch.float8_e4m3fn)},
            "bfloat16": {"features": X.to(torch.bfloat16)},
            "mixed": {"features": X, "modalities": ["a", 1] * (N // 2)},
            "ragged": {"features": [X[0], X[1, :3]]},
            "nested": {"state": {"w": X}},
            "scalar": torch.tensor(3.0),
            "meta": {"features": torch.empty(N, D, device="meta")},
            "object": {"features": X, "extra": [object]},
        }
    out = {}
    for name, obj in cases.items():
        try:
            torch.save(obj, d / f"{name}.pt")
        except Exception:  # noqa: BLE001 - torch refuses to save it: nothing to read
            continue
        out[f"{name}.pt"] = d / f"{name}.pt"
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, arrays):
    d = tmp_path_factory.mktemp("hostile")
    files = _hostile_files(d, arrays)
    try:
        files |= _torch_hostile(d)
    except pytest.skip.Exception:
        pass
    files["missing.npy"] = d / "no_such_file.npy"
    files["folder"] = d
    return files


_READS = {
    "read_arrays": lambda p: xio.read_arrays(p, name="FEATURES"),
    "read_array": lambda p: xio.read_array(p, name="FEATURES"),
    "read_bundle": lambda p: xio.read_bundle(p, name="FEATURES"),
    "read_features": lambda p: xio.read_features(p, name="FEATURES", ndim=None),
}


@pytest.mark.parametrize("reader", sorted(_READS))
def test_hostile_files_are_read_or_refused_in_one_line(hostile, reader):
    """Whatever the file: arrays of numbers or strings, or one InputError line naming the argument and the file;
    never another exception, never a Python object."""
    refused = []
    for name, path in sorted(hostile.items()):
        try:
            out = _READS[reader](path)
        except InputError as exc:
            msg = str(exc)
            assert "\n" not in msg and msg.startswith("FEATURES: "), (name, msg)
            assert str(path) in msg or os.path.basename(str(path)) in msg, (name, msg)
            refused.append(name)
            continue
        for value in (out.values() if isinstance(out, dict) else [out]):
            assert isinstance(value, np.ndarray) and not value.dtype.hasobject, (name, value)
    # the plainly broken ones are always refused
    for name in ("empty.npy", "junk.npy", "text.npy", "pickle.npy", "huge.npy", "objects.npy", "empty.csv",
                 "bin.csv", "junk.dat", "missing.npy", "folder"):
        assert name in refused, name


def test_hostile_messages_say_what_the_file_is(hostile):
    with pytest.raises(InputError) as exc:
        xio.read_features(hostile["text.npy"])
    one_line(exc, "text (a CSV? name it .csv)")
    with pytest.raises(InputError) as exc:
        xio.read_features(hostile["huge.npy"])
    one_line(exc, "is cut short", "(1000000000000,)")
    with pytest.raises(InputError) as exc:
        xio.read_features(hostile["pickle.npy"])
    one_line(exc, "pickled Python objects")
    with pytest.raises(InputError) as exc:
        xio.read_features(hostile["junk.dat"])
    one_line(exc, "'.dat'", "xmrank reads .npy")
    with pytest.raises(InputError) as exc:
        xio.read_features(hostile["missing.npy"])
    one_line(exc, "file not found")
    with pytest.raises(InputError) as exc:
        xio.read_features(hostile["folder"])
    one_line(exc, "is a folder")
    with pytest.raises(InputError) as exc:
        xio.read_bundle(hostile["objects.npz"])
    one_line(exc, "cannot read array 'bad'")
    if "mixed.pt" in hostile:
        with pytest.raises(InputError) as exc:
            xio.read_bundle(hostile["mixed.pt"])
        one_line(exc, "mixes strings and other values")
        with pytest.raises(InputError) as exc:
            xio.read_bundle(hostile["sparse.pt"])
        one_line(exc, "sparse")
        assert xio.read_features(hostile["bfloat16.pt"]).dtype == np.float32


def test_torch_files_run_no_code(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "evil.pt"
    from fractions import Fraction

    torch.save({"features": torch.zeros(2, 2), "hook": Fraction(1, 3)}, path)
    with pytest.raises(InputError) as exc:
        xio.read_features(path)
    one_line(exc, "weights_only=True")


# --- outputs: checks and atomic writes ------------------------------------------------------------------

def test_check_output_refusals(tmp_path, arrays):
    xio.write_array(tmp_path / "in.npy", arrays["features"])
    xio.check_output(tmp_path / "new.npy")
    xio.check_output(None)
    xio.check_output(os.devnull, "out")
    cases = [
        ((tmp_path,), "is a folder"),
        ((tmp_path / "nowhere" / "x.npy",), "does not exist"),
        (("",), "the file name is empty"),
        ((tmp_path / "x.json",), "must end with .npz", {"suffix": ".npz"}),
        ((tmp_path / "in.npy",), "is the input file of FEATURES", {"inputs": [("FEATURES", tmp_path / "in.npy")]}),
        ((tmp_path / "in.npy",), "is the input file of FEATURES",
         {"inputs": [("FEATURES", f"{tmp_path / 'in.npy'}:features"), ("--labels", 3)]}),
        ((tmp_path / "data" / "x.npy",), "inside the data set root of --root", {"roots": [("--root", tmp_path)]}),
    ]
    for args, words, *kw in cases:
        with pytest.raises(InputError) as exc:
            xio.check_output(*args, "out", **(kw[0] if kw else {}))
        one_line(exc, words, name="out")
    with pytest.raises(InputError) as exc:
        xio.check_npy_output(tmp_path / "x.npz", "labels")
    one_line(exc, "give a .npy file name", name="labels")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_check_output_refuses_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError) as exc:
        xio.check_output(tmp_path / "pipe", "out")
    assert "or - for standard output" not in one_line(exc, "not a regular file", name="out")
    with pytest.raises(InputError) as exc:
        xio.check_output(tmp_path / "pipe", "--json", stdout_ok=True)
    one_line(exc, "or - for standard output", name="--json")


def test_check_outputs_same_file_and_stdout(tmp_path):
    a = tmp_path / "a.npy"
    with pytest.raises(InputError) as exc:
        xio.check_outputs([("labels", a), ("copy", tmp_path / "." / "a.npy")])
    one_line(exc, "name the same file", name="labels and copy")
    with pytest.raises(InputError) as exc:
        xio.check_outputs([("--json", "-"), ("--contents", "-")], stdout=("--json", "--contents"))
    one_line(exc, "both name standard output", name="--json and --contents")
    xio.check_outputs([("--json", "-"), ("labels", a)], stdout=("--json",))


def test_writers_round_trip_and_leave_no_temporary_file(tmp_path, arrays):
    sp = pytest.importorskip("scipy.sparse")
    xio.write_json(tmp_path / "s.json", {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(2), "nan": np.nan})
    back = json.loads((tmp_path / "s.json").read_text())
    assert (back["n"], back["x"], back["a"]) == (3, 0.5, [0, 1])
    xio.write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    M = sp.random(5, 5, density=0.3, random_state=0, format="coo")
    xio.write_sparse(tmp_path / "d.npz", M)
    assert (sp.load_npz(tmp_path / "d.npz") != M.tocsr()).nnz == 0
    with pytest.raises(ValueError, match="Python objects"):
        xio.write_arrays(tmp_path / "o.npz", {"o": np.array([{}, None], dtype=object)})
    assert sorted(os.listdir(tmp_path)) == ["d.npz", "s.json", "t.txt"]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "labels.npy"
    xio.write_array(path, np.arange(3))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        xio.write_array(path, np.arange(5))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert os.listdir(tmp_path) == ["labels.npy"]


def test_committed_writes_all_or_none(tmp_path):
    with pytest.raises(RuntimeError):
        with xio.committed():
            xio.write_array(tmp_path / "a.npy", np.arange(3))
            xio.write_json(tmp_path / "b.json", {"a": 1})
            raise RuntimeError("the work failed after the first writes")
    assert os.listdir(tmp_path) == []
    with xio.committed():
        xio.write_array(tmp_path / "a.npy", np.arange(3))
        assert not (tmp_path / "a.npy").exists()  # renamed at the end of the block
        xio.write_json(tmp_path / "b.json", {"a": 1})
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.json"]


def test_import_xmrank_io_stays_light():
    import subprocess
    import sys

    code = ("import sys, xmrank\nassert 'xmrank.io' not in sys.modules\nxmrank.io.read_features\n"
            "print(','.join(m for m in ('scipy', 'torch', 'h5py', 'pyarrow', 'click', 'sklearn') if sys.modules.get(m) is not None))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", res.stdout


def test_xmrank_io_does_not_import_the_cli():
    import ast
    import pathlib

    for path in pathlib.Path(xio.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any("cli" in n.split(".") or n == "click" for n in names), (path, names)
