"""`xmrank diagnose` on real files: text summary, JSON report, PNG figure."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from xmrank.cli.main import main
from xmrank.datasets import make_biased
from xmrank.diagnostics import diagnose


@pytest.fixture()
def files(tmp_path):
    X, ids, mods, cams = make_biased(n_ids=20, per_id=6, gap=1.5, seed=2)
    paths = {name: tmp_path / f"{name}.npy" for name in ("feats", "mods", "ids", "cams")}
    for name, arr in zip(paths, (X, mods, ids, cams)):
        np.save(paths[name], arr)
    np.savez(tmp_path / "bundle.npz", features=X, modalities=mods, ids=ids, cameras=cams)
    return tmp_path, paths, (X, ids, mods, cams)


def _run(args):
    res = CliRunner().invoke(main, ["diagnose", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res


def test_diagnose_json_matches_the_library(files):
    tmp, p, (X, ids, mods, cams) = files
    out = tmp / "report.json"
    res = _run([p["feats"], "--modalities", p["mods"], "--labels", p["ids"], "--k1", 20, "--k2", 4, "--json", out])
    report = json.loads(out.read_text())
    assert report == json.loads(json.dumps(diagnose(X, mods, labels=ids, k1=20, k2=4)))
    assert report["clustering"]["modality"]["cross_modal_pair_recall"] > 0.9
    assert report["clustering"]["vanilla"]["cross_modal_pair_recall"] == 0.0
    # the printed summary carries the same numbers
    assert "neighbour make-up" in res.output and "xm recall" in res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("modality ")][-1]  # clustering table
    assert f"{report['clustering']['modality']['ari']:.3f}" in line


@pytest.mark.slow
def test_diagnose_plot_and_bundle(files):
    tmp, p, (X, ids, mods, cams) = files
    png = tmp / "bias.png"
    res = _run([tmp / "bundle.npz", "--k1", 20, "--plot", png, "--methods", "vanilla,modality,camera", "--eps", "auto", "--noise", "cluster"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "camera" in res.output and "noise scored as cluster" in res.output
    assert "modality-qe" not in res.output


def test_diagnose_options_override_the_bundle(files):
    tmp, p, (X, ids, mods, cams) = files
    other = np.where(ids % 2 == 0, mods, 1 - mods)  # a different modality split
    np.save(tmp / "other.npy", other)
    out = tmp / "r.json"
    _run([tmp / "bundle.npz", "--modalities", tmp / "other.npy", "--k1", 20, "--methods", "vanilla", "--json", out])
    report = json.loads(out.read_text())
    assert report["neighbor_makeup"]["knn"]["cross_modal_share_mean"] > 0.2


def test_diagnose_help_documents_every_option():
    res = CliRunner().invoke(main, ["diagnose", "--help"])
    assert res.exit_code == 0
    for opt in ("--modalities", "--ids", "--cameras", "--plot", "--json", "--methods", "--k1", "--k2", "--eps",
                "--min-samples", "--noise", "--bins", "--max-pairs", "--progress"):
        assert opt in res.output
    assert "singletons" in res.output
