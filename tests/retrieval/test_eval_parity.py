"""Evaluation parity with the published BMIL code (golden data in tests/data/trainer_eval_parity.npz).

The oracle was computed by BMIL's own ``eval_sysu`` (train_sysu.py), ``eval_regdb``
(train_regdb.py), ``process_query_sysu`` and ``process_gallery_sysu`` (see
/work/shared/golden/trainer/README.md). Metrics: 1e-4 relative (the CMC of the
published code is float32). Lists: exact, *in order*: the query order defines
the rows of the distance matrix, and the gallery draw consumes
``random.choice`` calls in (identity, camera) order, so the order is part of
the protocol.
"""

import os
import re

import numpy as np
import pytest

from xmrank.datasets import sysu_query_gallery, sysu_test_records
from xmrank.retrieval import evaluate, metrics

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "trainer_eval_parity.npz")
RTOL = 1e-4


@pytest.fixture(scope="module")
def golden():
    with np.load(DATA, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(params=["counting", "sorting"])
def strategy(request, monkeypatch):
    """Run the metric through each of its two exact strategies (counting ranks, sorting rows)."""
    if request.param == "sorting":
        monkeypatch.setattr(metrics, "_COUNTING_FACTOR", -1.0)
    else:
        monkeypatch.setattr(metrics, "_COUNTING_FACTOR", 1e9)
    return request.param


def _check(res, golden, protocol):
    np.testing.assert_allclose(res["mAP"], golden[f"eval_{protocol}_mAP"], rtol=RTOL, atol=0)
    np.testing.assert_allclose(res["mINP"], golden[f"eval_{protocol}_mINP"], rtol=RTOL, atol=0)
    cmc = golden[f"eval_{protocol}_cmc"]
    assert res["cmc"].shape == cmc.shape
    np.testing.assert_allclose(res["cmc"], cmc, rtol=RTOL, atol=0)


def test_sysu_metric_equals_published_eval_sysu(golden, strategy):
    res = evaluate(golden["eval_dist"], golden["eval_q_ids"], golden["eval_g_ids"], golden["eval_q_cams"],
                   golden["eval_g_cams"], protocol="sysu", max_rank=20)
    _check(res, golden, "sysu")
    # the golden set has 4 camera-3 queries whose only positives are camera-2 images: the published
    # code leaves them out of the mean (the CMC divides by the number of valid queries), as xmrank does
    assert res["n_skipped"] == 4
    assert res["n_valid"] == len(golden["eval_q_ids"]) - 4


def test_regdb_metric_equals_published_eval_regdb(golden, strategy):
    res = evaluate(golden["eval_dist"], golden["eval_q_ids"], golden["eval_g_ids"], protocol="regdb", max_rank=20)
    _check(res, golden, "regdb")
    assert res["n_skipped"] == 0


def test_regdb_ignores_cameras(golden):
    # eval_regdb sets its own cameras (1 for queries, 2 for the gallery): nothing is ever removed
    a = evaluate(golden["eval_dist"], golden["eval_q_ids"], golden["eval_g_ids"], protocol="regdb")
    b = evaluate(golden["eval_dist"], golden["eval_q_ids"], golden["eval_g_ids"], golden["eval_q_cams"],
                 golden["eval_g_cams"], protocol="regdb")
    assert a["mAP"] == b["mAP"] and a["mINP"] == b["mINP"]
    np.testing.assert_array_equal(a["cmc"], b["cmc"])


@pytest.fixture(scope="module")
def sysu_tree(golden, tmp_path_factory):
    """The golden fake SYSU-MM01 tree: its empty image files plus exp/test_id.txt."""
    root = tmp_path_factory.mktemp("sysu_tree")
    for rel in golden["sysu_tree_files"]:
        path = root / str(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    (root / "exp").mkdir()
    (root / "exp" / "test_id.txt").write_text(",".join(str(int(i)) for i in golden["sysu_tree_test_ids"]) + "\n")
    return str(root)


def _rel(records, root):
    return [os.path.relpath(r.path, root).replace(os.sep, "/") for r in records]


def _published_labels(rel):
    # the published readers parse the camera and identity out of the path: camK/PPPP/NNNN.jpg
    m = re.fullmatch(r"cam(\d)/(\d{4})/\d{4}\.jpg", rel)
    return int(m.group(2)), int(m.group(1))


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("trial", [0, 1, 2])
def test_sysu_query_and_gallery_equal_the_published_lists(golden, sysu_tree, mode, trial):
    query, gallery = sysu_query_gallery(sysu_tree, mode=mode, trial=trial)
    assert _rel(query, sysu_tree) == [str(p) for p in golden["sysu_query"]]
    assert _rel(gallery, sysu_tree) == [str(p) for p in golden[f"sysu_gallery_{mode}_{trial}"]]
    for rec, rel in zip(query + gallery, _rel(query + gallery, sysu_tree)):
        assert (rec.pid, rec.cam) == _published_labels(rel)
        assert rec.modality == (1 if rec.cam in (3, 6) else 0)


def test_sysu_test_records_cover_every_trial(golden, sysu_tree):
    pool = set(_rel(sysu_test_records(sysu_tree), sysu_tree))
    assert set(map(str, golden["sysu_query"])) <= pool
    for mode in ("all", "indoor"):
        for t in range(3):
            assert set(map(str, golden[f"sysu_gallery_{mode}_{t}"])) <= pool
