"""select_rerank: a setting chosen on labelled data by folds of identities, as keyword arguments of rerank."""

import numpy as np
import pytest

import xmrank
from xmrank import InputError
from xmrank.datasets import make_cross_modal
from xmrank.retrieval import evaluate


def split(X, ids, mods):
    q, g = mods == 1, mods == 0
    return X[q], X[g], ids[q], ids[g]


SIDE = dict(query_modalities=1, gallery_modalities=0)


def test_selection_beats_a_bad_fixed_setting():
    Q, G, qi, gi = split(*make_cross_modal(60, 4, dim=32, seed=1))
    chosen, table = xmrank.select_rerank(Q, G, qi, gi, **SIDE, k1s=(2, 20), k2s=(1, 6), lambdas=(0.3,),
                                         return_table=True)
    assert set(chosen) == {"method", "k1", "k2", "lambda_value"}
    assert {"mAP", "mAP_std", "rank1", "rank1_std", "folds"} <= set(table[0])
    assert any(r["method"] == "original" for r in table)
    assert table == sorted(table, key=lambda r: -r["mAP"])
    # applied to new identities of the same kind, it beats a bad fixed setting (vanilla lists across a gap)
    Qt, Gt, qit, git = split(*make_cross_modal(60, 4, dim=32, seed=2))
    picked = evaluate(xmrank.rerank(Qt, Gt, **SIDE, **chosen), qit, git, protocol="regdb")["mAP"]
    bad = evaluate(xmrank.rerank(Qt, Gt, method="vanilla", k1=2, k2=1), qit, git, protocol="regdb")["mAP"]
    assert chosen["method"] == "modality" and picked > bad + 0.05


def test_camera_rule_and_the_original_distance_rows():
    Q, G, qi, gi = split(*make_cross_modal(20, 3, dim=16))
    cams = dict(query_cameras=np.arange(len(Q)) % 2, gallery_cameras=2 + np.arange(len(G)) % 2)
    chosen, table = xmrank.select_rerank(Q, G, qi, gi, **cams, methods=["camera"], lambdas=(0.3,),
                                         protocol="regdb", return_table=True)
    assert {r["method"] for r in table} == {"camera", "original"}
    assert "k1" not in chosen or chosen["lambda_value"] == 1.0
    xmrank.rerank(Q, G, **cams, **chosen)  # accepted as it is


def test_bad_input_is_one_line():
    Q, G, qi, gi = split(*make_cross_modal(10, 2, dim=16))
    with pytest.raises(InputError, match=r"query_ids must hold one identity per query row \(20\)"):
        xmrank.select_rerank(Q, G, qi[:-1], gi)
    with pytest.raises(InputError, match="at least two identities; got one"):
        xmrank.select_rerank(Q, G, np.zeros(len(Q), int), np.zeros(len(G), int))
    with pytest.raises(InputError, match="query identity has no gallery row"):
        xmrank.select_rerank(Q, G, np.where(qi == 0, 99, qi), gi)
    with pytest.raises(InputError, match="gallery identit.* no query row"):
        xmrank.select_rerank(Q, G, np.where(qi == 0, 1, qi), gi)
    with pytest.raises(InputError, match="n_splits=50 exceeds"):
        xmrank.select_rerank(Q, G, qi, gi, n_splits=50)
