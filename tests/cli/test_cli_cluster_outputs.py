"""`xmrank cluster` outputs: the JSON record of a run, cluster contents, scores, the saved distance, stdout, progress."""

import csv
import json
from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

import xmrank
from conftest import cli, one_line_failure
from xmrank.cli.main import main
from xmrank.datasets import make_biased
from xmrank.diagnostics import cluster_scores


@pytest.fixture()
def files(tmp_path):
    X, ids, mods, cams = make_biased(n_ids=20, per_id=6, gap=1.5, seed=2)
    names = np.array([f"images/{i:04d}.jpg" for i in range(len(X))])
    np.save(tmp_path / "feats.npy", X)
    np.save(tmp_path / "mods.npy", mods)
    np.save(tmp_path / "ids.npy", ids)
    np.savez(tmp_path / "bundle.npz", features=X, modalities=mods, cams=cams, ids=ids, paths=names)
    return tmp_path, (X, ids, mods, cams, names)


#: ``xmrank cluster`` with ``args``, which must succeed.
run = partial(cli, "cluster", check=True)


def test_json_records_everything_needed_to_rerun(files):
    tmp, (X, ids, mods, cams, names) = files
    run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--eps", "auto", "--k1", 20, "--k2", 4, "--min-samples", 3,
        "-o", tmp / "l.npy", "--json", tmp / "s.json")
    s = json.loads((tmp / "s.json").read_text())
    p = s["parameters"]
    assert p["method"] == "modality" and p["method_requested"] == "auto"  # the method used, not "auto"
    assert p["k1"] == 20 and p["k2"] == 4 and p["min_samples"] == 3 and p["eps_requested"] == "auto"
    assert 0 < p["eps"] < 1 and p["knn"] in ("faiss", "numpy") and p["device"] == "cpu"
    assert s["xmrank_version"] == xmrank.__version__
    assert sum(s["sizes"]["histogram"].values()) == s["n_clusters"]
    # rerunning with the recorded settings gives the same labels
    again = xmrank.cluster(X, modalities=mods, method=p["method"], eps=p["eps"], k1=p["k1"], k2=p["k2"],
                           min_samples=p["min_samples"], knn=p["knn"])
    assert np.array_equal(np.load(tmp / "l.npy"), again)


def test_json_to_standard_output(files):
    tmp, _ = files
    res = run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--json", "-")
    summary = json.loads(res.stdout)  # standard output holds the JSON alone
    assert summary["parameters"]["eps"] == 0.6
    assert "rows ->" in res.stderr


def test_labels_score_the_clustering_as_diagnose_does(files):
    tmp, (X, ids, mods, cams, names) = files
    res = run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--labels", tmp / "ids.npy", "--noise", "cluster",
              "-o", tmp / "l.npy", "--json", tmp / "s.json")
    s = json.loads((tmp / "s.json").read_text())
    expected = cluster_scores(ids, np.load(tmp / "l.npy"), modalities=mods, noise="cluster")
    assert s["scores"] == json.loads(json.dumps(expected))
    assert f"ARI {expected['ari']:.3f}" in res.output


def test_contents_as_csv_and_json(files):
    tmp, (X, ids, mods, cams, names) = files
    run(tmp / "bundle.npz", "-o", tmp / "l.npy", "--contents", tmp / "c.csv")
    labels = np.load(tmp / "l.npy")
    with open(tmp / "c.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row"] for r in rows][:1] and {int(r["row"]) for r in rows} == set(np.flatnonzero(labels >= 0))
    for r in rows:
        i = int(r["row"])
        assert int(r["cluster"]) == labels[i] and r["name"] == names[i] and int(r["modality"]) == mods[i]
        assert int(r["size"]) == (labels == labels[i]).sum()
    run(tmp / "bundle.npz", "--contents", tmp / "c.json", "--with-noise", "--names", tmp / "ids.npy")
    contents = json.loads((tmp / "c.json").read_text())
    sizes = [c["size"] for c in contents if c["cluster"] >= 0]
    assert sizes == sorted(sizes, reverse=True) and sum(c["size"] for c in contents) == len(X)
    first = contents[0]
    assert sum(first["modalities"].values()) == first["size"] == len(first["members"])
    assert first["members"][0]["name"] == str(ids[first["members"][0]["row"]])  # --names wins over the bundle


def test_contents_to_standard_output_and_bad_names(files):
    tmp, _ = files
    res = run(tmp / "bundle.npz", "--contents", "-")
    assert json.loads(res.stdout)[0]["cluster"] >= 0
    one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp / "bundle.npz"), "--contents", str(tmp / "c.txt")]),
                     "--contents", ".csv or .json", every=True)
    one_line_failure(CliRunner().invoke(main, ["cluster", str(tmp / "bundle.npz"), "--json", "-", "--contents", "-"]),
                     "standard output")


def test_save_distance_writes_the_sparse_matrix(files):
    tmp, (X, ids, mods, cams, names) = files
    run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--save-distance", tmp / "D.npz")
    D = sp.load_npz(tmp / "D.npz")
    _, ref = xmrank.cluster(X, modalities=mods, return_distance=True)
    assert (D != ref).nnz == 0 and D.shape == (len(X), len(X))
    res = CliRunner().invoke(main, ["cluster", str(tmp / "feats.npy"), "--save-distance", str(tmp / "D.npy"),
                                    "-o", str(tmp / "x.npy")])
    one_line_failure(res, "--save-distance", ".npz", every=True)
    assert not (tmp / "x.npy").exists()
    res = CliRunner().invoke(main, ["cluster", str(tmp / "feats.npy"), "-m", str(tmp / "mods.npy"), "--mode",
                                    "per-modality", "--save-distance", str(tmp / "E.npz")])
    one_line_failure(res, "--save-distance", "--mode global", every=True)


def test_cams_key_of_a_bundle_is_read(files):
    tmp, (X, ids, mods, cams, names) = files
    run(tmp / "bundle.npz", "--method", "camera", "-o", tmp / "l.npy", "--json", tmp / "s.json")
    assert np.array_equal(np.load(tmp / "l.npy"), xmrank.cluster(X, modalities=mods, cameras=cams, method="camera"))
    s = json.loads((tmp / "s.json").read_text())
    assert set(s["inputs"]["from_features_file"]) == {"modalities", "cameras", "ids", "names"}
    assert s["parameters"]["k1_intra"] == 5 and "scores" in s  # bundled ids score it


def test_per_modality_json_records_each_eps(files):
    tmp, _ = files
    res = run(tmp / "bundle.npz", "--mode", "per-modality", "--eps", "auto", "--k1", 20, "--json", tmp / "s.json")
    p = json.loads((tmp / "s.json").read_text())["parameters"]
    assert set(p["eps"]) == {"0", "1"} and p["method"] == "vanilla" and set(p["auto_eps"]) == {"0", "1"}
    assert "eps=auto chose 0:" in res.output


def test_degenerate_clustering_warns_in_one_line_and_is_recorded(files):
    tmp, _ = files
    res = run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--eps", "0.99", "--json", tmp / "s.json")
    warning = [ln for ln in res.stderr.splitlines() if ln.startswith("Warning:")]
    assert len(warning) == 1 and "one cluster holds 100%" in warning[0] and "(checked: largest cluster" in warning[0]
    assert "use k1=20, k2=4, eps=0.55" in warning[0]  # 6 rows per identity and modality: k1=30 is too long
    assert json.loads((tmp / "s.json").read_text())["warnings"][0].startswith("degenerate clustering")
    # the suggestion, followed, does not degenerate again
    res = run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--k1", "20", "--k2", "4", "--eps", "0.55")
    assert "Warning:" not in res.stderr


def test_progress_lines_off_a_terminal(files):
    tmp, _ = files
    res = run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--progress")
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("jaccard[modality]:")]
    assert any("neighbour lists" in ln and ln.rstrip().endswith("(1/4)") for ln in lines)
    assert "\r" not in res.stderr  # no bar in a log file
    assert "jaccard[" not in run(tmp / "feats.npy", "-m", tmp / "mods.npy").stderr
    assert "jaccard[" not in run(tmp / "feats.npy", "-m", tmp / "mods.npy", "--no-progress").stderr


def test_gpu_by_index_is_accepted_and_checked(files):
    from xmrank.backend import cuda_available

    tmp, _ = files
    if cuda_available():
        pytest.skip("a GPU is present: see tests/knn/test_gpu.py")
    res = CliRunner().invoke(main, ["cluster", str(tmp / "feats.npy"), "--device", "cuda:1", "-o", str(tmp / "l.npy")])
    one_line_failure(res, "device='cuda:1'")
    assert not (tmp / "l.npy").exists()
    res = CliRunner().invoke(main, ["cluster", str(tmp / "feats.npy"), "--device", "cuda:one"])
    assert res.exit_code == 2 and "device must be auto, cpu, cuda or cuda:N" in res.output
