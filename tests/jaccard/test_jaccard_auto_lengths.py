"""``jaccard_distance(k1="auto")``: the label-free retrieval lengths, the same estimate as ``rerank(k1="auto")``."""

import logging

import numpy as np
import pytest

import xmrank
from xmrank.datasets import load_clip_pairs
from xmrank.datasets import make_cross_modal as synthetic
from xmrank.jaccard import plan_jaccard
from xmrank.jaccard.distance import check_arguments


def _groups():
    """40 identities x 8 items per modality, tight enough for the reciprocity estimate to read 8."""
    X, _, mods = synthetic(40, 8, noise=0.5, dim=32)
    return X, mods


def _pairs():
    """The bundled CLIP image/caption pairs (one item per identity and modality), rows normalised."""
    X, _, mods = load_clip_pairs()
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), mods


def _rerank_choice(X, mods):
    classes = np.unique(mods)
    q, g = X[mods == classes[0]], X[mods == classes[1]]
    _, chosen = xmrank.rerank(q, g, method="modality", k1="auto", k2="auto", return_chosen=True,
                              query_modalities=np.zeros(len(q)), gallery_modalities=np.ones(len(g)))
    return chosen


@pytest.mark.parametrize("data", [_groups, _pairs], ids=["groups", "pairs"])
def test_k1_auto_is_reranks_choice_and_gives_that_distance(data):
    X, mods = data()
    plan = plan_jaccard(X, modalities=mods, method="modality", k1="auto", k2="auto")
    k1, k2 = plan.chosen["k1"]["value"], plan.chosen["k2"]["value"]
    chosen = _rerank_choice(X, mods)
    assert (k1, k2) == (chosen["k1"], chosen["k2"])
    measurement = plan.chosen["k1"]["measurement"]
    if data is _pairs:  # one item per identity and modality: one neighbour per modality, no expansion
        assert measurement["pairing"]["paired"] and (k1, k2) == (2, 1)
        assert "pairing test" in plan.chosen["k1"]["reason"]
    else:  # groups of 8 per modality: 2m + 2 = 18 neighbours per modality, k2 = m + 1
        assert not measurement["pairing"]["paired"]
        assert measurement["group_size"] == 8 and (k1, k2) == (36, 9)
    D = xmrank.jaccard_distance(X, modalities=mods, method="modality", k1="auto", k2="auto")
    ref = xmrank.jaccard_distance(X, modalities=mods, method="modality", k1=k1, k2=k2)
    assert (D != ref).nnz == 0


def test_k1_auto_with_an_explicit_k2_and_the_log(caplog):
    X, mods = _groups()
    with caplog.at_level(logging.INFO, logger="xmrank"):
        plan = plan_jaccard(X, modalities=mods, method="modality", k1="auto", k2=3)
    assert plan.chosen["k1"]["value"] == 36 and "k2" not in plan.chosen
    assert any("k1='auto' chose k1=36" in r.getMessage() for r in caplog.records)


def test_k1_auto_without_modalities_and_the_fallbacks():
    X, _ = _groups()
    plan = plan_jaccard(X, method="vanilla", k1="auto")
    assert plan.chosen["k1"]["measurement"]["pairing"] is None and plan.chosen["k1"]["value"] >= 20
    same = np.ones((12, 4), dtype=np.float32) / 2
    with pytest.warns(UserWarning, match="all rows are equal"):
        plan = plan_jaccard(same, method="vanilla", k1="auto")
    assert plan.chosen["k1"]["value"] == 11  # the published 20, capped below the 12 rows
    few, few_mods = X[:8], np.array([0, 1] * 4)
    with pytest.warns(UserWarning, match="too few to estimate a group size"):
        plan = plan_jaccard(few, modalities=few_mods, method="modality", k1="auto", k2="auto")
    assert plan.chosen["k1"]["value"] == 6  # 2 x 3: below the 8 rows, at most 4 per modality


def test_k1_auto_argument_checks():
    X, mods = _groups()
    check_arguments(X, modalities=mods, k1="auto", k2="auto")  # nothing measured, nothing raised
    with pytest.raises(xmrank.InputError, match=r"^k1 must be an integer or 'auto'; got 'aut'\.$"):
        xmrank.jaccard_distance(X, k1="aut")
    with pytest.raises(xmrank.InputError, match="needs modalities"):
        xmrank.jaccard_distance(X, method="modality", k1="auto")
