"""`xmrank cluster` and `xmrank demo` on real files."""

import numpy as np
import pytest
from click.testing import CliRunner

import xmrank
from xmrank.cli.main import main
from xmrank.datasets import make_biased


def _files(tmp_path):
    X, ids, mods, cams = make_biased(n_ids=20, per_id=6, gap=1.5, seed=2)
    np.save(tmp_path / "feats.npy", X)
    np.save(tmp_path / "mods.npy", mods)
    np.savez(tmp_path / "data.npz", features=X, modalities=mods, cameras=cams)
    return X, ids, mods, cams


def test_cluster_writes_the_library_labels(tmp_path):
    X, ids, mods, _ = _files(tmp_path)
    out = tmp_path / "labels.npy"
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "feats.npy"), "--modalities", str(tmp_path / "mods.npy"),
                                    "-o", str(out), "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    labels = np.load(out)
    assert labels.dtype == np.int64 and labels.shape == (X.shape[0],)
    assert np.array_equal(labels, xmrank.cluster(X, modalities=mods))
    assert "clusters" in res.output and "mix modalities" in res.output


def test_cluster_reads_npz_bundle_and_modes(tmp_path):
    X, ids, mods, cams = _files(tmp_path)
    for args in (["--method", "camera"], ["--mode", "per-modality"], ["--mode", "subset", "--seed", "1"],
                 ["--eps", "auto"], ["--algorithm", "hdbscan"]):
        out = tmp_path / "l.npy"
        res = CliRunner().invoke(main, ["cluster", str(tmp_path / "data.npz"), "-o", str(out), *args])
        assert res.exit_code == 0, (args, res.output)
        assert np.load(out).shape == (X.shape[0],)


def test_cluster_help_documents_every_option():
    res = CliRunner().invoke(main, ["cluster", "--help"])
    assert res.exit_code == 0
    for opt in ("--modalities", "--cameras", "--method", "--k1", "--k2", "--eps", "--min-samples", "--output", "--mode",
                "--knn", "--device", "--scheduler"):
        assert opt in res.output


def test_demo_shows_the_modality_aware_gain():
    res = CliRunner().invoke(main, ["demo", "--n-ids", "20", "--per-id", "6"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines() if line.startswith(("vanilla", "modality"))}
    assert float(rows["modality"][4]) > float(rows["vanilla"][4])  # ARI


def test_cluster_with_approximate_knn_is_the_library_result(tmp_path, monkeypatch):
    from xmrank.knn import ann, ann_lists

    X, ids, mods, _ = _files(tmp_path)
    monkeypatch.setattr(ann, "MIN_ROWS", 0)  # the IVF index even on this small file
    calls = []
    real = ann_lists.search_groups
    monkeypatch.setattr(ann_lists, "search_groups",
                        lambda X, groups, k, **kw: calls.append([len(g) for g in groups]) or real(X, groups, k, **kw))
    out = tmp_path / "labels.npy"
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "feats.npy"), "-m", str(tmp_path / "mods.npy"),
                                    "--knn", "ann", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert calls == [np.bincount(mods).tolist()]  # one calibrated search over the modalities' lists
    calls.clear()
    assert np.array_equal(np.load(out), xmrank.cluster(X, modalities=mods, knn="ann"))


@pytest.mark.slow
def test_cluster_on_a_local_dask_cluster(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from xmrank.knn import dask_engine as xdask

    X, ids, mods, _ = _files(tmp_path)
    workers_seen = []
    real = xdask._n_threads
    monkeypatch.setattr(xdask, "_n_threads", lambda client: workers_seen.append(len(client.nthreads())) or real(client))
    out = tmp_path / "labels.npy"
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "feats.npy"), "-m", str(tmp_path / "mods.npy"),
                                    "--knn", "dask", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert workers_seen and min(workers_seen) >= 1  # the search went through a dask client
    assert np.array_equal(np.load(out), xmrank.cluster(X, modalities=mods, knn="faiss"))


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler is only used with --knn dask"),
    pytest.param(["--knn", "dask", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler tcp://127.0.0.1:9: could not connect",
                 marks=pytest.mark.slow),  # a connection time-out
    (["--knn", "dask", "--scheduler", "notanaddress"], "--scheduler notanaddress: could not connect"),
    (["--knn", "nearest"], "'nearest' is not one of"),
    (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N; got 'tpu'"),
])
def test_cluster_scale_options_fail_in_one_line(tmp_path, args, message):
    _files(tmp_path)
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "feats.npy"), "-m", str(tmp_path / "mods.npy"), *args])
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output


def test_cluster_on_cuda_without_a_gpu_says_what_is_missing(tmp_path):
    from xmrank.backend import cuda_available, have_cupy

    if have_cupy() and cuda_available():
        pytest.skip("a GPU is present")
    _files(tmp_path)
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "feats.npy"), "-m", str(tmp_path / "mods.npy"),
                                    "--device", "cuda"])
    assert res.exit_code == 1
    assert "device='cuda'" in res.output and ("cupy" in res.output or "GPU" in res.output)


def test_labels_of_the_wrong_length_are_refused_before_clustering(tmp_path):
    from conftest import invoke, one_line_failure

    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.standard_normal((120, 8)).astype(np.float32))
    np.save(tmp_path / "ids.npy", np.arange(80) % 10)
    line = one_line_failure(invoke(["cluster", tmp_path / "f.npy", "--labels", tmp_path / "ids.npy",
                                    "-o", tmp_path / "l.npy"]), "--labels")
    assert "120" in line and "80" in line
    assert not (tmp_path / "l.npy").exists()
