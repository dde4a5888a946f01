"""SYSU-MM01 multi-shot galleries, the LLCM protocol of evaluate, and ROC (TPR at fixed FPR)."""

import os
import random

import numpy as np
import pytest

from xmrank import InputError
from xmrank.datasets import records_to_arrays, sysu_query_gallery
from xmrank.retrieval import evaluate, sysu_evaluation

TEST = [4, 2]


def n_files(pid, cam):
    return {1: 12, 2: 3, 4: 10, 5: 0, 3: 4, 6: 2}[cam] + (pid == 4 and cam == 1)


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("SYSU")
    for pid in TEST:
        for cam in range(1, 7):
            k = n_files(pid, cam)
            if not k:
                continue
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for i in range(k):
                (folder / f"{i + 1:04d}.jpg").write_bytes(b"")
    (root / "exp").mkdir()
    (root / "exp" / "test_id.txt").write_text(",".join(map(str, TEST)))
    return str(root)


def published_multishot(root, mode, trial):
    """The multi-shot draw of the code that reports it: random.sample(files, k=10) per (id, camera)."""
    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    random.seed(trial)
    out = []
    for pid in sorted("%04d" % x for x in TEST):
        for cam in cams:
            d = os.path.join(root, cam, pid)
            if os.path.isdir(d):
                files = sorted(os.path.join(d, f) for f in os.listdir(d))
                out.extend(random.sample(files, min(10, len(files))))
    return out


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("trial", range(4))
def test_multishot_gallery(sysu_root, mode, trial):
    query, single = sysu_query_gallery(sysu_root, mode=mode, trial=trial)
    q2, multi = sysu_query_gallery(sysu_root, mode=mode, trial=trial, shot="multi")
    assert q2 == query
    cams = (1, 2, 4, 5) if mode == "all" else (1, 2)
    assert len(single) == sum(n_files(p, c) > 0 for p in TEST for c in cams)
    assert len(multi) == sum(min(10, n_files(p, c)) for p in TEST for c in cams)
    assert [r.path for r in multi] == published_multishot(sysu_root, mode, trial)
    per = {}
    for r in multi:
        per.setdefault((r.pid, r.cam), set()).add(r.path)
    assert all(len(v) == min(10, n_files(*k)) for k, v in per.items())  # no image twice


def test_multishot_evaluation(sysu_root):
    def embed(records):
        arr = records_to_arrays(records)
        X = np.eye(8, dtype=np.float32)[arr["pids"] % 8] + 0.3 * arr["modalities"][:, None]
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    res = sysu_evaluation(embed, sysu_root, trials=range(2), shot="multi")
    assert res["shot"] == "multi" and res["mean"]["mAP"] == pytest.approx(1.0)
    assert res["trials"][0]["n_gallery"] == sum(min(10, n_files(p, c)) for p in TEST for c in (1, 2, 4, 5))
    with pytest.raises(InputError, match="Unknown shot 'double'"):
        sysu_query_gallery(sysu_root, shot="double")


# --- LLCM scoring and ROC -------------------------------------------------------------------

def eval_llcm_restated(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """The LLCM authors' eval_llcm, restated (stable sort)."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        ranked = g_pids[order][keep]
        m = (ranked == q_pids[i]).astype(int)
        _, first = np.unique(ranked, return_index=True)
        dedup = ranked[np.sort(first)]
        if not m.any():
            continue
        cmcs.append(np.minimum(np.cumsum(dedup == q_pids[i])[:max_rank], 1))
        c = np.cumsum(m)
        last = np.flatnonzero(m).max()
        inps.append(c[last] / (last + 1))
        aps.append(((c / np.arange(1, len(m) + 1)) * m).sum() / m.sum())
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps)


def test_llcm_protocol_is_eval_llcm():
    rng = np.random.default_rng(0)
    nq, ng = 70, 120
    qi, gi = rng.integers(0, 30, nq), rng.integers(0, 30, ng)
    qc, gc = rng.integers(1, 10, nq), rng.integers(1, 10, ng)
    D = rng.random((nq, ng))
    cmc, mAP, mINP = eval_llcm_restated(D, qi, gi, qc, gc, 10)
    r = evaluate(D, qi, gi, qc, gc, protocol="llcm", max_rank=10)
    np.testing.assert_allclose(r["cmc"], cmc)
    assert r["mAP"] == pytest.approx(mAP) and r["mINP"] == pytest.approx(mINP)
    with pytest.raises(InputError, match="needs query_cams"):
        evaluate(D, qi, gi, protocol="llcm")


@pytest.mark.parametrize("protocol", ["regdb", "market", "sysu"])
def test_roc_matches_sklearn(protocol):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    nq, ng = 150, 400
    qi, gi = rng.integers(0, 40, nq), rng.integers(0, 40, ng)
    qc, gc = rng.integers(1, 7, nq), rng.integers(1, 7, ng)
    D = rng.random((nq, ng)) - 0.5 * (qi[:, None] == gi[None])
    r = evaluate(D, qi, gi, qc, gc, protocol=protocol, roc=True)
    np.testing.assert_array_equal(r["roc_fpr"], [1e-4, 1e-3, 1e-2, 1e-1])
    if protocol == "market":
        keep = ~((qi[:, None] == gi[None]) & (qc[:, None] == gc[None]))
    elif protocol == "sysu":
        keep = ~((qc[:, None] == 3) & (gc[None] == 2))
    else:
        keep = np.ones(D.shape, bool)
    labels = (qi[:, None] == gi[None])[keep]
    fpr, tpr, _ = sklearn_metrics.roc_curve(labels, -D[keep])
    for f, got in zip(r["roc_fpr"], r["roc_tpr"]):
        assert got == pytest.approx(tpr[fpr <= f + 1e-12].max())
    assert "roc_tpr" not in evaluate(D, qi, gi, qc, gc, protocol=protocol)


def test_roc_needs_both_kinds_of_pairs():
    D = np.array([[0.1, 0.2]])
    with pytest.raises(InputError, match="both same-identity and different-identity pairs"):
        evaluate(D, [1], [1, 1], protocol="regdb", roc=True)
    with pytest.raises(InputError, match="roc must be True or False"):
        evaluate(D, [1], [1, 2], protocol="regdb", roc="yes")
