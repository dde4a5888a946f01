"""Hostile feature files through the command line: ``.pt`` labels mixing strings and numbers, a Parquet string
feature column (refused like a CSV one), sparse / quantised / float8 / complex tensors (converted or refused in one
line).
"""

import numpy as np
import pytest

from conftest import cli, one_line_failure, unit_rows


def test_pt_labels_mixing_strings_and_numbers_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    X, mods = unit_rows(20, 4, seed=0)
    torch.save({"features": torch.from_numpy(X), "modalities": ["a", 1] + [0] * 18}, tmp_path / "f.pt")
    res = cli("cluster", tmp_path / "f.pt", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy")
    one_line_failure(res, "mixes strings and other values")


def test_parquet_string_feature_column_is_refused_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X, mods = unit_rows(20, 2, seed=0)
    pq.write_table(pa.table({"x1": X[:, 0], "x2": X[:, 1], "x3": [str(v) for v in range(20)]}), tmp_path / "f.parquet")
    res = cli("cluster", tmp_path / "f.parquet", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy")
    one_line_failure(res, "column 'x3' holds values that are not numbers")
    with open(tmp_path / "f.csv", "w") as fh:
        fh.write("x1,x2,x3\n" + "".join(f"{a},{b},{i}x\n" for i, (a, b) in enumerate(X)))
    one_line_failure(cli("cluster", tmp_path / "f.csv", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy"),
                     "column 'x3' holds values that are not numbers")


@pytest.mark.parametrize("kind", ["sparse", "qint8", "float8", "complex"])
def test_unusual_tensors_in_pt_feature_files(tmp_path, kind):
    torch = pytest.importorskip("torch")
    X, mods = unit_rows(20, 4, seed=0)
    t = torch.from_numpy(X)
    with np.errstate(all="ignore"):
        t = {"sparse": lambda: t.to_sparse(), "qint8": lambda: torch.quantize_per_tensor(t, 0.01, 0, torch.qint8),
             "float8": lambda: t.to(torch.float8_e4m3fn), "complex": lambda: t.to(torch.complex64)}[kind]()
    torch.save({"features": t, "modalities": torch.from_numpy(mods)}, tmp_path / "f.pt")
    res = cli("cluster", tmp_path / "f.pt", "--k1", "5", "--k2", "2", "-o", tmp_path / "o.npy")
    if kind in ("qint8", "float8"):  # converted (dequantised / widened to float32), as documented
        assert res.exit_code == 0, res.output
        assert (tmp_path / "o.npy").exists()
    else:
        one_line_failure(res, {"sparse": "sparse) tensor; store it dense", "complex": "must be real-valued"}[kind])
