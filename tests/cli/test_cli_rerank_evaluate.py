"""CLI: ``evaluate --rerank``, ``--roc``, LLCM protocol; ``rerank`` from distances, torchreid, hubness, QE."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, one_line_failure
from xmrank.compat import re_ranking
from xmrank.retrieval import evaluate, qb_norm, query_expansion, rerank

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "torchreid_rerank_n420.npz"


def euclid(A, B):
    return np.sqrt(np.maximum((A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T, 0)).astype(np.float32)


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    n_ids, per_id = 25, 3
    centres = rng.standard_normal((n_ids, 16))
    offsets = rng.standard_normal((2, 16)) * 1.5
    ids = np.tile(np.repeat(np.arange(n_ids), per_id), 2)
    mods = np.repeat([0, 1], n_ids * per_id)
    X = centres[ids] + offsets[mods] + rng.standard_normal((len(ids), 16)) * 0.8
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    cams = np.where(mods == 1, 3, 1 + np.arange(len(ids)) % 2)
    q, g = mods == 1, mods == 0
    Q, G = X[q], X[g]
    np.savez(tmp_path / "q.npz", features=Q, ids=ids[q], cams=cams[q], modalities=mods[q])
    np.savez(tmp_path / "g.npz", features=G, ids=ids[g], cams=cams[g], modalities=mods[g])
    np.savez(tmp_path / "ql.npz", ids=ids[q], cams=cams[q], modalities=mods[q])
    np.savez(tmp_path / "gl.npz", ids=ids[g], cams=cams[g], modalities=mods[g])
    for name, D in (("qg", euclid(Q, G)), ("qq", euclid(Q, Q)), ("gg", euclid(G, G))):
        np.save(tmp_path / f"{name}.npy", D)
    return tmp_path, dict(Q=Q, G=G, qi=ids[q], gi=ids[g], qc=cams[q], gc=cams[g])


def test_evaluate_rerank_both_prints_and_writes_both(files):
    d, a = files
    res = cli("evaluate", d / "q.npz", d / "g.npz", "--protocol", "regdb", "--rerank", "--k1", 8, "--k2", 2,
              "--json", d / "s.json")
    assert res.exit_code == 0, res.output
    assert "without re-ranking" in res.output and "re-ranked (modality, k1=8, k2=2)" in res.output
    data = json.loads((d / "s.json").read_text())
    # the method used, beside the one asked for ("auto" measured the modality bias: the chosen dict says how)
    assert data["rerank"] == {"algorithm": "k-reciprocal", "method": "modality", "method_requested": "auto", "k1": 8,
                              "k2": 2, "lambda": 0.3, "camera_weight": None}
    assert data["chosen"]["bias"]["biased"] and data["chosen"]["method_reason"].startswith("cross-modal share")
    ref = evaluate(rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0, k1=8, k2=2), a["qi"], a["gi"],
                   protocol="regdb")
    assert data["results"]["re-ranked"]["mAP"] == pytest.approx(ref["mAP"])
    base = evaluate(-(a["Q"] @ a["G"].T), a["qi"], a["gi"], protocol="regdb")
    assert data["results"]["without re-ranking"]["mAP"] == pytest.approx(base["mAP"])


@pytest.mark.slow
def test_evaluate_rerank_both_from_distances_and_auto(files):
    d, a = files
    res = cli("evaluate", d / "ql.npz", d / "gl.npz", "--distances", d / "qg.npy", "--query-distances", d / "qq.npy",
              "--gallery-distances", d / "gg.npy", "--protocol", "regdb", "--rerank", "--k1", "auto",
              "--k2", "auto", "--roc", "--json", d / "s.json")
    assert res.exit_code == 0, res.output
    assert "TPR@1e-04" in res.output and "TPR@1e-01" in res.output
    data = json.loads((d / "s.json").read_text())
    k1, k2 = data["rerank"]["k1"], data["rerank"]["k2"]
    assert isinstance(k1, int) and isinstance(k2, int)
    ref = rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0, k1=k1, k2=k2)
    got = data["results"]["re-ranked"]
    assert got["mAP"] == pytest.approx(evaluate(ref, a["qi"], a["gi"], protocol="regdb")["mAP"], abs=1e-6)
    assert len(got["roc_tpr"]) == 4


def test_evaluate_roc_and_llcm(files):
    d, a = files
    res = cli("evaluate", d / "q.npz", d / "g.npz", "--protocol", "llcm", "--roc", "--json", d / "s.json")
    assert res.exit_code == 0, res.output
    data = json.loads((d / "s.json").read_text())
    ref = evaluate(-(a["Q"] @ a["G"].T), a["qi"], a["gi"], a["qc"], a["gc"], protocol="llcm", roc=True)
    assert data["roc_tpr"] == pytest.approx(ref["roc_tpr"].tolist()) and data["protocol"] == "llcm"


@pytest.mark.parametrize("args, message", [
    (["--query-distances", "{d}/qq.npy", "--gallery-distances", "{d}/gg.npy"], ("add --rerank",)),
    (["--rerank", "--distances", "{d}/qg.npy"], ("needs --query-distances",)),
    (["--rerank", "--distances", "{d}/qg.npy", "--query-distances", "{d}/qq.npy"], ("go together",)),
    (["--rerank", "--distances", "{d}/qg.npy", "--query-distances", "{d}/small.npy",
      "--gallery-distances", "{d}/gg.npy"], ("--query-distances must be 75 x 75; got 10 x 10",)),
    (["--rerank", "--k1", "many"], ("k1 must be an integer or 'auto'",)),
    (["--rerank", "--k1", 1000], ("k1 // 2 modalities=500 asks the smallest modality",)),
    # RegDB's rules drop nothing: refused where a query meets its own camera (named as the user spelled it)
    (["--query-cams", 1, "--gallery-cams", 1], ("--protocol regdb drops nothing", "--query-cams/--gallery-cams")),
])
def test_evaluate_errors(files, args, message):
    d, _ = files
    np.save(d / "small.npy", np.ones((10, 10), np.float32))
    args = [str(x).format(d=d) for x in args]
    one_line_failure(cli("evaluate", d / "q.npz", d / "g.npz", "--protocol", "regdb", *args, "--json", d / "o.json"),
                     *message, every=True)
    assert not (d / "o.json").exists()


def test_rerank_torchreid_from_distances_matches_compat(tmp_path):
    with np.load(GOLDEN) as z:
        g = {k: z[k] for k in z.files}
    for name, key in (("qg", "q_g_dist"), ("qq", "q_q_dist"), ("gg", "g_g_dist")):
        np.save(tmp_path / f"{name}.npy", g[key])
    res = cli("rerank", "--distances", tmp_path / "qg.npy", "--query-distances", tmp_path / "qq.npy",
              "--gallery-distances", tmp_path / "gg.npy", "--reranker", "torchreid", "-o", tmp_path / "r.npy")
    assert res.exit_code == 0, res.output
    assert np.abs(np.load(tmp_path / "r.npy") - g["final_dist"]).max() <= 1e-5


def test_rerank_rules_from_distances(files):
    d, a = files
    res = cli("rerank", d / "ql.npz", d / "gl.npz", "--distances", d / "qg.npy", "--query-distances", d / "qq.npy",
              "--gallery-distances", d / "gg.npy", "--k1", 8, "--k2", 2, "-o", d / "r.npy", "--json", d / "r.json",
              "--protocol", "regdb")
    assert res.exit_code == 0, res.output
    ref = rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0, k1=8, k2=2)
    assert np.abs(np.load(d / "r.npy") - ref).max() <= 1e-5
    assert json.loads((d / "r.json").read_text())["k1"] == 8


def test_rerank_hubness_and_query_expansion(files):
    d, a = files
    res = cli("rerank", d / "q.npz", d / "g.npz", "--reranker", "qb-norm", "--beta", 20, "-o", d / "r.npy")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(d / "r.npy"), qb_norm(a["Q"], a["G"], beta=20), atol=1e-5)
    np.save(d / "bank.npy", a["Q"][:10])
    res = cli("rerank", d / "q.npz", d / "g.npz", "--reranker", "db-norm", "--bank", d / "bank.npy", "-o", d / "r.npy")
    assert res.exit_code == 0, res.output
    res = cli("rerank", d / "q.npz", d / "g.npz", "--reranker", "alpha-qe", "--qe-k", 2, "-o", d / "r.npy")
    assert res.exit_code == 0, res.output
    assert "alpha-qe (k=2, balanced)" in res.output
    qe, ge = query_expansion(a["Q"], a["G"], k=2, alpha=3.0, query_modalities=1, gallery_modalities=0)
    np.testing.assert_allclose(np.load(d / "r.npy"), 1 - qe @ ge.T, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--distances", "{d}/qg.npy"], "needs all three"),
    (["{d}/ql.npz", "{d}/gl.npz", "--distances", "{d}/qg.npy", "--query-distances", "{d}/qq.npy",
      "--gallery-distances", "{d}/gg.npy", "--reranker", "aqe"], "works on features"),
    (["{d}/q.npz", "{d}/g.npz", "--reranker", "torchreid"], "takes the three distance matrices"),
    (["{d}/q.npz", "{d}/g.npz", "--bank", "{d}/qg.npy"], "--bank is for"),
    (["{d}/q.npz", "{d}/g.npz", "--reranker", "qb-norm", "--beta", "-1"], "--beta"),
    (["{d}/q.npz", "{d}/g.npz", "--method", "camera", "--query-cams", 1, "--gallery-cams", 1],
     "at least two distinct cameras"),
    (["{d}/ql.npz", "{d}/gl.npz", "--distances", "{d}/qg.npy", "--query-distances", "{d}/qq.npy",
      "--gallery-distances", "{d}/neg.npy"], "non-negative"),
])
def test_rerank_errors(files, args, message):
    d, _ = files
    np.save(d / "neg.npy", -np.load(d / "gg.npy"))
    args = [str(x).format(d=d) for x in args]
    one_line_failure(cli("rerank", *args, "-o", d / "out.npy"), message)
    assert not (d / "out.npy").exists()


# --- --reranker gnn: GNN re-ranking (Zhang et al.) beside the k-reciprocal rules ------------------

def test_rerank_gnn_writes_the_library_result_and_names_its_row(files):
    d, a = files
    res = cli("rerank", d / "q.npz", d / "g.npz", "--reranker", "gnn", "--k1", 8, "--k2", 2, "-o", d / "r.npy",
              "--json", d / "r.json", "--protocol", "regdb")
    assert res.exit_code == 0, res.output
    assert "GNN re-ranked (modality, k1=8, k2=2)" in res.output  # method auto: the rule it chose
    ref = rerank(a["Q"], a["G"], query_modalities=1, gallery_modalities=0, algorithm="gnn", k1=8, k2=2)
    np.testing.assert_array_equal(np.load(d / "r.npy"), ref)
    assert json.loads((d / "r.json").read_text())["algorithm"] == "gnn"
    res = cli("rerank", d / "ql.npz", d / "gl.npz", "--distances", d / "qg.npy", "--query-distances", d / "qq.npy",
              "--gallery-distances", d / "gg.npy", "--reranker", "gnn", "--k1", 8, "--k2", 2, "-o", d / "r2.npy")
    assert res.exit_code == 0, res.output
    assert np.abs(np.load(d / "r2.npy") - ref).max() <= 1e-5


def test_evaluate_rerank_both_with_gnn_and_camera_weights(files):
    d, a = files
    res = cli("evaluate", d / "q.npz", d / "g.npz", "--protocol", "regdb", "--rerank", "--reranker", "gnn",
              "--method", "vanilla", "--k1", 8, "--k2", 2, "--camera-weight", 0.5, "--json", d / "s.json")
    assert res.exit_code == 0, res.output
    assert "GNN re-ranked (vanilla, k1=8, k2=2)" in res.output
    data = json.loads((d / "s.json").read_text())
    assert data["rerank"]["algorithm"] == "gnn" and data["rerank"]["camera_weight"] == 0.5
    ref = rerank(a["Q"], a["G"], query_cameras=a["qc"], gallery_cameras=a["gc"], method="vanilla", algorithm="gnn",
                 k1=8, k2=2, camera_weight=0.5)
    expected = evaluate(ref, a["qi"], a["gi"], protocol="regdb")["mAP"]
    assert abs(data["results"]["re-ranked"]["mAP"] - expected) < 1e-6


@pytest.mark.parametrize("command, args, message", [
    ("rerank", ["--reranker", "gnn", "--k1", 1000], "k1 // 2 modalities=500 asks the smallest modality"),
    ("rerank", ["--reranker", "gnn", "--method", "vanilla", "--k1", 4, "--k2", 6], "k2=6 must not exceed k1=4"),
    ("rerank", ["--reranker", "gnn", "--lambda", 1.5], "--lambda"),
    ("rerank", ["--reranker", "gnn", "--query-modalities", 0, "--gallery-modalities", 0, "--method", "modality"],
     "single modality"),
    ("rerank", ["--reranker", "gnn", "--camera-weight", 3], "camera_weight must be <= 1"),
    ("rerank", ["--reranker", "graph"], "--reranker"),
    ("rerank", ["--reranker", "gnn", "--method", "qb-norm"], "is a re-ranker, not a neighbour rule"),
    ("rerank", ["--reranker", "gnn", "--query-features", "{d}/nan.npy"], "NaN"),
    ("evaluate", ["--reranker", "gnn"], "--reranker is for re-ranking: add --rerank"),
    ("evaluate", ["--rerank", "--reranker", "gnn", "--k1", 1000], "k1 // 2 modalities=500"),
])
def test_gnn_errors_are_one_line_and_write_nothing(files, command, args, message):
    d, a = files
    Q = a["Q"].copy()
    Q[2, 3] = np.nan
    np.savez(d / "qnan.npz", features=Q, ids=a["qi"], cams=a["qc"], modalities=np.ones(len(Q), int))
    args = [str(x).format(d=d) for x in args]
    query = d / "q.npz"
    if "--query-features" in args:
        i = args.index("--query-features")
        args, query = args[:i] + args[i + 2:], d / "qnan.npz"
    out = ["-o", d / "out.npy"] if command == "rerank" else []
    one_line_failure(cli(command, query, d / "g.npz", "--protocol", "regdb", *args, *out, "--json", d / "o.json"),
                     message)
    assert not (d / "out.npy").exists() and not (d / "o.json").exists()


def test_evaluate_prints_graph_and_k_reciprocal_rows_side_by_side(files):
    d, a = files
    res = cli("evaluate", d / "q.npz", d / "g.npz", "--protocol", "regdb", "--rerank", "--k1", 8, "--k2", 2,
              "--reranker", "k-reciprocal", "--reranker", "gnn", "--json", d / "s.json")
    assert res.exit_code == 0, res.output
    assert "k-reciprocal re-ranked (modality, k1=8, k2=2)" in res.output and "GNN re-ranked (modality, k1=8, k2=2)" in res.output
    data = json.loads((d / "s.json").read_text())
    assert data["rerank"]["algorithm"] == ["k-reciprocal", "gnn"]
    side = dict(query_modalities=1, gallery_modalities=0, k1=8, k2=2)
    for alg in ("k-reciprocal", "gnn"):
        expected = evaluate(rerank(a["Q"], a["G"], algorithm=alg, **side), a["qi"], a["gi"], protocol="regdb")["mAP"]
        assert abs(data["results"][f"re-ranked ({alg})"]["mAP"] - expected) < 1e-6
    assert data["results"]["re-ranked"] == data["results"]["re-ranked (k-reciprocal)"]
    one_line_failure(cli("evaluate", d / "q.npz", d / "g.npz", "--rerank", "--camera-weight", 0.5,
                         "--protocol", "regdb"),
                     "--camera-weight weighs the GNN re-ranking's graph")
