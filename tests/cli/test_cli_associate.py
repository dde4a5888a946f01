"""`xmrank cluster --mode associate --association ...` and `--refine`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import xmrank
from xmrank.cli.main import main
from xmrank.datasets import make_biased


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assoc")
    X, ids, mods, cams = make_biased(n_ids=40, per_id=8, gap=1.5, seed=0)
    np.savez(tmp / "data.npz", features=X, modalities=mods, cameras=cams)
    np.save(tmp / "ids.npy", ids)
    np.save(tmp / "one_mod.npy", np.zeros_like(mods))
    return tmp, X, ids, mods


def _run(*args):
    return CliRunner().invoke(main, ["cluster", *map(str, args)])


@pytest.mark.parametrize("association", ["hungarian", "ot", "ot-instance"])
def test_associate_writes_the_library_labels(files, association):
    tmp, X, ids, mods = files
    out, js = tmp / f"{association}.npy", tmp / f"{association}.json"
    res = _run(tmp / "data.npz", "--mode", "associate", "--association", association, "--labels", tmp / "ids.npy",
               "-o", out, "--json", js)
    assert res.exit_code == 0, res.output
    expected = xmrank.associate(X, mods, method=association, progress=False)
    assert np.array_equal(np.load(out), expected)
    summary = json.loads(js.read_text())
    assert summary["parameters"]["mode"] == "associate" and summary["parameters"]["association"] == association
    assert summary["association"]["method"] == association
    assert summary["scores"]["cross_modal_pair_recall"] > 0.5  # per-modality alone: 0
    assert association in res.output and ("matches" in res.output or "rows assigned" in res.output)


def test_associate_defaults_to_hungarian(files):
    tmp, X, ids, mods = files
    res = _run(tmp / "data.npz", "--mode", "associate", "-o", tmp / "default.npy")
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.load(tmp / "default.npy"), xmrank.associate(X, mods, progress=False))
    assert "hungarian" in res.output


@pytest.mark.parametrize("mode", ["global", "associate"])
def test_refine_writes_the_library_labels(files, mode):
    tmp, X, ids, mods = files
    out, js = tmp / f"refined_{mode}.npy", tmp / f"refined_{mode}.json"
    res = _run(tmp / "data.npz", "--mode", mode, "--refine", "--eps", "0.5", "--eps-gap", "0.05", "-o", out,
               "--json", js)
    assert res.exit_code == 0, res.output
    if mode == "global":
        expected = xmrank.cluster_refined(X, modalities=mods, eps=0.5, eps_gap=0.05, progress=False)
    else:
        expected = xmrank.associate(X, mods, eps=0.5, refine=True, eps_gap=0.05, progress=False)
    assert np.array_equal(np.load(out), expected)
    summary = json.loads(js.read_text())
    assert summary["parameters"]["refine"] is True and summary["parameters"]["eps_gap"] == 0.05
    assert summary["parameters"]["eps"] == 0.5
    assert {"n_dropped_clusters", "n_dropped_rows"} <= set(summary["refine"])
    assert "refinement dropped" in res.output


def test_refine_with_auto_eps_reports_the_radius(files):
    tmp, X, ids, mods = files
    res = _run(tmp / "data.npz", "--mode", "associate", "--refine", "--eps", "auto", "--json", "-")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert set(summary["parameters"]["eps"]) == {"0", "1"}  # the eps chosen per modality


@pytest.mark.parametrize("args, message", [
    (["--mode", "associate", "--modalities", "{tmp}/one_mod.npy"], "at least two modalities"),
    (["--association", "ot"], "--association is only used with --mode associate"),
    (["--mode", "subset", "--refine"], "--refine needs --mode global or associate"),
    (["--refine", "--algorithm", "hdbscan"], "--refine needs --algorithm dbscan"),
    (["--refine", "--save-distance", "{tmp}/D.npz"], "--save-distance cannot be combined with --refine"),
    (["--refine", "--eps", "0.3", "--eps-gap", "0.3"], "eps_gap=0.3 must be smaller than eps"),
    (["--refine", "--eps-gap", "-1"], "eps_gap must be > 0"),
    (["--mode", "associate", "--association", "kmeans"], "Invalid value for '--association'"),
    (["--mode", "associate", "--save-distance", "{tmp}/D.npz"], "--save-distance needs --mode global"),
])
def test_bad_input_is_one_line_and_writes_nothing(files, args, message):
    tmp = files[0]
    out = tmp / "never.npy"
    args = [a.format(tmp=tmp) for a in args]
    res = _run(tmp / "data.npz", *args, "-o", out)
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert "Traceback" not in res.output
    assert not out.exists() and not (tmp / "D.npz").exists()


def test_associate_needs_modalities(files):
    tmp, X, ids, mods = files
    np.save(tmp / "feats.npy", X)
    res = _run(tmp / "feats.npy", "--mode", "associate", "-o", tmp / "never.npy")
    assert res.exit_code == 1 and "--mode associate needs --modalities" in res.output
    assert not (tmp / "never.npy").exists()


def test_help_lists_the_options():
    res = CliRunner().invoke(main, ["cluster", "--help"])
    assert res.exit_code == 0
    for word in ("associate", "--association", "hungarian", "ot-instance", "--refine", "--eps-gap"):
        assert word in res.output
