"""The measurement behind method="auto": cross-modal share of plain kNN lists against the unbiased share."""

import numpy as np
import pytest

from xmrank.datasets import make_biased
from xmrank.jaccard.modality_bias import choose_method, modality_bias, modality_bias_from_lists


def _norm(X):
    X = np.asarray(X, dtype=np.float32)
    return np.ascontiguousarray(X / np.linalg.norm(X, axis=1, keepdims=True))


def test_strong_gap_is_biased_and_chooses_modality():
    X, _, mods, _ = make_biased(n_ids=30, per_id=8, gap=1.5, seed=1)
    bias = modality_bias(_norm(X), np.asarray(mods, dtype=np.int64))
    assert bias["cross_modal_share"] < 0.05 and 0.45 < bias["uniform_share"] < 0.55
    assert bias["biased"] and bias["k"] == 20
    method, reason = choose_method(bias)
    assert method == "modality" and "0.50" in reason
    assert choose_method(bias, cameras=True)[0] == "modality"


def test_no_gap_is_not_biased():
    rng = np.random.default_rng(0)
    X = _norm(rng.standard_normal((600, 16)))
    mods = rng.integers(0, 2, 600)
    bias = modality_bias(X, mods)
    assert 0.8 < bias["ratio"] < 1.2 and not bias["biased"]
    assert choose_method(bias)[0] == "vanilla"
    # cameras beside unbiased modalities: the measured rule, not the camera rule (whose k's the user did not give)
    assert choose_method(bias, cameras=True)[0] == "vanilla"
    assert choose_method(None, cameras=True)[0] == "camera"  # cameras alone: camera-aware, as before
    assert choose_method(None) == ("vanilla", "no modalities given")


def test_sample_is_seeded_and_bounded():
    rng = np.random.default_rng(1)
    X = _norm(rng.standard_normal((3000, 8)))
    mods = rng.integers(0, 3, 3000)
    a = modality_bias(X, mods, sample=500, seed=3)
    b = modality_bias(X, mods, sample=500, seed=3)
    assert a == b and a["rows_measured"] == 500


def test_lists_ignore_self_and_missing():
    codes = np.array([0, 0, 1, 1])
    idx = np.array([[0, 1, 2], [1, -1, 0], [2, 3, 0], [3, 2, -1]])
    bias = modality_bias_from_lists(idx, codes)
    # row 0: {1: same, 2: cross}; row 1: {0: same}; row 2: {3: same, 0: cross}; row 3: {2: same}
    assert np.isclose(bias["cross_modal_share"], (0.5 + 0 + 0.5 + 0) / 4)
    assert np.isclose(bias["uniform_share"], 2 / 3)


def test_one_resolver_for_method_auto_in_jaccard_cluster_and_rerank(monkeypatch):
    """method="auto" is resolved in one place: jaccard_distance, cluster and rerank all call resolve_auto_method,
    re-ranking with its own threshold."""
    import xmrank
    from xmrank.jaccard import modality_bias as mb
    from xmrank.retrieval._auto import RERANK_BIAS_THRESHOLD

    calls = []
    real = mb.resolve_auto_method

    def spy(*args, **kwargs):
        calls.append(kwargs.get("threshold", mb.BIAS_THRESHOLD))
        return real(*args, **kwargs)

    monkeypatch.setattr(mb, "resolve_auto_method", spy)
    X, ids, mods, _ = make_biased(n_ids=20, per_id=4, gap=1.5, seed=0)
    xmrank.jaccard_distance(X, modalities=mods, method="auto", k1=10, k2=3)
    xmrank.cluster(X, modalities=mods, method="auto", k1=10, k2=3, eps=0.6)
    q, g = mods == 1, mods == 0
    xmrank.rerank(X[q], X[g], query_modalities=mods[q], gallery_modalities=mods[g], method="auto", k1=10, k2=3)
    assert calls == [mb.BIAS_THRESHOLD, mb.BIAS_THRESHOLD, RERANK_BIAS_THRESHOLD]


@pytest.mark.parametrize("case", ["constant", "few"])
def test_unmeasurable_bias_falls_back_alike_everywhere(case):
    """All rows equal, or too few rows in a modality: every caller falls back to 'modality' with the same warning."""
    import xmrank

    rng = np.random.default_rng(0)
    if case == "constant":
        X = np.tile(np.eye(1, 8, dtype=np.float32), (40, 1))
        mods = np.repeat([0, 1], 20)
        match = "all rows are equal"
    else:
        X = rng.standard_normal((40, 8)).astype(np.float32)
        mods = np.r_[np.zeros(37, int), np.ones(3, int)]
        match = "too few to measure a modality bias"
    with pytest.warns(UserWarning, match=match):
        xmrank.jaccard_distance(X, modalities=mods, method="auto", k1=4, k2=2)
    with pytest.warns(UserWarning, match=match):
        xmrank.cluster(X, modalities=mods, method="auto", k1=4, k2=2, eps=0.6)
    with pytest.warns(UserWarning, match=match):
        _, chosen = xmrank.rerank(X[:20], X[20:], query_modalities=mods[:20], gallery_modalities=mods[20:],
                                  method="auto", k1=4, k2=2, return_chosen=True)
    assert chosen["method"] == "modality" and chosen["bias"] is None
