"""``xmrank rerank`` and ``xmrank evaluate`` through click's CliRunner."""

import json

import numpy as np
import pytest

from conftest import cli, one_line_failure
from xmrank.retrieval import evaluate, rerank


def cross_modal(n_ids=30, per_id=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, 16))
    offsets = rng.standard_normal((2, 16)) * 1.5
    ids = np.tile(np.repeat(np.arange(n_ids), per_id), 2)
    mods = np.repeat([0, 1], n_ids * per_id)
    X = centres[ids] + offsets[mods] + rng.standard_normal((len(ids), 16)) * 0.8
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    cams = np.where(mods == 1, 3 + ids % 2 * 3, 1 + np.arange(len(ids)) % 4)  # IR cams 3/6, visible 1,2,3->4,4->5
    cams = np.where((mods == 0) & (cams == 3), 4, cams)
    return X, ids, mods, cams


@pytest.fixture()
def files(tmp_path):
    X, ids, mods, cams = cross_modal()
    q, g = mods == 1, mods == 0
    np.savez(tmp_path / "q.npz", features=X[q], ids=ids[q], cams=cams[q], modalities=mods[q])
    np.savez(tmp_path / "g.npz", features=X[g], ids=ids[g], cams=cams[g], modalities=mods[g])
    np.save(tmp_path / "qf.npy", X[q])
    np.save(tmp_path / "gf.npy", X[g])
    np.save(tmp_path / "qids.npy", ids[q])
    np.save(tmp_path / "gids.npy", ids[g])
    return tmp_path, dict(Q=X[q], G=X[g], qi=ids[q], gi=ids[g], qc=cams[q], gc=cams[g])


def test_evaluate_prints_table_and_writes_json(files):
    d, a = files
    res = cli("evaluate", d / "q.npz", d / "g.npz", "--protocol", "sysu", "--json", d / "s.json")
    assert res.exit_code == 0, res.output
    for col in ("mAP", "mINP", "Rank-1", "Rank-5", "Rank-10", "Rank-20"):
        assert col in res.output
    ref = evaluate(-(a["Q"] @ a["G"].T), a["qi"], a["gi"], a["qc"], a["gc"], protocol="sysu")
    data = json.loads((d / "s.json").read_text())
    assert data["mAP"] == pytest.approx(ref["mAP"]) and data["cmc"] == pytest.approx(ref["cmc"].tolist())
    assert f"{100 * ref['mAP']:.2f}" in res.output


def test_evaluate_with_distances_and_npy_labels(files):
    d, a = files
    D = rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0)
    np.save(d / "D.npy", D)
    res = cli("evaluate", d / "qf.npy", d / "gf.npy", "--distances", d / "D.npy",
              "--query-ids", d / "qids.npy", "--gallery-ids", d / "gids.npy", "--protocol", "regdb", "--json", d / "o.json")
    assert res.exit_code == 0, res.output
    ref = evaluate(D, a["qi"], a["gi"], protocol="regdb")
    assert json.loads((d / "o.json").read_text())["mAP"] == pytest.approx(ref["mAP"])


def test_rerank_writes_distances_and_scores(files):
    d, a = files
    res = cli("rerank", d / "q.npz", d / "g.npz", "-o", d / "r.npy", "--json", d / "r.json", "--k1", 10, "--k2", 3,
              "--protocol", "regdb")
    assert res.exit_code == 0, res.output
    assert "original" in res.output and "re-ranked" in res.output
    ref = rerank(a["Q"], a["G"], query_modalities=a["qc"] * 0 + 1, gallery_modalities=0, k1=10, k2=3)
    np.testing.assert_allclose(np.load(d / "r.npy"), ref, atol=1e-6)
    out = json.loads((d / "r.json").read_text())
    assert set(out["results"]) == {"original", "re-ranked"}
    assert out["results"]["re-ranked"]["mAP"] > out["results"]["original"]["mAP"]


def test_rerank_scalar_modalities_and_plain_npy(files):
    d, a = files
    res = cli("rerank", d / "qf.npy", d / "gf.npy", "--query-modalities", 1, "--gallery-modalities", 0, "-o", d / "r.npy")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(d / "r.npy"), rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0), atol=1e-6)


def test_help_documents_the_inputs():
    for cmd in ("rerank", "evaluate"):
        res = cli(cmd, "--help")
        assert res.exit_code == 0 and "QUERY and GALLERY" in res.output and "Example" in res.output


# --- bad input: one line, non-zero exit, no traceback, no output file --------------------------

def test_missing_file(files):
    d, _ = files
    res = cli("evaluate", d / "nope.npz", d / "g.npz")
    one_line_failure(res, "query: file not found")


def test_corrupt_file(files):
    d, _ = files
    (d / "bad.npz").write_bytes(b"not a zip")
    one_line_failure(cli("rerank", d / "bad.npz", d / "g.npz", "-o", d / "x.npy"), "cannot read")
    assert not (d / "x.npy").exists()


def test_wrong_length_ids(files):
    d, _ = files
    np.save(d / "short.npy", np.arange(5))
    res = cli("evaluate", d / "q.npz", d / "g.npz", "--query-ids", d / "short.npy", "--protocol", "sysu",
              "--json", d / "x.json")
    one_line_failure(res, "query_ids must have one entry per row")
    assert not (d / "x.json").exists()


def test_nan_features(files):
    d, a = files
    Q = a["Q"].copy()
    Q[2, 3] = np.nan
    np.save(d / "nan.npy", Q)
    one_line_failure(cli("rerank", d / "nan.npy", d / "gf.npy", "-o", d / "x.npy"), "NaN")
    assert not (d / "x.npy").exists()


def test_one_dimensional_features(files):
    d, _ = files
    np.save(d / "flat.npy", np.ones(10, np.float32))
    one_line_failure(cli("evaluate", d / "flat.npy", d / "gf.npy", "--query-ids", d / "qids.npy",
                         "--gallery-ids", d / "gids.npy", "--protocol", "regdb"), "2-D")


def test_missing_ids_and_cams(files):
    d, _ = files
    one_line_failure(cli("evaluate", d / "qf.npy", d / "gf.npy"), "query: no ids")
    one_line_failure(cli("evaluate", d / "qf.npy", d / "gf.npy", "--query-ids", d / "qids.npy",
                         "--gallery-ids", d / "gids.npy", "--protocol", "sysu"), "no cameras", "--protocol sysu",
                     "--protocol regdb", every=True)
    # without --protocol: RegDB's rules (nothing dropped), the one protocol that reads no cameras, and said so
    res = cli("evaluate", d / "qf.npy", d / "gf.npy", "--query-ids", d / "qids.npy", "--gallery-ids", d / "gids.npy")
    assert res.exit_code == 0 and res.output.startswith("protocol regdb (RegDB's rules: nothing dropped"), res.output
    # rows with cameras must name their protocol
    one_line_failure(cli("evaluate", d / "qf.npy", d / "gf.npy", "--query-ids", d / "qids.npy", "--gallery-ids",
                         d / "gids.npy", "--query-cameras", 3, "--gallery-cameras", 1), "the rows carry cameras",
                     "give --protocol", every=True)


def test_rerank_without_output_or_ids(files):
    d, _ = files
    one_line_failure(cli("rerank", d / "qf.npy", d / "gf.npy"), "nothing to do")
    one_line_failure(cli("rerank", d / "qf.npy", d / "gf.npy", "-o", d / "x.npy", "--json", d / "x.json"),
                     "--json needs ids")
    assert not (d / "x.npy").exists() and not (d / "x.json").exists()


def test_rerank_k1_too_large_and_missing_modalities(files):
    d, _ = files
    one_line_failure(cli("rerank", d / "q.npz", d / "g.npz", "--k1", 1000, "-o", d / "x.npy"), "k1")
    one_line_failure(cli("rerank", d / "qf.npy", d / "gf.npy", "--method", "modality", "-o", d / "x.npy"),
                     "needs modalities")
    assert not (d / "x.npy").exists()


def test_distances_shape_mismatch(files):
    d, _ = files
    np.save(d / "D.npy", np.zeros((3, 3)))
    one_line_failure(cli("evaluate", d / "q.npz", d / "g.npz", "--distances", d / "D.npy"), "must have one entry per")


def test_missing_arguments(files):
    one_line_failure(cli("evaluate"), "give QUERY and GALLERY")
    one_line_failure(cli("rerank"), "give QUERY and GALLERY")


@pytest.mark.parametrize("command", ["evaluate", "rerank"])
def test_json_on_standard_output_leaves_the_table_on_standard_error(files, command):
    tmp, _ = files
    extra = ["-o", tmp / "r.npy"] if command == "rerank" else []
    res = cli(command, tmp / "q.npz", tmp / "g.npz", "--protocol", "regdb", "--json", "-", *extra)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)  # standard output is the JSON alone
    assert payload["protocol"] == "regdb"
    assert "mAP" in res.stderr  # the table went to standard error


def test_rerank_of_rows_with_cameras_needs_a_protocol_to_score(files):
    """The distances are the product: without --protocol they are written and not scored (rows with cameras have
    no default rules); the scores asked for with --json need the rules named, checked before the work."""
    d, a = files
    res = cli("rerank", d / "q.npz", d / "g.npz", "-o", d / "r.npy", "--k1", 10, "--k2", 3)
    assert res.exit_code == 0 and "not scored: the rows carry cameras, give --protocol" in res.output, res.output
    ref = rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0, k1=10, k2=3)
    np.testing.assert_allclose(np.load(d / "r.npy"), ref, atol=1e-6)
    one_line_failure(cli("rerank", d / "q.npz", d / "g.npz", "--json", d / "r.json", "--k1", 10, "--k2", 3),
                     "the rows carry cameras: give --protocol")
    assert not (d / "r.json").exists()
    res = cli("rerank", d / "q.npz", d / "g.npz", "--protocol", "sysu", "--k1", 10, "--k2", 3)
    assert res.exit_code == 0 and res.output.startswith("protocol sysu (SYSU-MM01's rules"), res.output
