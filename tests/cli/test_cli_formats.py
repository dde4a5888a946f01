"""Input formats of the CLI (one reader, cli/_io.py): .npy, .npz, .pt, .csv/.tsv, .h5, .parquet, and clear refusals."""

import builtins
import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

import xmrank
from conftest import one_line_failure
from xmrank.cli.main import main
from xmrank.datasets import make_biased


@pytest.fixture(scope="module")
def data():
    X, ids, mods, cams = make_biased(n_ids=12, per_id=5, gap=1.5, seed=5)
    return X, ids, mods, cams, xmrank.cluster(X, modalities=mods, k1=20, k2=4)


def labels_of(tmp_path, features, *extra, command="cluster"):
    out = tmp_path / "l.npy"
    res = CliRunner().invoke(main, [command, str(features), "--k1", "20", "--k2", "4", "-o", str(out), *map(str, extra)])
    assert res.exit_code == 0, res.output
    return np.load(out)


def write_csv(path, X, mods=None, ids=None, *, sep=",", header=True):
    cols = ([("modality", mods)] if mods is not None else []) + ([("id", ids)] if ids is not None else [])
    with open(path, "w") as fh:
        if header:
            fh.write(sep.join([c for c, _ in cols] + [f"f{j}" for j in range(X.shape[1])]) + "\n")
        for i, row in enumerate(X):
            fh.write(sep.join([str(v[i]) for _, v in cols] + [repr(float(x)) for x in row]) + "\n")


def test_csv_with_a_header_carries_the_label_columns(tmp_path, data):
    X, ids, mods, cams, expected = data
    write_csv(tmp_path / "f.csv", X, mods, ids)
    assert np.array_equal(labels_of(tmp_path, tmp_path / "f.csv"), expected)
    write_csv(tmp_path / "f.tsv", X, mods, sep="\t")
    assert np.array_equal(labels_of(tmp_path, tmp_path / "f.tsv"), expected)


def test_headerless_csv_features_and_label_files(tmp_path, data):
    X, ids, mods, cams, expected = data
    write_csv(tmp_path / "f.csv", X, header=False)
    np.savetxt(tmp_path / "m.csv", mods, fmt="%d")
    assert np.array_equal(labels_of(tmp_path, tmp_path / "f.csv", "-m", tmp_path / "m.csv"), expected)


def test_torch_tensors_and_dicts(tmp_path, data):
    torch = pytest.importorskip("torch")
    X, ids, mods, cams, expected = data
    torch.save(torch.from_numpy(X).to(torch.bfloat16), tmp_path / "bf16.pt")  # bfloat16 is widened, not refused
    torch.save(torch.from_numpy(mods), tmp_path / "m.pt")
    assert labels_of(tmp_path, tmp_path / "bf16.pt", "-m", tmp_path / "m.pt").shape == (len(X),)
    torch.save({"features": torch.from_numpy(X), "modalities": torch.from_numpy(mods), "cams": cams.tolist(),
                "paths": [f"p{i}" for i in range(len(X))]}, tmp_path / "d.pth")
    assert np.array_equal(labels_of(tmp_path, tmp_path / "d.pth"), expected)


class Payload:
    """A Python object: torch.load(weights_only=True) must refuse to rebuild it."""


def test_torch_files_run_no_code(tmp_path, data):
    torch = pytest.importorskip("torch")
    torch.save({"features": Payload()}, tmp_path / "evil.pt")
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "evil.pt")])
    one_line_failure(res, "FEATURES", "weights_only=True", "refuses", every=True)


def test_hdf5(tmp_path, data):
    h5py = pytest.importorskip("h5py")
    X, ids, mods, cams, expected = data
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh["features"] = X
        fh["modalities"] = mods
        fh["paths"] = np.array([f"p{i}" for i in range(len(X))], dtype="S")
    assert np.array_equal(labels_of(tmp_path, tmp_path / "f.h5"), expected)
    with h5py.File(tmp_path / "only.hdf5", "w") as fh:
        fh["emb"] = X
    assert np.array_equal(labels_of(tmp_path, tmp_path / "only.hdf5", "-m", f"{tmp_path / 'f.h5'}:modalities"),
                          expected)


@pytest.mark.slow
def test_parquet_list_column_and_wide_table(tmp_path, data):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X, ids, mods, cams, expected = data
    pq.write_table(pa.table({"embedding": list(X), "modality": mods, "path": [f"p{i}" for i in range(len(X))]}),
                   tmp_path / "long.parquet")
    assert np.array_equal(labels_of(tmp_path, tmp_path / "long.parquet"), expected)
    wide = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    pq.write_table(pa.table({"modality": mods, **wide}), tmp_path / "wide.parquet")
    assert np.array_equal(labels_of(tmp_path, tmp_path / "wide.parquet"), expected)


def test_diagnose_reads_the_same_formats(tmp_path, data):
    X, ids, mods, cams, expected = data
    write_csv(tmp_path / "f.csv", X, mods, ids)
    res = CliRunner().invoke(main, ["diagnose", str(tmp_path / "f.csv"), "--k1", "20", "--k2", "4", "--methods",
                                    "modality", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["clustering"]["modality"]["ari"] > 0.5


@pytest.mark.parametrize("module,suffix", [("h5py", ".h5"), ("pyarrow", ".parquet"), ("torch", ".pt")])
def test_a_missing_package_is_named_in_one_line(tmp_path, monkeypatch, module, suffix):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" if suffix == ".h5" else b"PAR1" if suffix == ".parquet" else b"PK\x03\x04")
    real_import = builtins.__import__

    def no_module(name, *args, **kwargs):
        if name.split(".")[0] == module:
            raise ImportError(f"No module named {module!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_module)
    out = tmp_path / "l.npy"
    res = CliRunner().invoke(main, ["cluster", str(path), "-o", str(out)])
    line = one_line_failure(res, "FEATURES", f"needs the {module} package", "pip install", every=True)
    assert not out.exists()
    if module != "torch":
        assert "xmrank[io]" in line


def test_formats_it_cannot_read_are_named_correctly(tmp_path, data):
    X = data[0]
    write_csv(tmp_path / "table.npy", X)  # a CSV under a .npy name
    line = one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp_path / "table.npy")]), "FEATURES")
    assert "text (a CSV? name it .csv)" in line and "pickled" not in line
    write_csv(tmp_path / "table.dat", X)
    line = one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp_path / "table.dat")]), "FEATURES")
    assert "'.dat'" in line and ".csv" in line and ".parquet" in line
    with open(tmp_path / "objects.npy", "wb") as fh:
        pickle.dump({"a": 1}, fh)
    line = one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp_path / "objects.npy")]), "FEATURES")
    assert "pickled Python objects" in line
    (tmp_path / "words.csv").write_text("a,b\nx,y\n")
    one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp_path / "words.csv")]), "FEATURES", "not numbers",
                     every=True)
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp_path / "ragged.csv")]), "FEATURES", "line 2",
                     every=True)
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)))
    one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp_path / "bin.csv")]), "FEATURES", "not UTF-8",
                     every=True)


def test_a_named_key_of_any_format(tmp_path, data):
    X, ids, mods, cams, expected = data
    np.savez(tmp_path / "b.npz", emb=X, other=X[:, :3])
    assert np.array_equal(labels_of(tmp_path, f"{tmp_path / 'b.npz'}:emb", "-m", tmp_path / "m.npy")
                          if np.save(tmp_path / "m.npy", mods) is None else None, expected)
    res = CliRunner().invoke(main, ["cluster", f"{tmp_path / 'b.npz'}:nothing"])
    one_line_failure(res, "FEATURES", "no array 'nothing'", every=True)
