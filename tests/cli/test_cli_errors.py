"""Bad input to the CLI: one line on stderr naming the argument, non-zero exit, no traceback, no output file.

One test per case, for `xmrank diagnose` and `xmrank cluster`.
"""

import numpy as np
import pytest
from conftest import invoke, one_line_failure
from click.testing import CliRunner

from xmrank.cli.main import main
from xmrank.datasets import make_biased


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_errors")
    X, ids, mods, cams = make_biased(n_ids=10, per_id=5, gap=1.5, seed=0)
    arrays = {
        "feats": X,
        "mods": mods,
        "ids": ids,
        "nan": np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X).astype(np.float32),
        "flat": X[:, 0],
        "short_ids": ids[:-3],
        "wide_ids": np.stack([ids, ids], axis=1),
        "short_mods": mods[:-3],
        "one_mod": np.zeros_like(mods),
    }
    paths = {}
    for name, arr in arrays.items():
        paths[name] = tmp / f"{name}.npy"
        np.save(paths[name], arr)
    paths["junk"] = tmp / "junk.npy"
    paths["junk"].write_bytes(b"this is not an array file")
    np.savez(tmp / "full.npz", features=X, modalities=mods)
    raw = (tmp / "full.npz").read_bytes()
    paths["truncated"] = tmp / "truncated.npz"
    paths["truncated"].write_bytes(raw[: len(raw) // 2])
    paths["missing"] = tmp / "no_such_file.npy"
    return {k: str(v) for k, v in paths.items()}


def assert_clean_failure(tmp_path, args, *names):
    """Run, then check exit code, a single stderr line naming one of ``names``, no traceback, no outputs."""
    outputs = [tmp_path / name for name in ("out.npy", "out.json", "out.png")]
    line = one_line_failure(invoke([*args, *_output_options(args[0], outputs)]), *names)
    assert not any(p.exists() for p in outputs)
    return line


def _output_options(command, outputs):
    npy, js, png = map(str, outputs)
    return ["--json", js, "--plot", png] if command == "diagnose" else ["-o", npy, "--json", js]


# --- xmrank diagnose ------------------------------------------------------------

def diag(inputs, features="feats", **opts):
    args = ["diagnose", inputs[features]]
    opts = {"modalities": "mods", **opts}
    for key, value in opts.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag, inputs.get(value, value) if key in ("modalities", "labels", "cameras") else str(value)]
    return args


def test_diagnose_missing_features_file(inputs, tmp_path):
    msg = assert_clean_failure(tmp_path, diag(inputs, "missing"), "FEATURES")
    assert "not found" in msg


def test_diagnose_missing_modalities_file(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, modalities="missing"), "--modalities")


def test_diagnose_corrupt_features_file(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, "junk"), "FEATURES")


def test_diagnose_truncated_npz(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, "truncated"), "FEATURES")


def test_diagnose_nan_features(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, "nan"), "NaN")


def test_diagnose_1d_features(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, "flat"), "features must be a 2-D array")


def test_diagnose_labels_of_wrong_length(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, labels="short_ids"), "labels must have one label per row")


def test_diagnose_labels_of_wrong_shape(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, labels="wide_ids"), "labels must be a 1-D array")


def test_diagnose_modalities_of_wrong_length(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, modalities="short_mods"), "modalities must have one label per row")


def test_diagnose_single_modality(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, modalities="one_mod"), "single modality")


def test_diagnose_without_modalities(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, modalities=None), "--modalities is required")


def test_diagnose_k1_too_large(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, k1=500), "k1=500")


def test_diagnose_negative_eps(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, labels="ids", eps=-0.3), "--eps")


def test_diagnose_unknown_method(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, methods="fancy"), "'fancy': expected Jaccard methods")


def test_diagnose_unknown_noise_mode(inputs, tmp_path):
    assert_clean_failure(tmp_path, diag(inputs, noise="drop"), "'drop' is not one of 'singletons', 'cluster'")


def test_diagnose_unknown_plot_format(inputs, tmp_path):
    args = diag(inputs) + ["--plot", str(tmp_path / "fig.xyz")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "--plot" in res.stderr and not (tmp_path / "fig.xyz").exists()


def test_diagnose_output_folder_missing(inputs, tmp_path):
    args = diag(inputs) + ["--json", str(tmp_path / "nope" / "r.json")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "--json" in res.stderr


# --- xmrank cluster ---------------------------------------------------------------

def clus(inputs, features="feats", **opts):
    args = ["cluster", inputs[features]]
    opts = {"modalities": "mods", **opts}
    for key, value in opts.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag, inputs.get(value, value) if key in ("modalities", "cameras") else str(value)]
    return args


def test_cluster_missing_features_file(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, "missing"), "FEATURES")


def test_cluster_corrupt_features_file(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, "junk"), "FEATURES")


def test_cluster_truncated_npz(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, "truncated"), "FEATURES")


def test_cluster_nan_features(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, "nan"), "NaN")


def test_cluster_1d_features(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, "flat"), "features must be a 2-D array")


def test_cluster_modalities_of_wrong_length(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, modalities="short_mods"), "modalities must have one label per row")


def test_cluster_single_modality(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, modalities="one_mod", method="modality"), "single modality")


def test_cluster_k1_too_large(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, k1=500), "k1")


def test_cluster_negative_eps(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, eps=-0.3), "eps")


def test_cluster_unknown_method(inputs, tmp_path):
    assert_clean_failure(tmp_path, clus(inputs, method="fancy"), "method", "fancy")
